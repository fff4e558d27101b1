"""Sync: the sheet as the source of truth. Plan what a sync would change, carry it out, undo a run.

The ledger says what exists in Gong (key -> meeting id, last payload sent); the input says what
should. `make_plan` compares them by key:

    key in the input only (or deleted per the ledger)  -> create (POST)
    key in both, payload changed                         -> update (PUT); replace (DELETE, then
                                                            POST) when the organizer changed,
                                                            because a meeting belongs to its
                                                            organizer and PUT cannot move it
    key in both, payload the same                        -> unchanged: nothing sent
    key in the ledger only                               -> delete with prune, else left alone

A create that was cut off (the ledger's last word on a key never created is `sending`) may exist
in Gong under an id nobody knows: it is `uncertain` and not sent again without resend_uncertain.
An invalid row keeps its meeting as it is: neither updated nor pruned. An invalid row whose key
cannot be read could be any ledger key, so then no delete is made at all: they are `held`.

`run_sync` sends the plan through the same engine as `bulkmeet run` (gate, retries, results
file, ledger): the deletes first (a replace needs its delete done before its create), then the
creates and updates. The ledger records each change as it lands, so an interrupted sync resumes
by planning again; its results file is a journal, not its resume state. `plan_undo` and
`run_undo` delete the meetings that a results file records as created.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .config import DEFAULT_RATE, Config
from .errors import InputError, UsageError
from .ledger import Ledger, LedgerEntry, read_ledger
from .mapping import Mapper
from .models import Record, Row, Status, payload_digest
from .planner import read_input
from .results import ResultsWriter, read_results
from .words import agree, plural

if TYPE_CHECKING:
    from .engine import Journal, RowEvents, RunStats
    from .runs import OnStart
    from .sandbox import Sandbox

log = logging.getLogger("bulkmeet")

DEFAULT_MAX_DELETES = 10
UNDO_CONFIRM_OVER = 20  # undo of more meetings than this is a dry run unless confirmed
# Keys the mapping gives rows it could not read an id from (mapping._raw_key): such an invalid
# row could be any meeting of the ledger.
_BLIND_KEYS = ("r:", "line:")
_FIELD_ORDER = ("title", "startTime", "endTime", "organizerEmail", "invitees", "externalId")
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
    changes: list[Change] = field(default_factory=list)
    rows_read: int = 0
    absent: int = 0  # ledger keys not in the input, left alone because prune is off
    warnings: list[str] = field(default_factory=list)

    def count(self, kind: Kind) -> int:
        return sum(1 for c in self.changes if c.kind is kind)

    def counts(self) -> Counter[Kind]:
        return Counter(c.kind for c in self.changes)

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
                  Kind.HELD: Status.NOT_SENT}
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


def _organizer(entry: LedgerEntry) -> str | None:
    if entry.organizer:
        return entry.organizer
    org = (entry.payload or {}).get("organizerEmail")
    return org if isinstance(org, str) and org else None


def make_plan(rows: Iterable[Row], entries: Mapping[str, LedgerEntry], *, prune: bool = False,
              resend_uncertain: bool = False) -> Plan:
    """Compare mapped input rows with the ledger's entries, by key. Sends nothing."""
    plan = Plan()
    seen: dict[str, int] = {}
    present: set[str] = set()  # keys the input holds, valid or not: never pruned
    blind = keyless = 0
    for row in rows:
        plan.rows_read += 1
        entry = entries.get(row.key)
        if row.skipped_reason is not None:
            plan.changes.append(Change(Kind.SKIPPED, row.key, row.line, reason=row.skipped_reason))
            continue
        if not row.valid:
            present.add(row.key)
            blind += row.key.startswith(_BLIND_KEYS)
            plan.changes.append(Change(
                Kind.INVALID, row.key, row.line,
                meeting_id=entry.meeting_id if entry is not None and entry.exists else None,
                reason="; ".join(row.errors) or "the row has no payload"))
            continue
        if row.key in seen:
            plan.changes.append(Change(Kind.DUPLICATE, row.key, row.line, reason=(
                f"line {row.line}: same key {row.key!r} as line {seen[row.key]}; not sent twice")))
            continue
        seen[row.key] = row.line
        present.add(row.key)
        keyless += "externalId" not in (row.payload or {})
        plan.changes.append(_plan_row(row, entry, resend_uncertain))
    if keyless:
        plan.warnings.append(
            f"{plural(keyless, 'row')} {agree(keyless, 'has', 'have')} no externalId and "
            f"{agree(keyless, 'is', 'are')} known by {agree(keyless, 'its', 'their')} content: a "
            "moved or renamed one is planned as a new meeting (and its old one is deleted only "
            f"with prune); map an externalId column to update {agree(keyless, 'it', 'them')} in "
            "place")
    for key, entry in entries.items():
        if key in present:
            continue
        if entry.exists and not prune:
            plan.absent += 1
        elif entry.exists:
            organizer = _organizer(entry)
            reason = None
            if organizer is None:
                reason = "the ledger does not know the organizer, which a delete needs"
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
    return plan


