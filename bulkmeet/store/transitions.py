"""The key state machine, in one place: what a claim meets, what a settle makes, what a record
(an imported or out-of-band fact) may change. Pure functions over plain values; the stores only
read a row under their lock, call these, and write what they return.

States of a key (no row at all is `None`, "absent"):

    in_flight    claimed by an owner whose lease runs; a request may be on the wire
    created      Gong made a meeting (meetingId known)
    updated      an existing meeting was changed in place
    deleted      the meeting is gone (undo, prune, or Gong answered 404 to an update)
    refused      Gong answered 4xx to a create: nothing exists; the same payload is never resent
    uncertain    a request went out and its answer was lost (timeout, or the owner died while
                 holding the claim): Gong may hold a meeting we do not know of
    not_created  Gong answered 429/5xx or the connection failed before sending: nothing exists
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import Enum, StrEnum


class State(StrEnum):
    IN_FLIGHT = "in_flight"
    CREATED = "created"
    UPDATED = "updated"
    DELETED = "deleted"
    REFUSED = "refused"
    UNCERTAIN = "uncertain"
    NOT_CREATED = "not_created"


class Op(StrEnum):
    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"


HAS_MEETING = frozenset({State.CREATED, State.UPDATED})
SETTLED = frozenset(set(State) - {State.IN_FLIGHT})


class Rule(Enum):
    """What a claim of (state, op) meets."""

    CLAIM = "claim"                  # claimable
    DONE = "done"                    # nothing to do: AlreadyDone
    HELD = "held"                    # another owner's claim; if its lease ran out: uncertain
    NEEDS_RESEND = "needs_resend"    # only with resend_uncertain=True
    UNLESS_REFUSED = "unless_refused"  # claimable with a digest other than the refused one
    UNLESS_CURRENT = "unless_current"  # update: done if Gong has this digest, else as above
    NO_MEETING = "no_meeting"        # update/delete of a key without a meeting


_C, _D, _H, _R = Rule.CLAIM, Rule.DONE, Rule.HELD, Rule.NEEDS_RESEND
_NM = Rule.NO_MEETING

CLAIM_TABLE: dict[tuple[State | None, Op], Rule] = {
    # create
    (None, Op.CREATE): _C,
    (State.NOT_CREATED, Op.CREATE): _C,
    (State.DELETED, Op.CREATE): _C,
    (State.REFUSED, Op.CREATE): Rule.UNLESS_REFUSED,
    (State.UNCERTAIN, Op.CREATE): _R,
    (State.CREATED, Op.CREATE): _D,
    (State.UPDATED, Op.CREATE): _D,
    (State.IN_FLIGHT, Op.CREATE): _H,
    # update (needs a meeting)
    (None, Op.UPDATE): _NM,
    (State.NOT_CREATED, Op.UPDATE): _NM,
    (State.DELETED, Op.UPDATE): _NM,
    (State.REFUSED, Op.UPDATE): _NM,
    (State.UNCERTAIN, Op.UPDATE): _R,
    (State.CREATED, Op.UPDATE): Rule.UNLESS_CURRENT,
    (State.UPDATED, Op.UPDATE): Rule.UNLESS_CURRENT,
    (State.IN_FLIGHT, Op.UPDATE): _H,
    # delete (needs a meeting; deleting a deleted one is done)
    (None, Op.DELETE): _NM,
    (State.NOT_CREATED, Op.DELETE): _NM,
    (State.REFUSED, Op.DELETE): _NM,
    (State.DELETED, Op.DELETE): _D,
    (State.UNCERTAIN, Op.DELETE): _R,
    (State.CREATED, Op.DELETE): _C,
    (State.UPDATED, Op.DELETE): _C,
    (State.IN_FLIGHT, Op.DELETE): _H,
}


class Settle(Enum):
    """What an outcome does to the claimed key."""

    BECOME = "become"    # the key takes the outcome's state
    RELEASE = "release"  # back to the state before the claim (absent/not_created: not_created)
    KEEP_MEETING = "keep_meeting"  # refused: a meeting (or a doubt) before the claim stays


SETTLE_TABLE: dict[tuple[Op, State], Settle] = {
    (Op.CREATE, State.CREATED): Settle.BECOME,
    (Op.UPDATE, State.UPDATED): Settle.BECOME,
    (Op.DELETE, State.DELETED): Settle.BECOME,
    (Op.UPDATE, State.DELETED): Settle.BECOME,  # 404 to an update: the meeting is gone
    **{(op, State.REFUSED): Settle.KEEP_MEETING for op in Op},
    **{(op, State.NOT_CREATED): Settle.RELEASE for op in Op},
    **{(op, State.UNCERTAIN): Settle.BECOME for op in Op},
}


class Merge(Enum):
    """What a recorded fact (imported, or learnt outside a claim) does to the stored state."""

    TAKE = "take"
    KEEP = "keep"
    TAKE_IF_SAME_MEETING = "take_if_same_meeting"    # deleted: only the meeting we hold
    TAKE_IF_OTHER_MEETING = "take_if_other_meeting"  # created after a deletion: a new meeting


_T, _K = Merge.TAKE, Merge.KEEP
_RECORDABLE = (State.CREATED, State.UPDATED, State.DELETED, State.REFUSED, State.UNCERTAIN,
               State.NOT_CREATED)

MERGE_TABLE: dict[tuple[State | None, State], Merge] = {
    **{(None, new): _T for new in _RECORDABLE},
    **{(State.IN_FLIGHT, new): _K for new in _RECORDABLE},  # a live claim is its owner's
    # a meeting is never demoted; a deletion only of the same meeting
    **{(old, new): _K for old in HAS_MEETING for new in _RECORDABLE},
    **{(old, State.DELETED): Merge.TAKE_IF_SAME_MEETING for old in HAS_MEETING},
    # deleted: a new meeting made after it, or a doubt, replaces it
    (State.DELETED, State.CREATED): Merge.TAKE_IF_OTHER_MEETING,
    (State.DELETED, State.UPDATED): Merge.TAKE_IF_OTHER_MEETING,
    (State.DELETED, State.DELETED): _K,
    (State.DELETED, State.REFUSED): _K,
    (State.DELETED, State.UNCERTAIN): _T,
    (State.DELETED, State.NOT_CREATED): _K,
    # uncertain: only a definite meeting (or its deletion) settles the doubt
    (State.UNCERTAIN, State.CREATED): _T,
    (State.UNCERTAIN, State.UPDATED): _T,
    (State.UNCERTAIN, State.DELETED): Merge.TAKE_IF_SAME_MEETING,
    (State.UNCERTAIN, State.REFUSED): _K,
    (State.UNCERTAIN, State.UNCERTAIN): _K,
    (State.UNCERTAIN, State.NOT_CREATED): _K,
    # refused / not_created: nothing exists; anything stronger replaces them
    (State.REFUSED, State.CREATED): _T,
    (State.REFUSED, State.UPDATED): _T,
    (State.REFUSED, State.DELETED): _K,
    (State.REFUSED, State.REFUSED): _K,
    (State.REFUSED, State.UNCERTAIN): _T,
    (State.REFUSED, State.NOT_CREATED): _K,
    (State.NOT_CREATED, State.CREATED): _T,
    (State.NOT_CREATED, State.UPDATED): _T,
    (State.NOT_CREATED, State.DELETED): _K,
    (State.NOT_CREATED, State.REFUSED): _T,
    (State.NOT_CREATED, State.UNCERTAIN): _T,
    (State.NOT_CREATED, State.NOT_CREATED): _K,
}


@dataclass(slots=True)
class Row:
    """One key as stored. `payload` and `errors` are JSON text (the stores keep them so)."""

    key: str
    state: State
    meeting_id: str | None = None
    organizer: str | None = None
    payload: str | None = None          # JSON of the last payload Gong holds (or was refused)
    payload_digest: str | None = None   # digest of that payload
    op: Op | None = None                # the op claimed (kept after settle: what it was)
    claim_digest: str | None = None     # digest of the payload the claim sends
    claim_from: State | None = None     # the state before the claim (RELEASE returns to it)
    owner: str | None = None
    lease_until: float | None = None    # store clock, epoch seconds
    lease_s: float | None = None
    refused_digest: str | None = None   # a payload Gong refused (4xx): never sent again
    http_status: int | None = None
    errors: str | None = None           # JSON list
    updated_at: float = 0.0


@dataclass(frozen=True, slots=True)
class Event:
    """One history entry: the transition a row went through."""

    key: str
    at: float
    event: str
    from_state: State | None
    to_state: State
    owner: str | None = None
    op: Op | None = None
    meeting_id: str | None = None
    payload_digest: str | None = None
    http_status: int | None = None
    detail: str | None = None


# --- claims ----------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Claimed:
    key: str
    op: Op
    meeting_id: str | None  # the meeting an update or delete acts on
    previous: State | None


@dataclass(frozen=True, slots=True)
class AlreadyDone:
    key: str
    state: State
    meeting_id: str | None


@dataclass(frozen=True, slots=True)
class HeldBy:
    key: str
    owner: str
    seconds_left: float


@dataclass(frozen=True, slots=True)
class Uncertain:
    key: str
    op: Op | None  # the request whose answer was lost
    meeting_id: str | None


@dataclass(frozen=True, slots=True)
class RefusedSamePayload:
    key: str
    http_status: int | None
    errors: str | None  # JSON list, as Gong gave them


@dataclass(frozen=True, slots=True)
class NoMeeting:
    key: str
    state: State | None


ClaimResult = Claimed | AlreadyDone | HeldBy | Uncertain | RefusedSamePayload | NoMeeting


# _doubt_of_a_create: a create cut off (uncertain) is about a meeting nobody knows the id of.
# The id of a meeting deleted before, which the key kept through the claim (a claim let go
# returns to it), is dropped then: otherwise the doubt would look like a known meeting that an
# update or delete may act on, and deleting that old meeting (404: gone) would settle the key
# deleted and erase the doubt, letting the next run create it twice.


def observe(row: Row | None, now: float) -> tuple[Row | None, Event | None]:
    """A claim whose lease ran out (its owner died, maybe mid-request) is uncertain from now on."""
    if row is None or row.state is not State.IN_FLIGHT or row.lease_until is None \
            or row.lease_until > now:
        return row, None
    new = replace(row, state=State.UNCERTAIN, updated_at=now)
    if row.op is Op.CREATE:
        new.meeting_id = None  # see _doubt_of_a_create
    return new, Event(row.key, now, "lease_expired", State.IN_FLIGHT, State.UNCERTAIN,
                      owner=row.owner, op=row.op, meeting_id=row.meeting_id,
                      payload_digest=row.claim_digest)


def decide_claim(row: Row | None, key: str, *, owner: str, op: Op, payload_digest: str,
                 lease: float, resend_uncertain: bool, now: float
                 ) -> tuple[ClaimResult, Row | None, list[Event]]:
    """The answer to a claim, the row to write (None: nothing) and the history it adds."""
    events: list[Event] = []
    observed, expired = observe(row, now)
    if expired is not None:
        events.append(expired)
    state = observed.state if observed is not None else None
    rule = CLAIM_TABLE[(state, op)]
    result: ClaimResult | None = None
    if op is Op.CREATE and state is State.UNCERTAIN and observed is not None \
            and observed.op is Op.UPDATE and observed.meeting_id is not None:
        # An update whose answer was lost: whatever it did, the meeting exists.
        result = AlreadyDone(key, observed.state, observed.meeting_id)
    elif rule is Rule.DONE or (rule is Rule.UNLESS_CURRENT and observed is not None
                               and payload_digest == observed.payload_digest):
        assert observed is not None
        result = AlreadyDone(key, observed.state, observed.meeting_id)
    elif rule is Rule.HELD:
        assert observed is not None and observed.owner is not None
        result = HeldBy(key, observed.owner, (observed.lease_until or now) - now)
    elif rule is Rule.NO_MEETING:
        result = NoMeeting(key, state)
    elif rule is Rule.NEEDS_RESEND and not resend_uncertain:
        assert observed is not None
        result = Uncertain(key, observed.op, observed.meeting_id)
    elif rule in (Rule.UNLESS_REFUSED, Rule.UNLESS_CURRENT) and observed is not None \
            and payload_digest == observed.refused_digest:
        result = RefusedSamePayload(key, observed.http_status, observed.errors)
    elif op is not Op.CREATE and (observed is None or observed.meeting_id is None):
        result = NoMeeting(key, state)  # an uncertain create resent as an update: no id known
    if result is not None:
        return result, observed if expired is not None else None, events
    base = observed if observed is not None else Row(key, State.NOT_CREATED)
    new = replace(base, state=State.IN_FLIGHT, op=op, claim_digest=payload_digest,
                  claim_from=state, owner=owner, lease_until=now + lease, lease_s=lease,
                  updated_at=now)
    events.append(Event(key, now, "claim", state, State.IN_FLIGHT, owner=owner, op=op,
                        meeting_id=new.meeting_id, payload_digest=payload_digest))
    return Claimed(key, op, new.meeting_id, state), new, events


# --- settling --------------------------------------------------------------------------------

class ClaimLost(Exception):
    """The key is not (or no longer) claimed by this owner: someone else resent it."""


class IllegalTransition(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class Outcome:
    """How a claimed request ended. Build with the class methods."""

    state: State
    meeting_id: str | None = None
    organizer: str | None = None
    payload: str | None = None  # JSON text
    http_status: int | None = None
    errors: str | None = None   # JSON list
    detail: str | None = None

    @classmethod
    def created(cls, meeting_id: str, *, organizer: str | None = None,
                payload: str | None = None) -> Outcome:
        return cls(State.CREATED, meeting_id, organizer, payload)

    @classmethod
    def updated(cls, meeting_id: str | None = None, *, organizer: str | None = None,
                payload: str | None = None) -> Outcome:
        return cls(State.UPDATED, meeting_id, organizer, payload)

    @classmethod
    def deleted(cls, *, http_status: int | None = None, detail: str | None = None) -> Outcome:
        return cls(State.DELETED, http_status=http_status, detail=detail)

    @classmethod
    def refused(cls, http_status: int, errors: str | None = None) -> Outcome:
        return cls(State.REFUSED, http_status=http_status, errors=errors)

    @classmethod
    def not_created(cls, http_status: int | None = None, detail: str | None = None) -> Outcome:
        return cls(State.NOT_CREATED, http_status=http_status, detail=detail)

    @classmethod
    def uncertain(cls, detail: str | None = None) -> Outcome:
        return cls(State.UNCERTAIN, detail=detail)


def decide_settle(row: Row | None, key: str, owner: str, outcome: Outcome, now: float
                  ) -> tuple[Row, list[Event]]:
    """The owner's answer for its claim. A late answer after the lease ran out (the row observed
    uncertain meanwhile, nobody resent it) is still the truth and is taken."""
    if row is None or row.owner != owner or row.op is None or row.state not in (
            State.IN_FLIGHT, State.UNCERTAIN) or (
            row.state is State.UNCERTAIN and (row.lease_until is None or row.lease_until > now)):
        raise ClaimLost(f"{key!r} is not claimed by {owner}")
    rule = SETTLE_TABLE.get((row.op, outcome.state))
    if rule is None:
        raise IllegalTransition(f"a {row.op} cannot end {outcome.state}")
    before = row.claim_from
    if rule is Settle.BECOME:
        state = outcome.state
    elif rule is Settle.RELEASE:
        state = before if before not in (None, State.IN_FLIGHT) else State.NOT_CREATED
    else:  # KEEP_MEETING
        state = before if before in HAS_MEETING or before is State.UNCERTAIN else State.REFUSED
    assert state is not None
    new = replace(row, state=state, owner=None, lease_until=None, lease_s=None,
                  http_status=outcome.http_status, updated_at=now)
    if state is State.UNCERTAIN and row.op is Op.CREATE:
        new.meeting_id = None  # see _doubt_of_a_create
    if outcome.state in (State.CREATED, State.UPDATED):
        new.meeting_id = outcome.meeting_id or row.meeting_id
        new.payload_digest = row.claim_digest
        new.payload = outcome.payload if outcome.payload is not None else row.payload
        new.organizer = outcome.organizer or row.organizer
        new.refused_digest = None
        new.errors = None
    elif outcome.state is State.REFUSED:
        new.refused_digest = row.claim_digest
        new.errors = outcome.errors
        if state is State.REFUSED:
            new.payload = outcome.payload if outcome.payload is not None else row.payload
    elif outcome.state is State.NOT_CREATED:
        new.errors = outcome.errors
    ev = Event(key, now, "settle", row.state, state, owner=owner, op=row.op,
               meeting_id=new.meeting_id, payload_digest=row.claim_digest,
               http_status=outcome.http_status, detail=outcome.detail or outcome.errors)
    return new, [ev]



# --- records (import, facts learnt outside a claim) -------------------------------------------

def decide_merge(row: Row | None, fact: Row, now: float, source: str
                 ) -> tuple[Row | None, list[Event]]:
    """Fold a recorded fact into the stored row; (None, []) when it changes nothing."""
    if fact.state is State.IN_FLIGHT:
        raise IllegalTransition("an in-flight state is only made by a claim")
    observed, expired = observe(row, now)
    events = [expired] if expired is not None else []
    old = observed.state if observed is not None else None
    rule = MERGE_TABLE[(old, fact.state)]
    old_mid = observed.meeting_id if observed is not None else None
    take = rule is Merge.TAKE or (
        rule is Merge.TAKE_IF_SAME_MEETING and old_mid is not None
        and fact.meeting_id == old_mid) or (
        rule is Merge.TAKE_IF_OTHER_MEETING and fact.meeting_id is not None
        and fact.meeting_id != old_mid)
    if not take:
        return (observed if events else None), events
    new = replace(fact, key=observed.key if observed else fact.key, owner=None,
                  lease_until=None, lease_s=None, updated_at=now)
    if observed is not None:
        new.meeting_id = new.meeting_id or observed.meeting_id
        new.organizer = new.organizer or observed.organizer
        new.payload = new.payload or observed.payload
        new.payload_digest = new.payload_digest or observed.payload_digest
    events.append(Event(new.key, now, source, old, new.state, op=new.op,
                        meeting_id=new.meeting_id, payload_digest=new.payload_digest,
                        http_status=new.http_status))
    return new, events
