"""Undo: delete the meetings that a results file records as created (`plan_undo`,
`run_undo`), through the same engine as every other command."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ..config import DEFAULT_RATE, Config
from ..errors import InputError, UsageError
from ..ledger import LedgerEntry, read_ledger
from ..models import Record, Row, Status
from ..results import other_targets, read_results
from .execute import Phase, execute
from .plan import organizer_of

if TYPE_CHECKING:
    from ..engine import RowEvents, RunStats
    from ..runs import OnStart

log = logging.getLogger("bulkmeet")


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


def plan_undo(results_path: str, *, out: str, ledger_path: str | None = None,
              target: str | None = None) -> UndoPlan:
    """The meetings a results file records as created and that still exist by its records
    (created, maybe updated since, not deleted), less those an earlier undo into `out` already
    deleted."""
    if not Path(results_path).exists():
        raise InputError(f"results file {results_path} does not exist")
    if Path(out).resolve() == Path(results_path).resolve():
        raise UsageError("the undo's results file must not be the results file it undoes")
    state = read_results(results_path)
    never, maybe = other_targets(state.targets, target)
    if never:
        raise UsageError(
            f"{results_path} holds the results of runs that sent to {', '.join(never)}; this "
            f"undo sends to {target}. Its meetings are not there: nothing was sent (undo it "
            "where it was run: with --sandbox for a sandbox run, without it for a real one)")
    undone = read_results(out)
    plan = UndoPlan(warnings=[*state.warnings, *undone.warnings])
    if maybe:
        plan.warnings.append(
            f"{results_path} was written by runs that sent to {', '.join(maybe)}; this undo "
            f"sends to {target} (another credential or host name of the same company?): a "
            "meeting that is not there answers 404 and counts as gone")
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
            organizer = organizer_of(entry) if entry is not None and tracked else None
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