def _plan_row(row: Row, entry: LedgerEntry | None, resend_uncertain: bool) -> Change:
    assert row.payload is not None
    if entry is None or not entry.exists:
        if entry is not None and entry.in_flight and not resend_uncertain:
            return Change(Kind.UNCERTAIN, row.key, row.line, row, reason=UNCERTAIN_CREATE)
        return Change(Kind.CREATE, row.key, row.line, row)
    diffs = describe_changes(entry.payload, row.payload) if entry.payload is not None else ()
    current = _organizer(entry)
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


def read_plan(cfg: Config, input_path: str, ledger_path: str, *, prune: bool = False,
              resend_uncertain: bool = False, sheet: str | None = None) -> Plan:
    """Read and map the input, read the ledger (without writing to it), and plan."""
    mapper = Mapper.from_config(cfg)
    entries, warnings = read_ledger(ledger_path)
    with read_input(cfg, input_path, mapper, sheet=sheet) as raws:
        plan = make_plan((mapper.map(raw) for raw in raws), entries, prune=prune,
                         resend_uncertain=resend_uncertain)
    plan.warnings = [*warnings, *plan.warnings, *mapper.drain_warnings()]
    return plan


def check_deletes(plan: Plan, max_deletes: int) -> None:
    """Refuse, before anything is sent, a sync that would delete more than `max_deletes`."""
    n = len(plan.deletes)
    if n > max_deletes:
        raise UsageError(f"this sync would delete {n} meetings, more than --max-deletes "
                         f"{max_deletes}; nothing was sent (check the input, or raise "
                         "--max-deletes)")


# -- carrying it out ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Phase:
    rows: list[Row]
    use_ledger: bool = True
    # Keys created here only if the ledger shows their old meeting deleted (replaces): a failed
    # delete must not leave two meetings for one row.
    after_delete: frozenset[str] = frozenset()


async def run_sync(cfg: Config, plan: Plan, *, out: str, ledger_path: str, fresh: bool = False,
                   resend_uncertain: bool = False, insecure: bool = False,
                   stop: asyncio.Event | None = None, hard_stop: asyncio.Event | None = None,
                   on_start: OnStart | None = None, sandbox: bool = False,
                   sandbox_rate: float | None = DEFAULT_RATE,
                   listeners: Sequence[RowEvents] = ()) -> RunStats:
    """Carry a plan out. Checking deletes against a limit and a confirmation is the caller's."""
    deletes, changes = plan.phases()
    replaced = frozenset(c.key for c in plan.changes if c.kind is Kind.REPLACE)
    return await execute(cfg, [Phase(deletes), Phase(changes, after_delete=replaced)],
                         plan.notes(), out=out,
                         ledger_path=ledger_path, fresh=fresh, resend_uncertain=resend_uncertain,
                         insecure=insecure, rows_read=plan.rows_read,
                         unchanged=plan.count(Kind.UNCHANGED), stop=stop, hard_stop=hard_stop,
                         on_start=on_start, sandbox=sandbox, sandbox_rate=sandbox_rate,
                         listeners=listeners)


