"""The reader stage: planned work from a file in the loop, or from a pipe in a thread; settled
rows recorded, rows to send put on the queue.

A regular file never blocks, so its records are read and planned in the event loop, yielding to
the workers now and then. A pipe or stdin may block forever (`tail -f | bulkmeet run -`): it is
read and planned in a daemon thread, so that a stop never waits for input that may never come
(the thread dies with the process).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
from collections.abc import AsyncIterator, Iterable
from typing import TypeVar

from ..models import Status
from ..planner import Known, Send, Settled, Work
from ..triage import Decision
from .state import RunState

T = TypeVar("T")
log = logging.getLogger("bulkmeet")

READER_THREAD = "bulkmeet-reader"
CHUNK = 256  # items read between two chances for the workers to run
HANDOFF = 64  # items a reader thread may be ahead of the loop


async def chunked(items: Iterable[T]) -> AsyncIterator[T]:
    """Items that do not block: read in the loop, yielding to the workers now and then."""
    for n, item in enumerate(items, start=1):
        yield item
        if n % CHUNK == 0:
            await asyncio.sleep(0)


async def pumped(items: Iterable[T]) -> AsyncIterator[T]:
    """Items that may block: read in a daemon thread and handed to the loop."""
    loop = asyncio.get_running_loop()
    handoff: asyncio.Queue[tuple[T] | BaseException | None] = asyncio.Queue(maxsize=HANDOFF)

    def put(item: tuple[T] | BaseException | None) -> bool:
        try:
            asyncio.run_coroutine_threadsafe(handoff.put(item), loop).result()
        except (RuntimeError, concurrent.futures.CancelledError):
            return False  # the loop is gone: nobody is reading any more
        return True

    def pump() -> None:
        try:
            for item in items:
                if not put((item,)):
                    return
        except BaseException as exc:  # handed to the loop, which raises it there
            put(exc)
            return
        put(None)

    threading.Thread(target=pump, name=READER_THREAD, daemon=True).start()
    while True:
        got = await handoff.get()
        if got is None:
            return
        if isinstance(got, BaseException):
            raise got
        yield got[0]


class Feed(RunState):
    """The reader stage: planned work in, settled rows recorded, rows to send onto the queue."""

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
