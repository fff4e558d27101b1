"""The pipeline: reader -> bounded queue -> N workers -> results. The only module that knows it all.

Every input row ends with exactly one final record in the results file:
- invalid, duplicate and already-created rows are recorded (or skipped) by the reader stage, and
  never reach the queue;
- each queued row is finished by a worker, which records the outcome before it takes the next;
- when the run must stop sending (401/403, quota, the breaker), rows still queued or unread get
  `not_sent` or `deferred`; on Ctrl-C/SIGTERM reading stops, requests in flight get up to
  `grace_period` to finish, queued rows get `not_sent` and unread rows no record (the resume
  reads them); a request cut off mid-flight gets `uncertain`;
- when the results file cannot be written (a full disk), nothing more is sent and reading stops:
  the file holds whole entries only, and the resume finishes the rest.

The breaker: requests that could not connect or got no answer, BREAKER_TRANSPORT of them in a
row with no answer between, stop the run (the host is down, or the URL is wrong); so do
BREAKER_429_PAUSES pauses for 429 in a row without a success, or 429 pauses adding up to more
than `max_wait` since the last success.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import random
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from .client import (
    Created,
    GongClient,
    Lost,
    Outcome,
    RateLimited,
    Rejected,
    Retryable,
    backoff_delay,
)
from .config import Config
from .errors import AuthError, BulkmeetError, JournalError, QuotaExhausted, Unreachable
from .gate import Gate, GateClosed
from .ledger import Ledger
from .models import RawRow, Record, Row, Status, payload_digest
from .quota import DailyQuota
from .results import ResultsState, ResultsWriter
from .triage import Decision, Triage, decide

log = logging.getLogger("bulkmeet")

# The breaker: N requests in a row that could not connect or got no answer stop the run (each
# would cost a day's call and, with retries, minutes); so do N pauses for 429 in a row with no
# success between, once they have lasted BREAKER_429_SECONDS (a burst of 429s with a tiny
# Retry-After inside one rate window is not a constant 429). In-flight requests of other
# workers may add up to concurrency - 1 more requests.
BREAKER_TRANSPORT = 5
BREAKER_429_PAUSES = 5
BREAKER_429_SECONDS = 4.0

# What a successful call of each op is called in the ledger and in the results file.
_DONE = {
    "create": ("created", Status.CREATED),
    "update": ("updated", Status.UPDATED),
    "delete": ("deleted", Status.DELETED),
}


@dataclass(slots=True)
class RunStats:
    """Live counters, read by the CLI for progress and the summary."""

    started: float = field(default_factory=time.monotonic)
    finished: float | None = None
    rows_read: int = 0
    requests: int = 0
    rate_limited: int = 0
    counts: Counter[str] = field(default_factory=Counter)
    skipped: int = 0
    uncertain_before: int = 0
    refused_before: int = 0  # rows Gong refused (4xx) in an earlier run, unchanged since
    settled: int = 0  # rows an earlier run settled: skipped with no record (for progress)
    uncertain_lines: list[int] = field(default_factory=list)
    stop_reason: str | None = None
    exit_status: Status | None = None  # the status given to rows not sent after a stop
    auth_error: AuthError | None = None
    stopped_by: BulkmeetError | None = None  # Unreachable or JournalError: the run's exit code
    unrecorded: int = 0  # final records the results file refused (a full disk)
    output_errors: list[str] = field(default_factory=list)  # state not saved after the run
    interrupted: bool = False
    unread: bool = False
    pauses: int = 0
    paused_seconds: float = 0.0
    first_request: float | None = None
    last_request: float | None = None

    @property
    def wall(self) -> float:
        return (self.finished or time.monotonic()) - self.started

    @property
    def achieved_rate(self) -> float:
        if self.first_request is None or self.last_request is None or self.requests < 2:
            return 0.0
        span = self.last_request - self.first_request
        return (self.requests - 1) / span if span > 0 else 0.0


class Pipeline:
    """One run. Build it, then `await pipeline.run(raw_rows)`."""

    def __init__(
        self,
        cfg: Config,
        *,
        mapper: Callable[[RawRow], Row],
        mapping_warnings: Callable[[], list[str]] | None = None,
        client: GongClient,
        gate: Gate,
        writer: ResultsWriter,
        ledger: Ledger | None = None,
        quota: DailyQuota | None = None,
        prior: ResultsState | None = None,
        resend_uncertain: bool = False,
        stop: asyncio.Event | None = None,
        hard_stop: asyncio.Event | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.cfg = cfg
        self.mapper = mapper
        self.client = client
        self.gate = gate
        self.writer = writer
        self.ledger = ledger
        self.quota = quota
        self.prior = prior
        self.resend_uncertain = resend_uncertain
        self.stop = stop or asyncio.Event()
        self.hard_stop = hard_stop or asyncio.Event()
        self.rng = rng or random.Random()
        self.stats = RunStats()
        self._busy: set[asyncio.Task[None]] = set()  # workers with a row in hand
        self.mapping_warnings = mapping_warnings
        self._drain: tuple[Status, str] | None = None
        self._wake = asyncio.Event()  # set when the run stops sending: cuts back-off sleeps
        self._halted = False  # stop reading: the results file cannot be written
        # the breaker's counters
        self._no_answer = 0  # requests in a row that could not connect or got no answer
        self._pauses_429 = 0  # new 429 pauses since the last success
        self._paused_at_success = 0.0  # gate.paused_seconds at the last success
        self._first_429: float | None = None  # loop time of the first 429 since the last success

    # -- bookkeeping ----------------------------------------------------------------------

    def _finish(self, record: Record, payload: dict[str, Any] | None = None) -> None:
        try:
            self.writer.record(record, payload)
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
        """The results file refused an entry: send nothing more, read no further."""
        self._halted = True
        self._stop_run(exc, "the results file cannot be written")

    def _journal_sending(self, row: Row, attempts: int, phash: str) -> bool:
        """The `sending` entries, before a request; False (and nothing is sent) if either
        journal refuses it."""
        try:
            self.writer.sending(row, attempts, phash)
            if self.ledger is not None:
                self.ledger.write(row.key, "sending", payload_hash=phash, intent=row.op)
        except JournalError as exc:
            self._journal_failed(exc)
            return False
        except OSError as exc:
            self._journal_failed(JournalError(
                f"cannot write the ledger {self.ledger.path if self.ledger else ''}: "
                f"{exc.strerror or exc}"))
            return False
        return True

    def _finish_drained(self, item: Queued, *, attempts: int = 0) -> None:
        """Record a row the run will not send now, keeping its payload for `retry`."""
        row, digest = item
        status, reason = self._drain or (Status.NOT_SENT, "the run stopped")
        self._finish(Record(row.line, row.key, status, errors=(reason,), attempts=attempts,
                            payload_hash=digest), row.payload)

    # -- the reader stage -----------------------------------------------------------------

    def _triage(self, triage: Triage, raw: RawRow) -> Queued | None:
        """Map one row and decide if it is sent; rows that are not are recorded here."""
        self.stats.rows_read += 1
        verdict = triage(raw)
        for warning in verdict.warnings:
            log.warning(warning, extra={"event": "mapping", "line": raw.line})
        if verdict.record is not None:
            if verdict.record.status is not Status.SKIPPED:
                log.warning("%s: %s", verdict.record.status.value,
                            "; ".join(verdict.record.errors),
                            extra={"event": verdict.record.status.value, "line": raw.line,
                                   "key": verdict.record.key})
            self._finish(verdict.record)
            return None
        row = verdict.row
        assert row.payload is not None
        digest = payload_digest(row.payload)
        ks = self.prior.keys.get(row.key) if self.prior else None
        led = self.ledger.get(row.key) if self.ledger else None
        match decide(row, digest, ks, led, resend_uncertain=self.resend_uncertain):
            case Decision.SEND:
                return row, digest
            case Decision.CREATED_BEFORE:
                self.stats.skipped += 1
                self.stats.settled += 1
            case Decision.IN_LEDGER:
                self.stats.skipped += 1
                self._finish(Record(row.line, row.key, Status.SKIPPED,
                                    meeting_id=led.meeting_id if led else None,
                                    errors=("already created in an earlier run (ledger)",)))
            case Decision.IN_FLIGHT:
                self._finish(Record(row.line, row.key, Status.UNCERTAIN, errors=(
                    "a request for this row was in flight when an earlier run stopped; Gong may "
                    "have created it. Not sent again (check Gong, then use --resend-uncertain)",)))
            case Decision.UNCERTAIN_BEFORE:
                self.stats.uncertain_before += 1
                self.stats.uncertain_lines.append(row.line)
            case Decision.REFUSED_BEFORE:
                # Sending the same payload again cannot succeed; a corrected row has a new digest.
                self.stats.refused_before += 1
                self.stats.settled += 1
        return None

    async def _read(self, raws: Iterable[RawRow], queue: asyncio.Queue[Queued | None],
                    blocking: bool) -> None:
        # Built here, not in __init__, so a tap set on self.mapper after construction sees rows.
        triage = Triage(self.mapper, warnings=self.mapping_warnings)
        try:
            source = _pumped(raws) if blocking else _chunked(raws)
            async for raw in source:
                if self.stop.is_set() or self._halted:
                    self.stats.unread = True
                    break
                item = self._triage(triage, raw)
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
        finally:
            triage.close()

    # -- the workers ----------------------------------------------------------------------

    async def _work(self, queue: asyncio.Queue[Queued | None]) -> None:
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

    async def _send_row(self, item: Queued) -> None:
        """Send one row until it has its final record: through the gate and the quota, with
        retries. Runs once per row, so it allocates little (no closures, a direct path for
        the usual `Created`)."""
        row, phash = item
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
                if self.quota is not None:
                    try:
                        self.quota.spend()
                    except QuotaExhausted as exc:
                        self._start_drain(Status.DEFERRED, str(exc))
                        self._finish_drained(item, attempts=attempts)
                        return
                if not self._journal_sending(row, attempts + 1, phash):
                    return  # not sent, and no record can be written: the resume sends it
                attempts += 1
                self._count_request()
                in_flight = True
                try:
                    outcome: Outcome = await self._call(row)
                except AuthError as exc:
                    in_flight = False
                    self.stats.auth_error = exc
                    self._ledger(row.key, "not_created")
                    self._start_drain(Status.NOT_SENT, f"not sent: the run stopped on {exc}")
                    self._finish(Record(row.line, row.key, Status.FAILED, exc.http_status,
                                        request_id=exc.request_id, errors=(str(exc),),
                                        attempts=attempts, payload_hash=phash))
                    return
                in_flight = False
                if type(outcome) is Created:
                    self._succeeded()
                    self._done(row, outcome, attempts, phash)
                    return
                done, failures = await self._handle(row, outcome, attempts, failures, phash)
                if done:
                    return
        except asyncio.CancelledError:
            # Cancelled at an await: the gate, the request or a back-off. A row is finished
            # only right before a return, so here it never is.
            if in_flight:
                self._ledger(row.key, "uncertain")
                self._finish(Record(row.line, row.key, Status.UNCERTAIN, errors=(
                    "the run was stopped while this request was in flight; Gong may have "
                    "created the meeting",), attempts=attempts, payload_hash=phash))
            else:
                self._finish_drained(item, attempts=attempts)
            raise

    def _done(self, row: Row, outcome: Created, attempts: int, phash: str) -> None:
        """The request did what it asked: created, updated or deleted."""
        done_op, status = _DONE[row.op]
        if self.ledger is not None:
            # The payload itself is kept so that `bulkmeet plan` can name changed fields.
            try:
                self.ledger.write(
                    row.key, done_op, meeting_id=outcome.meeting_id, payload_hash=phash,
                    organizer=str(row.payload.get("organizerEmail")) if row.payload else None,
                    payload=row.payload if row.op != "delete" else None)
            except OSError as exc:
                self._ledger_failed(exc)
        self._finish(Record(row.line, row.key, status, outcome.http_status, outcome.meeting_id,
                            outcome.meeting_url, outcome.request_id, attempts=attempts,
                            payload_hash=phash))

    async def _handle(self, row: Row, outcome: Outcome, attempts: int, failures: int,
                      phash: str) -> tuple[bool, int]:
        """Act on an outcome other than Created. Returns (row finished, failures so far)."""
        cfg = self.cfg
        extra = {"line": row.line, "key": row.key}

        def final(status: Status, http_status: int | None, request_id: str | None,
                  errors: tuple[str, ...]) -> tuple[bool, int]:
            self._finish(Record(row.line, row.key, status, http_status, request_id=request_id,
                                errors=errors, attempts=attempts, payload_hash=phash))
            return True, failures

        match outcome:
            case Created():
                self._succeeded()
                self._done(row, outcome, attempts, phash)
                return True, failures
            case RateLimited():
                self.stats.rate_limited += 1
                self._no_answer = 0
                self._answered(row, 429)
                if self._drain is not None:
                    self._finish_drained((row, phash), attempts=attempts)
                    return True, failures
                wait = outcome.retry_after
                if wait is None:
                    wait = cfg.retry_after_default
                    log.warning("429 without a usable Retry-After (%r); waiting the default %.1fs",
                                outcome.raw, wait, extra={**extra, "event": "pause"})
                if wait > cfg.max_wait:
                    self._start_drain(Status.DEFERRED, (
                        f"Gong asked to wait {wait:.0f}s (Retry-After {outcome.raw!r}), more than "
                        f"max_wait {cfg.max_wait:.0f}s; the rest is deferred"))
                    return final(Status.DEFERRED, 429, outcome.request_id,
                                 (self.stats.stop_reason or "",))
                now = asyncio.get_running_loop().time()
                if self._first_429 is None:
                    self._first_429 = now
                waited = self.gate.paused_seconds - self._paused_at_success
                new_pause = self.gate.remaining_pause() <= 0
                constant = (self._pauses_429 + 1 >= BREAKER_429_PAUSES
                            and now - self._first_429 >= BREAKER_429_SECONDS)
                if new_pause and (constant or waited + wait > cfg.max_wait):
                    self._start_drain(Status.DEFERRED, (
                        f"Gong answered 429 to every request for {now - self._first_429:.0f}s "
                        f"({self._pauses_429 + 1} answers 429 in a row, {waited:.0f}s paused, with "
                        "no success between); the rest is deferred"))
                    return final(Status.DEFERRED, 429, outcome.request_id,
                                 (self.stats.stop_reason or "",))
                if self.gate.pause(wait):
                    self._pauses_429 += 1
                    log.warning("429: pausing every worker for %.1fs (Retry-After %r)", wait,
                                outcome.raw, extra={**extra, "event": "pause", "seconds": wait})
                return False, failures  # a 429 is not a failed attempt
            case Retryable():
                failures += 1
                self._answered(row, outcome.http_status)
                if outcome.http_status is None:  # could not connect: nothing left the machine
                    self._no_answer += 1
                    if self._no_answer >= BREAKER_TRANSPORT and self._drain is None:
                        self._stop_run(Unreachable(
                            f"cannot reach {self.client.base_url}: {self._no_answer} requests in "
                            f"a row could not connect (last: {outcome.message}); the rest is "
                            "not sent"), "Gong cannot be reached")
                else:
                    self._no_answer = 0
                if self._drain is not None:
                    self._finish_drained((row, phash), attempts=attempts)
                    return True, failures
                if failures >= cfg.max_attempts:
                    log.error("line %d: giving up after %d attempts: %s", row.line, failures,
                              outcome.message, extra={**extra, "event": "failed"})
                    return final(Status.FAILED, outcome.http_status, outcome.request_id,
                                 (outcome.message,))
                delay = backoff_delay(failures, base=cfg.backoff_base, cap=cfg.backoff_max,
                                      rand=self.rng.random())
                log.info("line %d: %s; retry %d in %.2fs", row.line, outcome.message, failures,
                         delay, extra={**extra, "event": "retry"})
                await self._sleep_unless_stopped(delay)
                return False, failures
            case Rejected():
                self._succeeded()  # an answer: the host is up and not limiting
                self._ledger(row.key, "not_created")
                log.error("line %d: Gong answered %d: %s", row.line, outcome.http_status,
                          "; ".join(outcome.errors), extra={**extra, "event": "failed"})
                return final(Status.FAILED, outcome.http_status, outcome.request_id,
                             outcome.errors)
            case Lost():
                if (self.resend_uncertain and failures + 1 < cfg.max_attempts
                        and self._no_answer + 1 < BREAKER_TRANSPORT):
                    failures += 1
                    log.warning("line %d: %s; sending again (--resend-uncertain)", row.line,
                                outcome.message, extra={**extra, "event": "retry"})
                    return False, failures
                self._ledger(row.key, "uncertain")
                log.error("line %d: %s; recorded uncertain", row.line, outcome.message,
                          extra={**extra, "event": "uncertain"})
                result = final(Status.UNCERTAIN, outcome.http_status, outcome.request_id,
                               (outcome.message,))
                if outcome.http_status is None:  # no answer at all
                    self._no_answer += 1
                    if self._no_answer >= BREAKER_TRANSPORT and self._drain is None:
                        self._stop_run(Unreachable(
                            f"{self.client.base_url} did not answer {self._no_answer} requests "
                            f"in a row (last: {outcome.message}); the rest is not sent"),
                            "Gong does not answer")
                else:
                    self._no_answer = 0
                return result
        raise AssertionError(f"unknown outcome {outcome!r}")  # pragma: no cover

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
                return Created(404, row.meeting_id, None, outcome.request_id)
            return outcome
        raise AssertionError(f"unknown op {row.op!r}")  # pragma: no cover

    def _succeeded(self) -> None:
        """Gong answered and did not limit: the breaker's counts start again."""
        self._no_answer = 0
        self._pauses_429 = 0
        self._first_429 = None
        self._paused_at_success = self.gate.paused_seconds

    def _answered(self, row: Row, http_status: int | None) -> None:
        """Nothing was created (429, 5xx, no connection): settle the `sending` entries."""
        try:
            self.writer.answered(row, http_status)
        except JournalError as exc:
            self._journal_failed(exc)  # the `sending` stays: the resume calls it uncertain
            return
        self._ledger(row.key, "not_created")

    def _ledger(self, key: str, op: str) -> None:
        if self.ledger is not None:
            try:
                self.ledger.write(key, op)
            except OSError as exc:
                self._ledger_failed(exc)

    def _ledger_failed(self, exc: OSError) -> None:
        path = self.ledger.path if self.ledger is not None else ""
        self._journal_failed(JournalError(f"cannot write the ledger {path}: "
                                          f"{exc.strerror or exc}"))

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

    async def run(self, raws: Iterable[RawRow], *, blocking: bool = False) -> RunStats:
        queue: asyncio.Queue[Queued | None] = asyncio.Queue(maxsize=self.cfg.queue_size)
        reader = asyncio.create_task(self._read(raws, queue, blocking), name="reader")
        workers = [asyncio.create_task(self._work(queue), name=f"worker-{i}")
                   for i in range(self.cfg.concurrency)]
        watcher = asyncio.create_task(self._watch_stop(reader, workers), name="stop-watcher")
        helpers = [watcher]
        if self.quota is not None:
            helpers.append(asyncio.create_task(self.quota.save_every(), name="quota-saver"))
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


