"""A virtual clock for asyncio: time moves only when every task is waiting on a timer.

The loop's selector never blocks: when asked to wait `timeout` seconds for I/O it advances the
clock by `timeout` instead (there is no I/O in the tests that use it). aiolimiter, asyncio.sleep
and call_at all read `loop.time()`, so they run on this clock unchanged.
"""

from __future__ import annotations

import asyncio
import selectors
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")
TICK = 1e-9


class _Selector(selectors.DefaultSelector):
    def __init__(self) -> None:
        super().__init__()
        self.loop: VirtualClockLoop | None = None

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        events = super().select(0)
        if events:
            return events
        assert self.loop is not None
        if timeout is None:
            raise RuntimeError("deadlock: every task waits and no timer is set")
        # Always move a little: a real clock never stands still between two loop iterations, and
        # aiolimiter re-arms a timer for a float residue that only passing time clears.
        self.loop.advance(max(timeout, TICK))
        return []


class VirtualClockLoop(asyncio.SelectorEventLoop):
    def __init__(self) -> None:
        selector = _Selector()
        super().__init__(selector)
        selector.loop = self
        self._virtual_now = 1000.0

    def time(self) -> float:
        return self._virtual_now

    def advance(self, seconds: float) -> None:
        self._virtual_now += seconds


def run_virtual(main: Callable[[], Coroutine[Any, Any, T]] | Awaitable[T]) -> T:
    """Run a coroutine on a fresh virtual-clock loop and close it."""
    loop = VirtualClockLoop()
    try:
        coro = main() if callable(main) else main
        return loop.run_until_complete(coro)
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()
