"""The rate gate: one object every request passes, shared by all workers.

Three things live here and nowhere else:
- pacing: a token bucket on aiolimiter with capacity 1, so requests are spaced 1/rate apart and
  nothing ever bursts (aiolimiter's AsyncLimiter(3, 1) lets 3 through at once, which a server that
  counts a sliding one-second window answers with 429s);
- the pause: on a 429 every worker waits until one shared deadline has passed, then the bucket
  starts empty again, so the resume does not burst either; a pause lasts at least one interval,
  so a Retry-After of 0 never switches the pacing off;
- adaptive mode: multiplicative decrease on each 429, additive increase while calls succeed.

All time is the event loop's clock (`loop.time()`), so tests drive the gate on a virtual clock.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from aiolimiter import AsyncLimiter

from .errors import BulkmeetError

# Adaptive law: halve on a 429, add `increase_step` calls/s after each `increase_every` seconds
# without one. Halving matches TCP's AIMD; the slow probe keeps the shared quota calm.
DEFAULT_DECREASE_FACTOR = 0.5
DEFAULT_INCREASE_STEP = 0.1
DEFAULT_INCREASE_EVERY = 10.0


class GateClosed(BulkmeetError):
    """The gate was closed (the run is stopping): no more requests may start."""


@dataclass(frozen=True, slots=True)
class RateChange:
    old: float
    new: float
    reason: str


class Gate:
    """Paces requests at `rate * (1 - margin)` per second and pauses everyone on a 429."""

    def __init__(
        self,
        rate: float | None,
        *,
        margin: float = 0.0,
        auto: bool = False,
        ceiling: float | None = None,
        floor: float = 0.1,
        decrease_factor: float = DEFAULT_DECREASE_FACTOR,
        increase_step: float = DEFAULT_INCREASE_STEP,
        increase_every: float = DEFAULT_INCREASE_EVERY,
        on_rate_change: Callable[[RateChange], None] | None = None,
    ) -> None:
        if rate is not None and rate <= 0:
            raise ValueError("rate must be positive or None (no limit)")
        self._margin = margin
        self._auto = auto
        self._ceiling = ceiling if ceiling is not None else rate
        self._floor = floor
        self._decrease_factor = decrease_factor
        self._increase_step = increase_step
        self._increase_every = increase_every
        self._on_rate_change = on_rate_change
        self._rate = rate
        self._limiter = self._make_limiter(rate)
        self._paused_until = 0.0
        self._last_change = 0.0
        self._closed: BaseException | None = None
        self._waiting: set[asyncio.Task[Any]] = set()  # tasks waiting in acquire()
        self.pauses = 0
        self.paused_seconds = 0.0
        self.acquired = 0

    # -- pacing ---------------------------------------------------------------------------

    @property
    def rate(self) -> float | None:
        """The set rate in calls per second (before the safety margin), None when unlimited."""
        return self._rate

    @property
    def effective_rate(self) -> float | None:
        return None if self._rate is None else self._rate * (1 - self._margin)

    def _make_limiter(self, rate: float | None) -> AsyncLimiter | None:
        if rate is None:
            return None
        # Capacity 1: one token at a time, refilled every 1/effective rate seconds.
        return AsyncLimiter(1, 1 / (rate * (1 - self._margin)))

    @staticmethod
    def _now() -> float:
        return asyncio.get_running_loop().time()

    @property
    def paused_until(self) -> float:
        return self._paused_until

    def remaining_pause(self) -> float:
        return max(0.0, self._paused_until - self._now())

    async def acquire(self) -> None:
        """Wait for the pause (if any) and for a token. Raises GateClosed once the gate closes.

        Every wait happens in the caller's own task: the token is granted in the same step of
        the loop in which the caller goes on to send. (Waiting in a helper task let a busy loop
        hold the caller back after its grant, and the next call, spaced from the grant, then
        left too soon after it.)
        """
        while True:
            if self._closed is not None:
                raise GateClosed(str(self._closed)) from self._closed
            wait = self._paused_until - self._now()
            if wait > 0:
                await self._unless_closed(asyncio.sleep(wait))
                continue
            limiter = self._limiter
            if limiter is not None:
                await self._unless_closed(limiter.acquire())
                if self._closed is not None:
                    continue  # closed while waiting: raise above
                # A pause may have begun, or the rate changed, while this caller waited.
                if limiter is not self._limiter or self._paused_until > self._now():
                    continue
            self.acquired += 1
            if self._auto:
                self._maybe_increase()
            return

    async def _unless_closed(self, wait: Coroutine[Any, Any, None]) -> None:
        """Await `wait` in this task; close() cuts it short by cancelling the task, and that
        cancellation ends here (the caller sees the gate closed) unless another one came too."""
        task = asyncio.current_task()
        assert task is not None, "the gate is used from a task"
        self._waiting.add(task)
        try:
            await wait
        except asyncio.CancelledError:
            # Nothing starts waiting once the gate is closed (acquire checks first), so a
            # waiter of a closed gate was cancelled by close(), maybe by someone else as well.
            if self._closed is None or task.uncancel() > 0:
                raise  # a cancellation that is not (only) the gate's own
        finally:
            self._waiting.discard(task)

    # -- the pause ------------------------------------------------------------------------

    def interval(self) -> float:
        """Seconds between two calls at the current effective rate (0 when unlimited)."""
        rate = self.effective_rate
        return 0.0 if rate is None else 1 / rate

    def pause(self, seconds: float) -> bool:
        """Hold every worker for `seconds` from now. Returns True if this began a new pause.

        A pause never shortens the spacing: it lasts at least one interval, so a Retry-After of
        0, a past date or a few milliseconds cannot let the next call leave sooner than pacing
        would (the bucket restarts empty at the deadline, which is then an interval or more
        after the call that got the 429).
        """
        now = self._now()
        new_pause = self._paused_until <= now
        if self._auto and new_pause:
            # One decrease per pause: the 429s of calls already in flight say the same thing.
            # Before the deadline is set, so the pause lasts at least one interval at the new rate.
            self._decrease()
        until = now + max(0.0, seconds, self.interval())
        if until > self._paused_until:
            self.paused_seconds += until - max(now, self._paused_until)
            self._paused_until = until
            # The bucket restarts empty at the end of the pause: the first call goes at the
            # deadline, the next one a full interval later.
            self._limiter = self._make_limiter(self._rate)
        if new_pause:
            self.pauses += 1
        return new_pause

    def close(self, reason: BaseException) -> None:
        """Stop letting requests through; waiters get GateClosed."""
        if self._closed is None:
            self._closed = reason
            for task in self._waiting:  # wake every waiter now, not at its token or deadline
                task.cancel()

    @property
    def closed(self) -> bool:
        return self._closed is not None

    # -- adaptive mode --------------------------------------------------------------------

    def _set_rate(self, new: float, reason: str) -> None:
        old = self._rate
        if old is None or abs(new - old) < 1e-9:
            return
        self._rate = new
        limiter = self._make_limiter(new)
        if limiter is not None and self._paused_until <= self._now():
            # A call has just gone out: the new bucket starts full, so the next call waits a
            # whole interval at the new rate instead of leaving at once.
            limiter._level = 1.0  # noqa: SLF001 - aiolimiter has no public way to fill it
            limiter._last_check = self._now()
        self._limiter = limiter
        self._last_change = self._now()
        if self._on_rate_change is not None:
            self._on_rate_change(RateChange(old, new, reason))

    def _decrease(self) -> None:
        if self._rate is None:
            return
        self._set_rate(max(self._floor, self._rate * self._decrease_factor), "429 received")

    def _maybe_increase(self) -> None:
        if not self._auto or self._rate is None or self._ceiling is None:
            return
        now = self._now()
        if self._last_change == 0.0:
            self._last_change = now
            return
        if now - self._last_change >= self._increase_every and now >= self._paused_until:
            new = min(self._ceiling, self._rate + self._increase_step)
            if new > self._rate:
                self._set_rate(new, f"no 429 for {self._increase_every:g}s")
            else:
                self._last_change = now
