"""The transition tables, exhaustively, and the GCRA arithmetic on a fake clock."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bulkmeet.store import Target
from bulkmeet.store.pacing import extend_pause, gcra
from bulkmeet.store.transitions import (
    CLAIM_TABLE,
    HAS_MEETING,
    MERGE_TABLE,
    SETTLE_TABLE,
    AlreadyDone,
    Claimed,
    ClaimLost,
    HeldBy,
    IllegalTransition,
    NoMeeting,
    Op,
    Outcome,
    RefusedSamePayload,
    Row,
    State,
    Uncertain,
    decide_claim,
    decide_merge,
    decide_settle,
    observe,
)

STATES: list[State | None] = [None, *State]
RECORDABLE = [s for s in State if s is not State.IN_FLIGHT]
NOW = 1000.0


def row(state: State | None, *, meeting: str | None = "m1", lease_until: float = NOW + 10,
        refused: str | None = None, digest: str | None = "cur") -> Row | None:
    if state is None:
        return None
    return Row("k", state, meeting_id=meeting if state is not State.REFUSED else None,
               payload_digest=digest, refused_digest=refused, op=Op.CREATE,
               owner="other" if state is State.IN_FLIGHT else None,
               lease_until=lease_until if state is State.IN_FLIGHT else None)


def claim(r: Row | None, op: Op, digest: str = "new", resend: bool = False) -> object:
    result, _, _ = decide_claim(r, "k", owner="me", op=op, payload_digest=digest, lease=5,
                                resend_uncertain=resend, now=NOW)
    return result


def test_tables_cover_every_pair() -> None:
    assert set(CLAIM_TABLE) == set(itertools.product(STATES, Op))
    assert set(MERGE_TABLE) == set(itertools.product(STATES, RECORDABLE))
    assert {(op, s) for op, s in SETTLE_TABLE} <= set(itertools.product(Op, RECORDABLE))


@pytest.mark.parametrize(("state", "op"), list(itertools.product(STATES, Op)))
@pytest.mark.parametrize("resend", [False, True])
def test_claim_rules(state: State | None, op: Op, resend: bool) -> None:
    """Every (state, op, resend) pair, checked against the rules stated in the brief."""
    result = claim(row(state), op, resend=resend)
    has_meeting = state in HAS_MEETING
    if state is State.IN_FLIGHT:
        assert isinstance(result, HeldBy) and result.owner == "other"
    elif state is State.UNCERTAIN and not resend:
        assert isinstance(result, Uncertain)  # never re-claimable without resend_uncertain
    elif op is Op.CREATE:
        if has_meeting:
            assert result == AlreadyDone("k", state, "m1")  # type: ignore[arg-type]
        else:  # absent, not_created, deleted, refused (other digest), uncertain + resend
            assert isinstance(result, Claimed)
    elif op is Op.UPDATE:
        assert isinstance(result, Claimed if has_meeting or state is State.UNCERTAIN
                          else NoMeeting)
    else:
        if state is State.DELETED:
            assert isinstance(result, AlreadyDone)
        else:
            assert isinstance(result, Claimed if has_meeting or state is State.UNCERTAIN
                              else NoMeeting)


@pytest.mark.parametrize("op", list(Op))
def test_refused_digest_is_never_claimed_again(op: Op) -> None:
    for state in (State.REFUSED, State.CREATED, State.UPDATED):
        r = row(state, refused="bad")
        result = claim(r, op, digest="bad")
        if op is Op.CREATE and state is State.REFUSED or op is Op.UPDATE and state in HAS_MEETING:
            assert isinstance(result, RefusedSamePayload)
            assert isinstance(claim(r, op, digest="fixed"), Claimed)


def test_expired_claim_is_uncertain_for_every_op() -> None:
    for op in Op:
        r = row(State.IN_FLIGHT, lease_until=NOW - 0.001)
        result, new, events = decide_claim(r, "k", owner="me", op=op, payload_digest="x",
                                           lease=5, resend_uncertain=False, now=NOW)
        assert isinstance(result, Uncertain)
        assert new is not None and new.state is State.UNCERTAIN  # written, with its history
        assert [e.event for e in events] == ["lease_expired"]


@pytest.mark.parametrize("resend", [False, True])
def test_a_lost_update_leaves_a_meeting_a_create_never_makes_again(resend: bool) -> None:
    """A key left uncertain by an update (its lease ran out mid-request) has a meeting
    whatever the update did: a create is done already, not in doubt. A lost create or delete
    stays a doubt."""
    for op, done in ((Op.UPDATE, True), (Op.CREATE, False), (Op.DELETE, False)):
        r = row(State.UNCERTAIN)
        assert r is not None
        r.op = op
        result = claim(r, Op.CREATE, resend=resend)
        if done:
            assert result == AlreadyDone("k", State.UNCERTAIN, "m1")
        else:
            assert isinstance(result, Claimed if resend else Uncertain), (op, result)


def _claimed(before: State | None, op: Op) -> Row:
    r = row(before, refused="old" if before is State.REFUSED else None)
    result, new, _ = decide_claim(r, "k", owner="me", op=op, payload_digest="new", lease=5,
                                  resend_uncertain=True, now=NOW)
    assert isinstance(result, Claimed), (before, op, result)
    assert new is not None
    return new


CLAIMABLE = [(s, op) for s, op in itertools.product(STATES, Op)
             if isinstance(claim(row(s, refused="old"), op, resend=True), Claimed)]


@pytest.mark.parametrize(("before", "op"), CLAIMABLE)
@pytest.mark.parametrize("outcome", [Outcome.created("m2"), Outcome.updated("m2"),
                                     Outcome.deleted(), Outcome.refused(400),
                                     Outcome.not_created(429), Outcome.uncertain()])
def test_settle_rules(before: State | None, op: Op, outcome: Outcome) -> None:
    claimed = _claimed(before, op)
    if (op, outcome.state) not in SETTLE_TABLE:
        with pytest.raises(IllegalTransition):
            decide_settle(claimed, "k", "me", outcome, NOW + 1)
        return
    with pytest.raises(ClaimLost):
        decide_settle(claimed, "k", "someone else", outcome, NOW + 1)
    new, events = decide_settle(claimed, "k", "me", outcome, NOW + 1)
    assert new.owner is None and new.lease_until is None and len(events) == 1
    if outcome.state in (State.REFUSED, State.NOT_CREATED) and before in HAS_MEETING:
        assert new.state is before  # a meeting is never demoted by a failure
    elif outcome.state is State.NOT_CREATED:
        assert new.state is (before if before not in (None,) else State.NOT_CREATED)
    elif outcome.state is State.REFUSED:
        assert new.state is (State.UNCERTAIN if before is State.UNCERTAIN else State.REFUSED)
        assert new.refused_digest == "new"
    else:
        assert new.state is outcome.state
    if new.state in HAS_MEETING:
        assert new.meeting_id is not None


FACTS = [Row("k", s, meeting_id=mid) for s in RECORDABLE for mid in ("m1", "m2", None)
         if not (s in HAS_MEETING and mid is None)]


@pytest.mark.parametrize("state", STATES)
@pytest.mark.parametrize("fact", FACTS, ids=lambda f: f"{f.state}-{f.meeting_id}")
def test_merge_is_idempotent_and_never_demotes(state: State | None, fact: Row) -> None:
    current = row(state)
    once, _ = decide_merge(current, fact, NOW, "import")
    after_once = once if once is not None else current
    twice, events = decide_merge(after_once, fact, NOW, "import")
    assert twice is None and events == []  # a second import changes nothing, adds no history
    if state in HAS_MEETING and fact.state is not State.DELETED:
        assert once is None  # created/updated kept whatever a later record says
    if state in HAS_MEETING and fact.state is State.DELETED:
        assert (once is not None) == (fact.meeting_id == "m1")  # only the meeting we hold
    if state is State.IN_FLIGHT:
        assert once is None  # a live claim is its owner's
    if state is None:
        assert once is not None and once.state is fact.state


def test_merge_never_makes_in_flight() -> None:
    with pytest.raises(IllegalTransition):
        decide_merge(None, Row("k", State.IN_FLIGHT), NOW, "import")


# --- GCRA on a fake clock -------------------------------------------------------------------

def test_gcra_spaces_slots_and_resets_after_idle() -> None:
    tat = None
    waits = []
    for _ in range(4):  # four calls at the same instant: 0, 1/3, 2/3, 1
        slot = gcra(tat, None, 10.0, 3.0)
        tat = slot.tat
        waits.append(slot.wait)
    assert waits == pytest.approx([0, 1 / 3, 2 / 3, 1.0])
    slot = gcra(tat, None, 100.0, 3.0)  # idle: no credit piles up without a burst
    assert slot.wait == 0 and slot.tat == pytest.approx(100 + 1 / 3)
    assert gcra(slot.tat, None, 100.0, 3.0).wait == pytest.approx(1 / 3)


def test_gcra_pause_and_burst() -> None:
    slot = gcra(10.0, 15.0, 10.0, 3.0)
    assert slot.wait == 5.0 and slot.tat == pytest.approx(15 + 1 / 3)
    assert gcra(10.0, 5.0, 10.0, 3.0).wait == 0  # a pause in the past is no pause
    assert gcra(11.0, None, 10.0, 1.0, burst=1.0).wait == 0  # one interval of credit
    assert gcra(11.5, None, 10.0, 1.0, burst=1.0).wait == pytest.approx(0.5)
    with pytest.raises(ValueError):
        gcra(None, None, 0.0, 0.0)
    assert extend_pause(None, 5.0) == 5.0
    assert extend_pause(7.0, 5.0) == 7.0 and extend_pause(7.0, 9.0) == 9.0


@given(st.lists(st.floats(0, 2.0), min_size=1, max_size=60), st.floats(0.5, 20),
       st.floats(0, 5))
def test_gcra_never_more_than_rate_in_any_window(gaps: list[float], rate: float,
                                                 pause: float) -> None:
    """Whoever asks and whenever: slots are 1/rate apart, never before now or the pause."""
    now, tat = 0.0, None
    sends = []
    for gap in gaps:
        now += gap
        slot = gcra(tat, pause, now, rate)
        assert slot.wait >= 0 and slot.send_at >= pause
        sends.append(slot.send_at)
        tat = slot.tat
    for a, b in itertools.pairwise(sends):
        assert b - a >= 1 / rate - 1e-9


# --- identity ------------------------------------------------------------------------------

def test_target_identity() -> None:
    a = Target.for_access_key("HTTPS://API.Gong.io:443/", "K1")
    assert a.base_url == "https://api.gong.io" and a.label == "api.gong.io (key K1)"
    assert a.id == Target.for_access_key("https://api.gong.io", "K1").id and len(a.id) == 16
    others = [Target.for_access_key("https://us-1.api.gong.io", "K1"),
              Target.for_access_key("https://api.gong.io", "K2"),
              Target.for_access_key("http://127.0.0.1:8080", "K1"),
              Target.for_bearer("https://api.gong.io", "K1")]
    assert len({a.id, *(t.id for t in others)}) == 5
    b = Target.for_bearer("https://user:pw@api.gong.io/?q=1", "s3cret-token")
    assert "s3cret" not in repr(b) + b.label + b.id and "pw" not in b.base_url
    assert b.base_url == "https://api.gong.io"


def test_a_create_on_a_deleted_key_keeps_its_old_meeting_until_it_ends_in_doubt() -> None:
    """A 429 or 5xx lets the claim go: the key is deleted again with the id of the meeting that
    was deleted (so importing that meeting's old `created` record changes nothing). Cut off,
    the create is a doubt without any id: no update or delete can act on the old meeting as
    if it were the key's."""
    deleted = row(State.DELETED)
    assert deleted is not None and deleted.meeting_id == "m1"
    _, claimed, _ = decide_claim(deleted, "k", owner="me", op=Op.CREATE, payload_digest="new",
                                 lease=5, resend_uncertain=False, now=NOW)
    assert claimed is not None
    released, _ = decide_settle(claimed, "k", "me", Outcome.not_created(429), NOW + 1)
    assert (released.state, released.meeting_id) == (State.DELETED, "m1")
    again, _ = decide_merge(released, Row("k", State.CREATED, meeting_id="m1"), NOW + 2, "import")
    assert again is None  # nothing changes: m1 is the meeting deleted
    cut, _ = decide_settle(claimed, "k", "me", Outcome.uncertain(), NOW + 1)
    assert (cut.state, cut.meeting_id) == (State.UNCERTAIN, None)
    expired, _ = observe(claimed, NOW + 10)
    assert expired is not None and (expired.state, expired.meeting_id) == (State.UNCERTAIN, None)
    for op in (Op.UPDATE, Op.DELETE):
        result, _, _ = decide_claim(expired, "k", owner="me", op=op, payload_digest="x", lease=5,
                                    resend_uncertain=True, now=NOW + 11)
        assert isinstance(result, NoMeeting), (op, result)