Queued = tuple[Row, str]  # a row to send, with the digest of its payload


async def _put_ends(queue: asyncio.Queue[Queued | None], n: int) -> None:
    for _ in range(n):
        await queue.put(None)
READER_THREAD = "bulkmeet-reader"


async def _chunked(raws: Iterable[RawRow]) -> AsyncIterator[RawRow]:
    """A file that does not block: read in the loop, yielding to the workers now and then."""
    for n, raw in enumerate(raws, start=1):
        yield raw
        if n % 256 == 0:
            await asyncio.sleep(0)


async def _pumped(raws: Iterable[RawRow]) -> AsyncIterator[RawRow]:
    """A pipe or stdin, which blocks: read in a daemon thread, so that a stop never waits for
    input that may never come (the thread dies with the process)."""
    loop = asyncio.get_running_loop()
    handoff: asyncio.Queue[RawRow | BaseException | None] = asyncio.Queue(maxsize=64)

    def put(item: RawRow | BaseException | None) -> bool:
        try:
            asyncio.run_coroutine_threadsafe(handoff.put(item), loop).result()
        except (RuntimeError, concurrent.futures.CancelledError):
            return False  # the loop is gone: nobody is reading any more
        return True

    def pump() -> None:
        try:
            for raw in raws:
                if not put(raw):
                    return
        except BaseException as exc:  # handed to the loop, which raises it there
            put(exc)
            return
        put(None)

    threading.Thread(target=pump, name=READER_THREAD, daemon=True).start()
    while True:
        item = await handoff.get()
        if item is None:
            return
        if isinstance(item, BaseException):
            raise item
        yield item
