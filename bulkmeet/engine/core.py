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
import time
from collections.abc import Iterable

from ..gate import GateClosed
from ..models import Status
from ..planner import Send, Work
from ..policy import Breaker
from .feed import Feed
from .stats import QuotaView, RunStats
from .workers import Workers

log = logging.getLogger("bulkmeet")


class Engine(Feed, Workers):
    """Sends planned work through one session. Build it, then `await engine.run(work)`; an
    engine may run several times in turn (sync's phases), each run with its own RunStats.

    The stages: Feed (feed.py, the reader stage), the bounded queue (here), Workers
    (workers.py), and the row events (events.py) that the journal and the displays subscribe.
    """

    async def run(self, work: Iterable[Work], *, blocking: bool = False) -> RunStats:
        """Send `work` (read in a thread when `blocking`: a pipe) and return this run's stats.
        The first run fills the stats object the engine was made with (the one a display was
        given before the run); a later run gets one of its own."""
        if self._ran:
            self.stats = RunStats()
        self._ran = True
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
        if self.store is not None:
            helpers.append(asyncio.create_task(self._renew_claims(), name="claim-renewal"))
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
