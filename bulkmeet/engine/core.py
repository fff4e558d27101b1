"""The engine: planned work -> bounded queue -> N workers -> row events. One engine for every
command that sends (run, retry, sync, undo).

Every row the engine takes ends with exactly one final record:
- rows settled without a request (invalid, duplicate, in the ledger) are recorded by the reader
  stage and never reach the queue; rows an earlier run settled are only counted;
- each queued row is finished by a worker, which records the outcome before it takes the next;
- when the run must stop sending (401/403, quota, the breaker), rows still queued or unread get
  `not_sent` or `deferred`; on Ctrl-C/SIGTERM reading stops, requests in flight get up to
  `grace_period` to finish, queued rows get `not_sent` and unread rows no record (the resume
  reads them); a request cut off mid-flight gets `uncertain`;
- when the journal cannot be written (a full disk), nothing more is sent and reading stops: the
  file holds whole entries only, and the resume finishes the rest.

What an answer means is `policy.next_step`; the run-wide breaker is `policy.Breaker`.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Iterable, Sequence
from typing import Any

from ..client import Lost, Outcome, Rejected, Succeeded
from ..config import Config
from ..errors import AuthError, BulkmeetError, JournalError, QuotaExhausted, Unreachable
from ..gate import GateClosed
from ..models import Record, Row, Status
from ..planner import Known, Send, Settled, Work
from ..policy import Again, Breaker, Done, Finish, Pause, TooLong, next_step, no_answer
from ..session import Session
from ..triage import Decision
from .events import Fanout, Journal, RowEvents
from .feed import chunked, pumped
from .stats import QuotaView, RunStats

log = logging.getLogger("bulkmeet")

# What a successful request of each op records.
_DONE = {"create": Status.CREATED, "update": Status.UPDATED, "delete": Status.DELETED}
CUT_IN_FLIGHT = ("the run was stopped while this request was in flight; Gong may have created "
                 "the meeting")


class Engine:
    """Sends planned work through one session. Build it, then `await engine.run(work)`; an
    engine may run several times in turn (sync's phases), each run with its own RunStats."""

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
        self.events = Fanout(journal, listeners)
        self.resend_uncertain = resend_uncertain
        self.stop = stop or asyncio.Event()
        self.hard_stop = hard_stop or asyncio.Event()
        self.rng = rng or random.Random()
        self.stats = RunStats()
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

    # -- the reader stage -----------------------------------------------------------------

    def _take(self, work: Work) -> Send | None:
        """Count one planned row; record it if it is settled; hand on what must be sent."""
        self.stats.rows_read += 1
        self.events.read(work)
        if isinstance(work, Send):
            return work
        if isinstance(work, Settled):
            record = work.record
            if record.status is Status.SKIPPED:
                self.stats.skipped += work.decision is Decision.IN_LEDGER
            elif work.decision is None:
                log.warning("%s: %s", record.status.value, "; ".join(record.errors),
                            extra={"event": record.status.value, "line": record.line,
                                   "key": record.key})
            self._finish(record)
            return None
        self._known(work)
        return None

    def _known(self, work: Known) -> None:
        match work.decision:
            case Decision.CREATED_BEFORE:
                self.stats.skipped += 1
                self.stats.settled += 1
            case Decision.UNCERTAIN_BEFORE:
                self.stats.uncertain_before += 1
                self.stats.uncertain_lines.append(work.line)
            case Decision.REFUSED_BEFORE:
                # Sending the same payload again cannot succeed; a corrected row has a new digest.
                self.stats.refused_before += 1
                self.stats.settled += 1

    async def _read(self, work: Iterable[Work], queue: asyncio.Queue[Send | None],
                    blocking: bool) -> None:
        source = pumped(work) if blocking else chunked(work)
        async for planned in source:
            if self.stop.is_set() or self._halted:
                self.stats.unread = True
                break
            item = self._take(planned)
            if item is None:
                continue
            if self._drain is not None:
                self._finish_drained(item)
                continue
            try:
                if queue.full():
                    await queue.put(item)
                else:
                    queue.put_nowait(item)  # no coroutine to build when there is room
            except asyncio.CancelledError:
                self._finish_drained(item)
                raise

    # -- the workers ----------------------------------------------------------------------

    async def _work(self, queue: asyncio.Queue[Send | None]) -> None:
        task = asyncio.current_task()
        assert task is not None
        while True:
            item = queue.get_nowait() if not queue.empty() else await queue.get()
            if item is None:
                return
            if self.stop.is_set() or self._drain is not None:
                self._finish_drained(item)
                continue
            self._busy.add(task)
            try:
                await self._send_row(item)
            finally:
                self._busy.discard(task)

    async def _send_row(self, item: Send) -> None:
        """Send one row until it has its final record: through the gate and the quota, with
        retries. Runs once per row, so it allocates little (no closures, a direct path for
        the usual `Succeeded`)."""
        row = item.row
        attempts = failures = 0
        in_flight = False
        try:
            while True:
                try:
                    await self.gate.acquire()
                except GateClosed:
                    self._finish_drained(item, attempts=attempts)
                    return
                if self.stop.is_set():
                    self._finish_drained(item, attempts=attempts)
                    return
                try:
                    self.quota.spend()
                except QuotaExhausted as exc:
                    self._start_drain(Status.DEFERRED, str(exc))
                    self._finish_drained(item, attempts=attempts)
                    return
                try:
                    self.events.sending(row, attempts + 1, item.digest)
                except JournalError as exc:
                    self._journal_failed(exc)
                    return  # not sent, and no record can be written: the resume sends it
                attempts += 1
                self._count_request()
                in_flight = True
                try:
                    outcome: Outcome = await self._call(row)
                except AuthError as exc:
                    in_flight = False
                    self.stats.auth_error = exc
                    self._start_drain(Status.NOT_SENT, f"not sent: the run stopped on {exc}")
                    self._finish(Record(row.line, row.key, Status.FAILED, exc.http_status,
                                        request_id=exc.request_id, errors=(str(exc),),
                                        attempts=attempts, payload_hash=item.digest), row)
                    return
                in_flight = False
                if type(outcome) is Succeeded:
                    self._done(item, outcome, attempts)
                    return
                done, failures = await self._handle(item, outcome, attempts, failures)
                if done:
                    return
        except asyncio.CancelledError:
            # Cancelled at an await: the gate, the request or a back-off. A row is finished
            # only right before a return, so here it never is.
            if in_flight:
                self._finish(Record(row.line, row.key, Status.UNCERTAIN, errors=(CUT_IN_FLIGHT,),
                                    attempts=attempts, payload_hash=item.digest), row)
            else:
                self._finish_drained(item, attempts=attempts)
            raise

    def _done(self, item: Send, outcome: Succeeded, attempts: int) -> None:
        """The request did what it asked: created, updated or deleted."""
        self.breaker.answered(self.gate.paused_seconds)
        row = item.row
        self._finish(Record(row.line, row.key, _DONE[row.op], outcome.http_status,
                            outcome.meeting_id, outcome.meeting_url, outcome.request_id,
                            attempts=attempts, payload_hash=item.digest), row)

    async def _handle(self, item: Send, outcome: Outcome, attempts: int,
                      failures: int) -> tuple[bool, int]:
        """Act on an outcome other than Succeeded. Returns (row finished, failures so far)."""
        row = item.row
        extra = {"line": row.line, "key": row.key}
        step = next_step(outcome, failures=failures, cfg=self.cfg, rand=self.rng.random(),
                         resend_uncertain=self.resend_uncertain)
        if isinstance(outcome, Lost) and isinstance(step, Again) \
                and not self.breaker.may_resend_lost():
            step = Finish(Status.UNCERTAIN, outcome.http_status, outcome.request_id,
                         (outcome.message,), "uncertain")
        if isinstance(step, Done):
            self._done(item, step.outcome, attempts)
            return True, failures
        if isinstance(step, Pause | TooLong):
            return self._limited(item, step, attempts), failures
        if isinstance(step, Again):
            failures += 1
            if isinstance(outcome, Lost):
                log.warning("line %d: %s; sending again (--resend-uncertain)", row.line,
                            step.message, extra={**extra, "event": "retry"})
                return False, failures
            if not self._answered(item, outcome) or self._drain is not None:
                self._finish_drained(item, attempts=attempts)
                return True, failures
            log.info("line %d: %s; retry %d in %.2fs", row.line, step.message, failures,
                     step.delay, extra={**extra, "event": "retry"})
            await self._sleep_unless_stopped(step.delay)
            return False, failures
        # Finish
        if isinstance(outcome, Rejected):
            self.breaker.answered(self.gate.paused_seconds)  # the host is up, not limiting
        elif step.status is Status.FAILED:  # a 5xx or no connection, tried max_attempts times
            if not self._answered(item, outcome) or self._drain is not None:
                self._finish_drained(item, attempts=attempts)
                return True, failures
        if step.log == "failed" and isinstance(outcome, Rejected):
            log.error("line %d: Gong answered %d: %s", row.line, outcome.http_status,
                      "; ".join(outcome.errors), extra={**extra, "event": "failed"})
        elif step.log == "failed":
            log.error("line %d: giving up after %d attempts: %s", row.line, failures + 1,
                      "; ".join(step.errors), extra={**extra, "event": "failed"})
        else:
            log.error("line %d: %s; recorded uncertain", row.line, "; ".join(step.errors),
                      extra={**extra, "event": "uncertain"})
        self._finish(Record(row.line, row.key, step.status, step.http_status,
                            request_id=step.request_id, errors=step.errors, attempts=attempts,
                            payload_hash=item.digest), row)
        if step.status is Status.UNCERTAIN:
            self._silence(outcome, "did not answer")
        return True, failures

    def _answered(self, item: Send, outcome: Outcome) -> bool:
        """A 5xx or no connection: nothing was created. Settle the `sending` entries and count
        it for the breaker. False when the journal refused (the run is stopping)."""
        http_status = getattr(outcome, "http_status", None)
        try:
            self.events.answered(item.row, http_status)
        except JournalError as exc:
            self._journal_failed(exc)  # the `sending` stays: the resume calls it uncertain
            return False
        self._silence(outcome, "could not connect")
        return True

    def _silence(self, outcome: Outcome, what: str) -> None:
        """Count an answer (or its absence) for the breaker; stop the run past its bound."""
        if not no_answer(outcome):
            self.breaker.heard()
            return
        if self.breaker.silent() and self._drain is None:
            n, message = self.breaker.no_answer_count, getattr(outcome, "message", "")
            if what == "could not connect":
                error = Unreachable(f"cannot reach {self.client.base_url}: {n} requests in a "
                                    f"row could not connect (last: {message}); the rest is "
                                    "not sent")
                self._stop_run(error, "Gong cannot be reached")
            else:
                error = Unreachable(f"{self.client.base_url} did not answer {n} requests in a "
                                    f"row (last: {message}); the rest is not sent")
                self._stop_run(error, "Gong does not answer")

    def _limited(self, item: Send, step: Pause | TooLong, attempts: int) -> bool:
        """A 429. Returns True when the row is finished (the rest is deferred)."""
        row = item.row
        extra = {"line": row.line, "key": row.key}
        self.stats.rate_limited += 1
        self.breaker.heard()
        try:
            self.events.answered(row, 429)
        except JournalError as exc:
            self._journal_failed(exc)
        if self._drain is not None:
            self._finish_drained(item, attempts=attempts)
            return True
        if isinstance(step, TooLong):
            self._start_drain(Status.DEFERRED, (
                f"Gong asked to wait {step.seconds:.0f}s (Retry-After {step.raw!r}), more than "
                f"max_wait {self.cfg.max_wait:.0f}s; the rest is deferred"))
            self._finish_deferred(item, step.request_id, attempts)
            return True
        if step.defaulted:
            log.warning("429 without a usable Retry-After (%r); waiting the default %.1fs",
                        step.raw, step.seconds, extra={**extra, "event": "pause"})
        now = asyncio.get_running_loop().time()
        reason = self.breaker.limited(now, self.gate.paused_seconds, step.seconds,
                                      new_pause=self.gate.remaining_pause() <= 0,
                                      max_wait=self.cfg.max_wait)
        if reason is not None:
            self._start_drain(Status.DEFERRED, reason)
            self._finish_deferred(item, step.request_id, attempts)
            return True
        if self.gate.pause(step.seconds):
            self.breaker.pauses += 1
            log.warning("429: pausing every worker for %.1fs (Retry-After %r)", step.seconds,
                        step.raw, extra={**extra, "event": "pause", "seconds": step.seconds})
        return False  # a 429 is not a failed attempt

    def _finish_deferred(self, item: Send, request_id: str | None, attempts: int) -> None:
        row = item.row
        self._finish(Record(row.line, row.key, Status.DEFERRED, 429, request_id=request_id,
                            errors=(self.stats.stop_reason or "",), attempts=attempts,
                            payload_hash=item.digest), row)

    async def _call(self, row: Row) -> Outcome:
        assert row.payload is not None
        if row.op == "create":
            return await self.client.create_meeting(row.payload)
        assert row.meeting_id is not None, f"{row.op} needs a meeting id"
        if row.op == "update":
            return await self.client.update_meeting(row.meeting_id, row.payload)
        if row.op == "delete":
            outcome = await self.client.delete_meeting(
                row.meeting_id, str(row.payload.get("organizerEmail", "")))
            if (isinstance(outcome, Rejected) and outcome.http_status == 404
                    and outcome.request_id is not None):
                # Gong says it is already gone: the state asked for. A 404 without Gong's
                # requestId (a proxy, a wrong endpoint) says nothing about the meeting.
                return Succeeded(404, row.meeting_id, None, outcome.request_id)
            return outcome
        raise AssertionError(f"unknown op {row.op!r}")  # pragma: no cover

    def _count_request(self) -> None:
        now = time.monotonic()
        self.stats.requests += 1
        if self.stats.first_request is None:
            self.stats.first_request = now
        self.stats.last_request = now

    async def _sleep_unless_stopped(self, seconds: float) -> None:
        """A back-off sleep, cut short when the run stops sending."""
        try:
            await asyncio.wait_for(self._wake.wait(), timeout=seconds)
        except TimeoutError:
            pass

    # -- the whole run --------------------------------------------------------------------

    async def run(self, work: Iterable[Work], *, blocking: bool = False) -> RunStats:
        """Send `work` (read in a thread when `blocking`: a pipe) and return this run's stats."""
        self.stats = RunStats()
        self._drain = None
        self.breaker = Breaker(paused_at_success=self.gate.paused_seconds)
        self._wake.clear()
        self._halted = False
        queue: asyncio.Queue[Send | None] = asyncio.Queue(maxsize=self.cfg.queue_size)
        reader = asyncio.create_task(self._read(work, queue, blocking), name="reader")
        workers = [asyncio.create_task(self._work(queue), name=f"worker-{i}")
                   for i in range(self.cfg.concurrency)]
        watcher = asyncio.create_task(self._watch_stop(reader, workers), name="stop-watcher")
        helpers = [watcher, asyncio.create_task(self.quota.save_every(), name="quota-saver")]
        try:
            # Wait on the tasks, never await them: a stop cancels the reader, and its
            # CancelledError must not pass for this task's own (which cut the grace period).
            await asyncio.wait([reader])
            if not reader.cancelled() and reader.exception() is not None:
                raise reader.exception()  # type: ignore[misc]
            # One end mark per worker; put by a task of its own, as the queue may be full and
            # the workers cancelled (a second signal), when nobody would take them.
            ends = asyncio.create_task(_put_ends(queue, len(workers)), name="end-marks")
            helpers.append(ends)
            done, _ = await asyncio.wait(workers, return_when=asyncio.FIRST_EXCEPTION)
            for task in done:
                if not task.cancelled() and task.exception() is not None:
                    raise task.exception()  # type: ignore[misc]
        except asyncio.CancelledError:
            pass
        finally:
            for task in (*helpers, reader, *workers):
                if not task.done():
                    task.cancel()
            await asyncio.gather(reader, *workers, *helpers, return_exceptions=True)
            # Rows left in the queue after a stop still get their record.
            while not queue.empty():
                item = queue.get_nowait()
                if item is not None:
                    self._finish_drained(item)
            self.stats.finished = time.monotonic()
            self.stats.pauses = self.gate.pauses
            self.stats.paused_seconds = self.gate.paused_seconds
            self.stats.final_rate = self.gate.rate
            self.stats.quota = QuotaView(self.quota.day, self.quota.budget, self.quota.used)
        return self.stats

    async def _watch_stop(self, reader: asyncio.Task[None],
                          workers: list[asyncio.Task[None]]) -> None:
        await self.stop.wait()
        self.stats.interrupted = True
        if self._drain is None:
            self._drain = (Status.NOT_SENT, "not sent: the run was interrupted")
            self.stats.stop_reason = "interrupted"
            self.stats.exit_status = Status.NOT_SENT
        self.gate.close(GateClosed("interrupted"))
        self._wake.set()
        # Stop reading at once (stdin may never end); rows already queued become not_sent.
        reader.cancel()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.cfg.grace_period
        hard = asyncio.ensure_future(self.hard_stop.wait())
        try:
            # Only workers with a row in hand are worth waiting for; idle ones have nothing.
            while self._busy and not self.hard_stop.is_set():
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                await asyncio.wait({hard, *self._busy}, timeout=remaining,
                                   return_when=asyncio.FIRST_COMPLETED)
                # A busy worker that finished its row goes back to the (drained) queue.
                await asyncio.sleep(0)
        finally:
            hard.cancel()
        # Past the grace period, or on a second signal: cut what is still in flight.
        for task in workers:
            if not task.done():
                task.cancel()


async def _put_ends(queue: asyncio.Queue[Send | None], n: int) -> None:
    for _ in range(n):
        await queue.put(None)
