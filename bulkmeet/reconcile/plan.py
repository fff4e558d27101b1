"""Sync's plan: compare the input with what is known to exist, by key, and say what a sync
would change.

The state store (or, deprecated, a ledger file) says what exists in Gong (key -> meeting id,
organizer, the payload Gong holds: known.py); the input says what should. `make_plan` compares
them by key:

    key in the input only (or known deleted)  -> create (POST)
    key in both, payload changed              -> update (PUT); replace (DELETE, then POST) when
                                                 the organizer changed, because a meeting
                                                 belongs to its organizer and PUT cannot move it
    key in both, payload the same             -> unchanged: nothing sent (counted, not kept)
    key known only                            -> delete with prune, else left alone

A create that was cut off (a key whose last word is a request without an answer) may exist in
Gong under an id nobody knows: it is `uncertain` and not sent again without resend_uncertain.
An invalid row keeps its meeting as it is: neither updated nor pruned. An invalid row whose key
cannot be read could be any known key, so then no delete is made at all: they are `held`.
"""

from __future__ import annotations

import dataclasses
import logging
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from ..config import Config
from ..errors import UsageError
from ..ledger import LedgerEntry, read_ledger
from ..mapping import Mapper
from ..models import Record, Row, Status, payload_digest
from ..planner import read_input
from ..triage import FirstLines
from ..words import agree, plural
from .known import InMemoryKnown, Known

if TYPE_CHECKING:
    pass

log = logging.getLogger("bulkmeet")

DEFAULT_MAX_DELETES = 10
UNDO_CONFIRM_OVER = 20  # undo of more meetings than this is a dry run unless confirmed
# Keys the mapping gives rows it could not read an id from (mapping._raw_key): such an invalid
# row could be any meeting of the ledger.
_BLIND_KEYS = ("r:", "line:")
_FIELD_ORDER = ("title", "startTime", "endTime", "organizerEmail", "invitees", "externalId")
REFUSED_BEFORE = ("Gong refused this very payload before (state store); fix the row to send it "
                  "again")
UNCERTAIN_CREATE = ("a create for this key was cut off in an earlier run; Gong may have made the "
                    "meeting. Not sent again (check Gong, then use --resend-uncertain)")


class Kind(StrEnum):
    CREATE = "create"
    UPDATE = "update"
    REPLACE = "replace"  # organizer changed: delete, then create
    DELETE = "delete"
    UNCHANGED = "unchanged"
    INVALID = "invalid"
    DUPLICATE = "duplicate"
    SKIPPED = "skipped"  # left out by the mapping's filter
    UNCERTAIN = "uncertain"
    REFUSED = "refused"  # Gong refused this very payload before: not sent again unchanged
    HELD = "held"  # a delete that cannot be made safely


CHANGES = (Kind.CREATE, Kind.UPDATE, Kind.REPLACE, Kind.DELETE)


@dataclass(frozen=True, slots=True)
class Change:
    """What a sync does with one key."""

    kind: Kind
    key: str
    line: int  # 0 for a key that is in the ledger only
    row: Row | None = None  # the mapped input row, for what is sent or recorded
    meeting_id: str | None = None
    organizer: str | None = None  # the meeting's current organizer (for a delete)
    diffs: tuple[str, ...] = ()  # update / replace: one text per changed field
    reason: str | None = None  # why nothing is sent, or a note

    def delete_row(self) -> Row:
        return Row(self.line, self.key, {"organizerEmail": self.organizer or ""}, op="delete",
                   meeting_id=self.meeting_id)


@dataclass(slots=True)
class Plan:
    """What a sync would do. Unchanged rows are counted, not kept (a nightly sheet is mostly
    unchanged: a million of them would otherwise be a million Change objects)."""

    changes: list[Change] = field(default_factory=list)
    unchanged: int = 0
    rows_read: int = 0
    absent: int = 0  # known keys not in the input, left alone because prune is off
    warnings: list[str] = field(default_factory=list)
    source: str = "the ledger"  # what the input was compared with: the ledger, the state store

    def count(self, kind: Kind) -> int:
        if kind is Kind.UNCHANGED:
            return self.unchanged
        return sum(1 for c in self.changes if c.kind is kind)

    def counts(self) -> Counter[Kind]:
        counts = Counter(c.kind for c in self.changes)
        if self.unchanged:
            counts[Kind.UNCHANGED] = self.unchanged
        return counts

    @property
    def pending(self) -> bool:
        """Whether a sync would send anything."""
        return any(c.kind in CHANGES for c in self.changes)

    @property
    def deletes(self) -> list[Change]:
        """Every change that deletes a meeting: prunes and replaces."""
        return [c for c in self.changes if c.kind in (Kind.DELETE, Kind.REPLACE)]

    def phases(self) -> tuple[list[Row], list[Row]]:
        """The rows to send: deletes first, then creates and updates."""
        first = [c.delete_row() for c in self.deletes]
        second: list[Row] = []
        for c in self.changes:
            if c.kind in (Kind.CREATE, Kind.REPLACE) and c.row is not None:
                second.append(dataclasses.replace(c.row, op="create", meeting_id=None))
            elif c.kind is Kind.UPDATE and c.row is not None:
                second.append(dataclasses.replace(c.row, op="update", meeting_id=c.meeting_id))
        return first, second

    def notes(self) -> list[Record]:
        """The records of rows that are not sent (unchanged rows get none, as in a resume)."""
        status = {Kind.INVALID: Status.INVALID, Kind.DUPLICATE: Status.DUPLICATE,
                  Kind.SKIPPED: Status.SKIPPED, Kind.UNCERTAIN: Status.UNCERTAIN,
                  Kind.HELD: Status.NOT_SENT, Kind.REFUSED: Status.FAILED}
        return [Record(c.line, c.key, status[c.kind], meeting_id=c.meeting_id,
                       errors=(c.reason or "",))
                for c in self.changes if c.kind in status and (c.line or c.kind is Kind.HELD)]


