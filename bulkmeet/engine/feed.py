"""The reader stage's source: planned work from a file in the loop, or from a pipe in a thread.

A regular file never blocks, so its records are read and planned in the event loop, yielding to
the workers now and then. A pipe or stdin may block forever (`tail -f | bulkmeet run -`): it is
read and planned in a daemon thread, so that a stop never waits for input that may never come
(the thread dies with the process).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import AsyncIterator, Iterable
from typing import TypeVar

T = TypeVar("T")

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
