"""What one engine run shares between its stages: the session's parts, the row events, the
counters, and the bookkeeping every stage does (record a row, stop sending, drain)."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Sequence
from typing import Any

from ..config import Config
from ..errors import BulkmeetError, JournalError
from ..gate import GateClosed
from ..models import Record, Row, Status
from ..planner import Send
from ..policy import Breaker
from ..session import Session
from ..store.base import new_owner
from .events import Fanout, Journal, RowEvents
from .organizers import OrganizerMemo
from .stats import RunStats

log = logging.getLogger("bulkmeet")


class RunState:
    """The state of an engine and its bookkeeping; the stages (Feed, Workers) build on it."""

    def __init__(
        self,
        cfg: Config,
        session: Session,
        journal: Journal,
        *,
        listeners: Sequence[RowEvents] = (),
        resend_uncertain: bool = False,
        stop: asyncio.Event | None = None,
        hard_stop: asyncio.Event | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.cfg = cfg
        self.client = session.client
        self.gate = session.gate
        self.quota = session.quota
        self.store = session.store
        self.owner = new_owner()  # this engine's name on its claims in the state store
        self.organizers = OrganizerMemo()  # organizers Gong refused in this run
        self._claimed: dict[str, Record | None] = {}  # keys claimed -> their final record
        # The op each of those keys is claimed for in the store; None: sent without a claim
        # (the store knew no meeting to update or delete), its outcome recorded there after.
        self._claim_op: dict[str, str | None] = {}
        # The journal itself when nobody else listens: two calls a row fewer.
        self.events: Journal | Fanout = Fanout(journal, listeners) if listeners else journal
        self.resend_uncertain = resend_uncertain
        self.stop = stop or asyncio.Event()
        self.hard_stop = hard_stop or asyncio.Event()
        self.rng = rng or random.Random()
        self.stats = RunStats()
        self._ran = False  # whether run() has used `stats` already
        self.breaker = Breaker()
        self._busy: set[asyncio.Task[None]] = set()  # workers with a row in hand
        self._drain: tuple[Status, str] | None = None
        self._wake = asyncio.Event()  # set when the run stops sending: cuts back-off sleeps
        self._halted = False  # stop reading: the journal cannot be written

    # -- bookkeeping ----------------------------------------------------------------------

    def _finish(self, record: Record, row: Row | None = None,
                payload: dict[str, Any] | None = None) -> None:
        try:
            self.events.final(record, row, payload)
        except JournalError as exc:
            # Left as the file says: no entry (never sent: the resume sends it) or a `sending`
            # (the resume calls it uncertain). Both are true.
            self.stats.unrecorded += 1
            self._journal_failed(exc)
            return
        if row is not None and row.key in self._claimed:
            self._claimed[row.key] = record  # settled in the store once the worker is done
        self.stats.counts[record.status._value_] += 1  # _value_: .value is a slow descriptor
        if record.status is Status.UNCERTAIN:
            self.stats.uncertain_lines.append(record.line)

    def _start_drain(self, status: Status, reason: str, *, quiet: bool = False) -> None:
        """From now on nothing is sent; every row not finished gets `status` with `reason`.
        `quiet`: the CLI says why itself (stats.stopped_by)."""
        if self._drain is None:
            self._drain = (status, reason)
            self.stats.stop_reason = reason
            self.stats.exit_status = status
            self.gate.close(GateClosed(reason))
            self._wake.set()
            if not quiet:
                log.warning("stopping: %s", reason, extra={"event": "stop"})

    def _stop_run(self, error: BulkmeetError, summary: str) -> None:
        """Stop sending for a reason that holds for every row; the run exits with its code.
        Rows get the whole reason; the summary line the short one (the CLI prints the rest)."""
        if self.stats.stopped_by is None:
            self.stats.stopped_by = error
        if self._drain is None:
            self._start_drain(Status.NOT_SENT, f"not sent: {error}", quiet=True)
            self.stats.stop_reason = summary

    def _journal_failed(self, exc: JournalError) -> None:
        """The journal refused an entry: send nothing more, read no further."""
        self._halted = True
        self._stop_run(exc, "the results file cannot be written")

    def _finish_drained(self, item: Send, *, attempts: int = 0) -> None:
        """Record a row the run will not send now, keeping its payload for `retry`."""
        status, reason = self._drain or (Status.NOT_SENT, "the run stopped")
        row = item.row
        self._finish(Record(row.line, row.key, status, errors=(reason,), attempts=attempts,
                            payload_hash=item.digest), row, row.payload)

    def _count_request(self) -> None:
        now = time.monotonic()
        self.stats.requests += 1
        if self.stats.first_request is None:
            self.stats.first_request = now
        self.stats.last_request = now