def describe_changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> tuple[str, ...]:
    """One short text per field that differs: `title: 'A' -> 'B'`, `invitees: +a@x, -b@y`."""
    names = [*_FIELD_ORDER, *sorted((set(old) | set(new)) - set(_FIELD_ORDER))]
    out = []
    for name in names:
        a, b = old.get(name), new.get(name)
        if a == b:
            continue
        if name == "invitees":
            out.append(_invitee_diff(a, b))
        else:
            out.append(f"{name}: {_short(a)} -> {_short(b)}")
    return tuple(out)


def _short(value: Any) -> str:
    if value is None:
        return "(none)"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _emails(invitees: Any) -> list[str]:
    if not isinstance(invitees, list):
        return []
    return [str(i.get("email", "")).lower() if isinstance(i, Mapping) else str(i).lower()
            for i in invitees]


def _invitee_diff(old: Any, new: Any) -> str:
    before, after = _emails(old), _emails(new)
    parts = [f"+{e}" for e in after if e not in before] + [f"-{e}" for e in before
                                                           if e not in after]
    return "invitees: " + (", ".join(parts) if parts else "names or order changed")


def organizer_of(entry: LedgerEntry) -> str | None:
    if entry.organizer:
        return entry.organizer
    org = (entry.payload or {}).get("organizerEmail")
    return org if isinstance(org, str) and org else None


def make_plan(rows: Iterable[Row], entries: Mapping[str, LedgerEntry] | Known, *,
              prune: bool = False, resend_uncertain: bool = False) -> Plan:
    """Compare mapped input rows with what is known to exist (a mapping of entries, or a
    known.KnownIndex of the state store's), by key. Sends nothing."""
    known: Known = InMemoryKnown(entries) if isinstance(entries, Mapping) else entries
    plan = Plan()
    seen = FirstLines()  # each valid key's first line, flat in memory
    try:
        _plan_rows(plan, rows, known, seen, prune=prune, resend_uncertain=resend_uncertain)
    finally:
        seen.close()
    return plan


def _plan_rows(plan: Plan, rows: Iterable[Row], known: Known, seen: FirstLines, *,
               prune: bool, resend_uncertain: bool) -> None:
    blind = keyless = 0
    for row in rows:
        plan.rows_read += 1
        if row.skipped_reason is not None:
            # Left out by the filter: not in the input as far as a prune goes.
            plan.changes.append(Change(Kind.SKIPPED, row.key, row.line, reason=row.skipped_reason))
            continue
        entry = known.get(row.key)  # the input holds the key, valid or not: never pruned
        if not row.valid:
            blind += row.key.startswith(_BLIND_KEYS)
            plan.changes.append(Change(
                Kind.INVALID, row.key, row.line,
                meeting_id=entry.meeting_id if entry is not None and entry.exists else None,
                reason="; ".join(row.errors) or "the row has no payload"))
            continue
        first = seen.add(row.key, row.line)
        if first is not None:
            plan.changes.append(Change(Kind.DUPLICATE, row.key, row.line, reason=(
                f"line {row.line}: same key {row.key!r} as line {first}; not sent twice")))
            continue
        keyless += "externalId" not in (row.payload or {})
        change = _plan_row(row, entry, resend_uncertain)
        if change.kind is Kind.UNCHANGED:
            plan.unchanged += 1
        else:
            plan.changes.append(change)
    if keyless:
        plan.warnings.append(
            f"{plural(keyless, 'row')} {agree(keyless, 'has', 'have')} no externalId and "
            f"{agree(keyless, 'is', 'are')} known by {agree(keyless, 'its', 'their')} content: a "
            "moved or renamed one is planned as a new meeting (and its old one is deleted only "
            f"with prune); map an externalId column to update {agree(keyless, 'it', 'them')} in "
            "place")
    for key, entry in known.unnamed():
        if entry.exists and not prune:
            plan.absent += 1
        elif entry.exists:
            organizer = organizer_of(entry)
            reason = None
            if organizer is None:
                reason = "the organizer is not known, and a delete needs it"
            elif blind:
                reason = (f"{plural(blind, 'invalid row')} {agree(blind, 'has', 'have')} no "
                          "readable key and could be this meeting; fix "
                          f"{agree(blind, 'it', 'them')} to let the prune go ahead")
            plan.changes.append(Change(Kind.HELD if reason else Kind.DELETE, key, 0,
                                       meeting_id=entry.meeting_id, organizer=organizer,
                                       reason=reason or "no longer in the input"))
        elif entry.in_flight and prune:
            plan.changes.append(Change(Kind.UNCERTAIN, key, 0, reason=(
                "no longer in the input, but a create for it was cut off: Gong may hold a "
                "meeting for it whose id is not known; check Gong")))