async def execute(cfg: Config, phases: Sequence[Phase], notes: Sequence[Record], *, out: str,
                  ledger_path: str | None, fresh: bool = False, resend_uncertain: bool = False,
                  insecure: bool = False, rows_read: int = 0, unchanged: int = 0,
                  stop: asyncio.Event | None = None, hard_stop: asyncio.Event | None = None,
                  on_start: OnStart | None = None, sandbox: bool = False,
                  sandbox_rate: float | None = DEFAULT_RATE,
                  listeners: Sequence[RowEvents] = ()) -> RunStats:
    """Record `notes`, then send each phase through the engine, one after the other, in one
    session (gate, client, quota) with one results file and ledger. A phase after a stop is not
    sent: its rows get the stop's status. With `sandbox`, a built-in sandbox that already holds
    the meetings the phases update or delete stands in for Gong."""
    from .engine import Engine, Journal, RunStats
    from .planner import Planner, Settled
    from .runs import close_journals, open_ledger
    from .session import Target, credentials_for, open_session

    stop = stop or asyncio.Event()
    total = RunStats(rows_read=rows_read, skipped=unchanged)
    target = Target(sandbox=sandbox, sandbox_rate=sandbox_rate, insecure=insecure)
    sending = any(p.rows for p in phases)
    credentials = credentials_for(target) if sending else None  # nothing to send: none needed
    ledger = open_ledger(ledger_path)
    journal = Journal(ResultsWriter(out, fresh=fresh), ledger)
    parts: list[RunStats] = []
    gate = None
    try:
        for rec in notes:
            journal.final(rec, None, None)
            for listener in listeners:
                listener.read(Settled(rec))
                listener.final(rec, None, None)
            total.counts[rec.status.value] += 1
            if rec.status is Status.UNCERTAIN:
                total.uncertain_lines.append(rec.line)
        if credentials is None:
            return total
        seed = _seeder([r for p in phases for r in p.rows])
        async with open_session(cfg, target, credentials=credentials, seed=seed) as session:
            gate = session.gate
            for phase in phases:
                if not phase.rows:
                    continue
                if stop.is_set() or any(p.stop_reason for p in parts):
                    _not_sent(phase.rows, journal, total, stop, parts)
                    continue
                rows = _held_back(phase, ledger, journal, total)
                engine = Engine(session.cfg, session,
                                journal if phase.use_ledger else Journal(journal.writer),
                                listeners=listeners, resend_uncertain=resend_uncertain,
                                stop=stop, hard_stop=hard_stop)
                if on_start is not None:
                    on_start(engine.stats, session)
                planner = Planner(ledger=ledger.entries if ledger and phase.use_ledger else None,
                                  resend_uncertain=resend_uncertain)
                try:
                    parts.append(await engine.run(planner.plan_rows(rows)))
                finally:
                    planner.close()
        total.output_errors.extend(session.output_errors)
    finally:
        for part in parts:
            total.add(part)
        if gate is not None:
            total.pauses, total.paused_seconds = gate.pauses, gate.paused_seconds
        close_journals(journal, total)
        total.finished = time.monotonic()
    return total


def _seeder(rows: Sequence[Row]) -> Callable[[Sandbox], None]:
    """Give a fresh sandbox the meetings that `rows` update or delete, as Gong holds them."""

    def seed(sandbox: Sandbox) -> None:
        for row in rows:
            organizer = (row.payload or {}).get("organizerEmail")
            if row.meeting_id and organizer:
                sandbox.state.meetings[row.meeting_id] = {
                    "meetingId": row.meeting_id, "organizerEmail": organizer,
                    "meetingUrl": f"https://join.sandbox.gong.example/sandbox/{row.meeting_id}"}

    return seed


def _held_back(phase: Phase, ledger: Ledger | None, journal: Journal,
               total: RunStats) -> list[Row]:
    """The phase's rows less the replaces whose delete did not land, which are recorded."""
    rows = []
    for row in phase.rows:
        entry = ledger.get(row.key) if ledger is not None else None
        if row.key in phase.after_delete and (entry is None or not entry.deleted):
            journal.final(Record(row.line, row.key, Status.NOT_SENT, errors=(
                "not created: the meeting it replaces was not deleted (see the record before)",)),
                None, None)
            total.counts[Status.NOT_SENT.value] += 1
        else:
            rows.append(row)
    return rows


