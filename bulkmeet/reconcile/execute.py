"""Carrying a sync (or an undo) out: its phases through the engine, in one session.

`run_sync` sends the plan through the same engine as `bulkmeet run` (gate, retries, results
file, ledger): the deletes first (a replace needs its delete done before its create), then the
creates and updates. The ledger records each change as it lands, so an interrupted sync resumes
by planning again; its results file is a journal, not its resume state.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..config import DEFAULT_RATE, Config
from ..models import Record, Row, Status
from ..results import ResultsWriter
from .plan import Kind, Plan

if TYPE_CHECKING:
    from ..engine import Journal, RowEvents, RunStats
    from ..runs import OnStart
    from ..sandbox import Sandbox

log = logging.getLogger("bulkmeet")


# -- carrying it out ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Phase:
    rows: list[Row]
    use_ledger: bool = True
    # Keys created here only if this sync deleted their old meeting (replaces): a failed delete
    # must not leave two meetings for one row.
    after_delete: frozenset[str] = frozenset()


async def run_sync(cfg: Config, plan: Plan, *, out: str, ledger_path: str | None,
                   fresh: bool = False,
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
    from ..engine import Engine, Journal, RunStats
    from ..planner import Planner, Settled
    from ..runs import close_journals, open_ledger
    from ..session import Target, credentials_for, open_session, target_label

    stop = stop or asyncio.Event()
    total = RunStats(rows_read=rows_read, skipped=unchanged, settled=unchanged)
    target = Target(sandbox=sandbox, sandbox_rate=sandbox_rate, insecure=insecure)
    sending = any(p.rows for p in phases)
    credentials = credentials_for(target) if sending else None  # nothing to send: none needed
    ledger = open_ledger(ledger_path)
    # Where the rows go, on every `sending` entry: an undo of this file elsewhere is refused.
    label = target_label(cfg, target, credentials) if credentials is not None else None
    _refuse_other_targets(out, label, fresh)
    journal = Journal(ResultsWriter(out, fresh=fresh, target=label), ledger)
    parts: list[RunStats] = []
    listener, deleted = _deleted_keys()
    listeners = [*listeners, listener]
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
                rows = _held_back(phase, deleted, journal, total)
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


def _refuse_other_targets(out: str, label: str | None, fresh: bool) -> None:
    """Appending a sandbox's rows to a real file (or the other way round) would leave a file
    no undo can take: refused, as `run` refuses to resume one."""
    if fresh or label is None:
        return
    from ..errors import UsageError
    from ..prior import open_prior
    from ..results import other_targets

    prior = open_prior(out)
    try:
        never, _ = other_targets(prior.targets, label)
    finally:
        prior.close()
    if never:
        raise UsageError(f"{out} holds the results of runs that sent to {', '.join(never)}; "
                         f"this sync sends to {label}: give another --out (or --fresh)")


def _deleted_keys() -> tuple[RowEvents, set[str]]:
    """A listener, and the keys whose meeting a delete of this run removed (a 404 counts: it
    is gone). Made here: the engine's modules load only when something is sent."""
    from ..engine.events import RowEvents

    keys: set[str] = set()

    class Deleted(RowEvents):
        def final(self, record: Record, row: Row | None,
                  payload: dict[str, Any] | None) -> None:
            if record.status is Status.DELETED:
                keys.add(record.key)

    return Deleted(), keys


def _held_back(phase: Phase, deleted: set[str], journal: Journal,
               total: RunStats) -> list[Row]:
    """The phase's rows less the replaces whose delete did not land, which are recorded."""
    rows = []
    for row in phase.rows:
        if row.key in phase.after_delete and row.key not in deleted:
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