def _plan_row(row: Row, entry: LedgerEntry | None, resend_uncertain: bool) -> Change:
    assert row.payload is not None
    if entry is not None and entry.refused_hash is not None \
            and entry.refused_hash == payload_digest(row.payload):
        return Change(Kind.REFUSED, row.key, row.line, meeting_id=entry.meeting_id
                      if entry.exists else None, reason=REFUSED_BEFORE)
    if entry is None or not entry.exists:
        if entry is not None and entry.in_flight and not resend_uncertain:
            return Change(Kind.UNCERTAIN, row.key, row.line, row, reason=UNCERTAIN_CREATE)
        return Change(Kind.CREATE, row.key, row.line, row)
    diffs = describe_changes(entry.payload, row.payload) if entry.payload is not None else ()
    current = organizer_of(entry)
    wanted = str(row.payload.get("organizerEmail", ""))
    if current is not None and current.lower() != wanted.lower():
        return Change(Kind.REPLACE, row.key, row.line, row, entry.meeting_id, current, diffs,
                      reason="the organizer changed: the meeting is deleted and created anew")
    if payload_digest(row.payload) == entry.payload_hash and not entry.in_flight:
        return Change(Kind.UNCHANGED, row.key, row.line, meeting_id=entry.meeting_id)
    reason = None
    if entry.in_flight:  # PUT is idempotent: sending it again is safe
        reason = "an earlier request for it was cut off; sent again"
    elif entry.payload is None:
        reason = "changed fields unknown: the ledger entry predates stored payloads"
    return Change(Kind.UPDATE, row.key, row.line, row, entry.meeting_id, current, diffs,
                  reason=reason)


def read_plan(cfg: Config, input_path: str, ledger_path: str | None, *, prune: bool = False,
              resend_uncertain: bool = False, sheet: str | None = None,
              known: Known | None = None) -> Plan:
    """Read and map the input and plan it against what is known to exist: the ledger file
    `ledger_path` (read, not written), else `known` (the state store's, see known.py)."""
    mapper = Mapper.from_config(cfg)
    warnings: list[str] = []
    entries: Mapping[str, LedgerEntry] | Known
    if ledger_path is not None:
        entries, warnings = read_ledger(ledger_path)
    else:
        assert known is not None, "plan against a ledger or the state store"
        entries = known
    with read_input(cfg, input_path, mapper, sheet=sheet) as raws:
        plan = make_plan((mapper.map(raw) for raw in raws), entries, prune=prune,
                         resend_uncertain=resend_uncertain)
    plan.warnings = [*warnings, *plan.warnings, *mapper.drain_warnings()]
    plan.source = "the ledger" if ledger_path is not None else "the state store"
    return plan


def plan_with_ledger(cfg: Config, input_path: str, ledger_path: str, *, prune: bool = False,
                     resend_uncertain: bool = False, sheet: str | None = None) -> Plan:
    """Plan against a ledger file of an earlier version (deprecated: said once)."""
    from ..ledger import warn_deprecated

    warn_deprecated(ledger_path)
    return read_plan(cfg, input_path, ledger_path, prune=prune,
                     resend_uncertain=resend_uncertain, sheet=sheet)


async def plan_input(cfg: Config, input_path: str, ledger_path: str | None, *,
                     prune: bool = False, resend_uncertain: bool = False,
                     sheet: str | None = None, known: Known | None = None) -> Plan:
    """What `plan` and `sync` compare the input with: a ledger file when given (deprecated),
    else `known` when given, else every key the state store of `cfg`'s Gong knows."""
    if ledger_path:
        return plan_with_ledger(cfg, input_path, ledger_path, prune=prune,
                                resend_uncertain=resend_uncertain, sheet=sheet)
    from .known import known_of_store

    if known is None:
        known = await known_of_store(cfg)
    try:
        return read_plan(cfg, input_path, None, prune=prune, resend_uncertain=resend_uncertain,
                         sheet=sheet, known=known)
    finally:
        known.close()


def check_deletes(plan: Plan, max_deletes: int) -> None:
    """Refuse, before anything is sent, a sync that would delete more than `max_deletes`."""
    n = len(plan.deletes)
    if n > max_deletes:
        raise UsageError(f"this sync would delete {n} meetings, more than --max-deletes "
                         f"{max_deletes}; nothing was sent (check the input, or raise "
                         "--max-deletes)")