def _not_sent(rows: list[Row], journal: Journal, total: RunStats, stop: asyncio.Event,
              parts: list[RunStats]) -> None:
    if stop.is_set() or not parts:
        status, reason = Status.NOT_SENT, "not sent: the run was interrupted"
        total.interrupted = True
    else:
        last = parts[-1]
        status, reason = last.exit_status or Status.NOT_SENT, last.stop_reason or "stopped"
    for row in rows:
        journal.final(Record(row.line, row.key, status, meeting_id=row.meeting_id,
                             errors=(reason,)), None, None)
        total.counts[status.value] += 1


# -- undo ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class UndoItem:
    key: str
    line: int
    meeting_id: str
    organizer: str | None
    tracked: bool  # the ledger holds this meeting under this key: mark it deleted there


@dataclass(slots=True)
class UndoPlan:
    items: list[UndoItem] = field(default_factory=list)  # to delete
    unknown: list[UndoItem] = field(default_factory=list)  # organizer not known: cannot delete
    done: int = 0  # deleted by an earlier undo into the same file
    warnings: list[str] = field(default_factory=list)


def undo_out(results_path: str) -> str:
    """The undo's own results file: RESULTS with `.undo` before the suffix."""
    p = Path(results_path)
    return str(p.with_name(p.stem + ".undo" + p.suffix))


def plan_undo(results_path: str, *, out: str, ledger_path: str | None = None) -> UndoPlan:
    """The meetings a results file records as created and that still exist by its records
    (created, maybe updated since, not deleted), less those an earlier undo into `out` already
    deleted."""
    if not Path(results_path).exists():
        raise InputError(f"results file {results_path} does not exist")
    if Path(out).resolve() == Path(results_path).resolve():
        raise UsageError("the undo's results file must not be the results file it undoes")
    state = read_results(results_path)
    undone = read_results(out)
    plan = UndoPlan(warnings=[*state.warnings, *undone.warnings])
    entries: dict[str, LedgerEntry] = {}
    if ledger_path is not None:
        entries, warnings = read_ledger(ledger_path)
        plan.warnings.extend(warnings)
    for key, ks in state.keys.items():
        last = ks.last
        # The meeting a run into this file created, if it still exists (a later update in the
        # same file, a sync's, keeps it this file's to undo).
        meeting = ks.created if ks.created is not None and ks.created == ks.meeting_id else None
        if last is None or meeting is None:
            continue
        before = undone.keys.get(key)
        if before is not None and before.last is not None and \
                before.last.status is Status.DELETED and before.last.meeting_id == meeting:
            plan.done += 1
            continue
        entry = entries.get(key)
        tracked = entry is not None and entry.meeting_id == meeting
        organizer = ks.organizer
        if not organizer:
            organizer = _organizer(entry) if entry is not None and tracked else None
        item = UndoItem(key, last.line, meeting, organizer, tracked)
        (plan.items if organizer else plan.unknown).append(item)
    return plan


async def run_undo(cfg: Config, plan: UndoPlan, *, out: str, ledger_path: str | None = None,
                   on_start: OnStart | None = None, listeners: Sequence[RowEvents] = (),
                   insecure: bool = False, stop: asyncio.Event | None = None,
                   hard_stop: asyncio.Event | None = None, sandbox: bool = False,
                   sandbox_rate: float | None = DEFAULT_RATE) -> RunStats:
    """Delete the planned meetings (a 404 counts as already gone); the ledger, if given, marks
    deleted only the keys whose meeting it holds."""

    def row(item: UndoItem) -> Row:
        return Row(item.line, item.key, {"organizerEmail": item.organizer}, op="delete",
                   meeting_id=item.meeting_id)

    phases = [Phase([row(i) for i in plan.items if i.tracked], use_ledger=True),
              Phase([row(i) for i in plan.items if not i.tracked], use_ledger=False)]
    notes = [Record(i.line, i.key, Status.NOT_SENT, meeting_id=i.meeting_id, errors=(
        f"the organizer of meeting {i.meeting_id} is not in the results file; delete it in "
        "Gong",)) for i in plan.unknown]
    return await execute(cfg, phases, notes, out=out, ledger_path=ledger_path, insecure=insecure,
                         rows_read=len(plan.items) + len(plan.unknown), unchanged=plan.done,
                         stop=stop, hard_stop=hard_stop, sandbox=sandbox,
                         sandbox_rate=sandbox_rate, on_start=on_start, listeners=listeners)
