"""The rate gate: one object every request passes, shared by all workers.

Three things live here and nowhere else:
- pacing: a token bucket on aiolimiter with capacity 1, so requests are spaced 1/rate apart and
  nothing ever bursts (aiolimiter's AsyncLimiter(3, 1) lets 3 through at once, which a server that
  counts a sliding one-second window answers with 429s);
- the pause: on a 429 every worker waits until one shared deadline has passed, then the bucket
  starts empty again, so the resume does not burst either; a pause lasts at least one interval,
  so a Retry-After of 0 never switches the pacing off;
- adaptive mode: the rate follows the share of the company's quota the other integrations
  leave, with a law (SettleAndProbe, below) that keeps bulkmeet's excursions above that share,
  which make *their* calls fail, short and rare.

`reserve` calls/s of the limit are never used, in either mode: headroom kept for the others.

All time is the event loop's clock (`loop.time()`), so tests drive the gate on a virtual clock.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from aiolimiter import AsyncLimiter

from .errors import BulkmeetError


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
        reserve: float = 0.0,
        auto: bool = False,
        ceiling: float | None = None,
        floor: float = 0.1,
        law: RateLaw | None = None,
        on_rate_change: Callable[[RateChange], None] | None = None,
    ) -> None:
        """`rate` and `ceiling` are the limit; the gate paces at most at `limit - reserve`."""
        if rate is not None and rate <= 0:
            raise ValueError("rate must be positive or None (no limit)")
        if reserve < 0:
            raise ValueError("reserve must not be negative")
        limit = ceiling if auto and ceiling is not None else rate
        if rate is not None and limit is not None and reserve >= limit:
            raise ValueError(f"reserve {reserve:g}/s leaves nothing of the rate {limit:g}/s")
        self._margin = margin
        self._auto = auto
        self.reserve = reserve
        top = None if limit is None else limit - reserve
        self._ceiling = top
        self._on_rate_change = on_rate_change
        self._rate = None if rate is None else min(rate, top) if top is not None else rate
        self._law: RateLaw | None = None
        if auto and self._rate is not None and top is not None:
            self._law = law if law is not None else default_law(top, min(floor, top))
            self._rate = self._law.first_rate(self._rate)
        self._limiter = self._make_limiter(self._rate)
        self._paused_until = 0.0
        self._closed: BaseException | None = None
        self._waiting: set[asyncio.Task[Any]] = set()  # tasks waiting in acquire()
        self.pauses = 0
        self.paused_seconds = 0.0
        self.acquired = 0

    # -- pacing ---------------------------------------------------------------------------

    @property
    def rate(self) -> float | None:
        """The set rate in calls per second (after the reserve, before the safety margin), None
        when unlimited."""
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
            if self._law is not None and self._rate is not None:
                change = self._law.tick(self._now(), self._rate, self.acquired)
                if change is not None:
                    self._set_rate(*change)
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
        if self._law is not None and self._rate is not None and new_pause:
            # One decrease per pause: the 429s of calls already in flight say the same thing.
            # Before the deadline is set, so the pause lasts at least one interval at the new rate.
            self._set_rate(*self._law.on_429(now, self._rate, self.acquired))
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
        if self._on_rate_change is not None:
            self._on_rate_change(RateChange(old, new, reason))


# -- adaptive mode --------------------------------------------------------------------------
#
# The law ("settle and probe"). Gong's limit is per company: other integrations spend the same
# 3 calls/s, and a server refuses whichever call finds its window full, so time bulkmeet spends
# above the share the others leave is paid for by *their* calls as much as by its own. Worse,
# a client that paces evenly at the whole limit fills every window of a sliding or fixed
# server by itself: the others' calls are refused one after the other and bulkmeet, whose calls
# all fit, sees no 429 to learn from (24% of a 1/s neighbour's calls refused with the old
# halve-and-add law, which kept climbing back to the limit). So the law avoids ever being far
# above the share, and learns mostly from what a rate does *not* provoke:
#
# - It starts at half the ceiling (`backoff`) and climbs by `climb_step` × ceiling every
#   `climb_every` s without a 429. Crossing the share in small steps makes the excess small,
#   and a small excess is answered on bulkmeet's own calls first: its 429 comes at a rate just
#   above the share.
# - A 429 while climbing: hold at `settle` × the rate that got it (0.92: a token-bucket or
#   fixed-window server answers a small excess late, by when the rate has gone a step or two
#   further).
# - A rate held for `quiet` s (60) without a 429, with calls going out at it, is proven. Only
#   then is the rate above it probed: steps of `probe_step` × ceiling × 1, 2, 3 ... every
#   `probe_every` s, up to the ceiling, so a neighbour that stopped is found within
#   `quiet` + about 35 s (the first steps are small: they are the ones that cross the share).
#   The first 429 of a probe sends the rate straight back to the proven one, and the next
#   probe waits another `quiet` s: one short excursion a minute at most.
# - A token-bucket server is the hard case: with bulkmeet a little above the share, the
#   bucket may hand every token to bulkmeet's evenly spaced calls and refuse only the others',
#   so no 429 ever tells bulkmeet. Small steps and rare probes are the defence.
# - A 429 at a proven rate (the others spend more than they did): `settle` × it, unproven; a
#   429 at a rate not yet proven (just settled, or at the start): halve, then climb toward
#   `settle` × the rate that got it.
# - Time counts only while the gate is in use: a step needs at least half the calls the rate
#   allowed since the last one, so an idle spell proves nothing.

BACKOFF = 0.5
SETTLE = 0.92
CLIMB_STEP = 0.03
CLIMB_EVERY = 2.0
QUIET = 60.0
PROBE_STEP = 0.01
PROBE_EVERY = 5.0
_EPS = 1e-9


class RateLaw(Protocol):
    """How adaptive mode moves the rate. Rates here are after the reserve, before the margin."""

    def first_rate(self, rate: float) -> float:
        """The rate to start at, given the configured one."""

    def tick(self, now: float, rate: float, acquired: int) -> tuple[float, str] | None:
        """A call has just been let through (`acquired` so far): a new rate and why, or None."""

    def on_429(self, now: float, rate: float, acquired: int) -> tuple[float, str]:
        """The first 429 of a pause, at `rate`: the new rate and why."""


_Phase = Literal["hold", "climb", "probe"]


class SettleAndProbe:
    """The adaptive law described above. `ceiling` and `floor` bound every rate it sets."""

    def __init__(
        self, ceiling: float, floor: float, *, backoff: float = BACKOFF, settle: float = SETTLE,
        climb_step: float = CLIMB_STEP, climb_every: float = CLIMB_EVERY, quiet: float = QUIET,
        probe_step: float = PROBE_STEP, probe_every: float = PROBE_EVERY,
    ) -> None:
        self.ceiling, self.floor = ceiling, min(floor, ceiling)
        self.backoff, self.settle = backoff, settle
        self.climb_step, self.climb_every = climb_step * ceiling, climb_every
        self.quiet = quiet
        self.probe_step, self.probe_every = probe_step * ceiling, probe_every
        self.phase: _Phase = "climb"
        self.target = ceiling  # where a climb stops
        self.good: float | None = None  # the proven rate: held `quiet` s without a 429
        self.probes = 0  # steps of the current probe so far
        self.started = False
        self.held_since = self.step_at = 0.0  # when the rate began to count as clean / last step
        self.held_calls = self.step_calls = 0

    def first_rate(self, rate: float) -> float:
        return max(self.floor, min(rate, self.ceiling) * self.backoff)

    def _mark(self, now: float, acquired: int, *, hold: bool = False) -> None:
        self.step_at, self.step_calls = now, acquired
        if hold:
            self.held_since, self.held_calls = now, acquired

    @staticmethod
    def _busy(elapsed: float, calls: int, rate: float) -> bool:
        """Did calls go out at the rate (at least half of what it allowed)?"""
        return calls >= 0.5 * rate * elapsed

    def tick(self, now: float, rate: float, acquired: int) -> tuple[float, str] | None:
        if not self.started:  # the first call: the clocks start now
            self.started = True
            self._mark(now, acquired, hold=True)
            return None
        if self.phase == "hold":
            return self._hold(now, rate, acquired)
        every = self.climb_every if self.phase == "climb" else self.probe_every
        if now - self.step_at < every:
            return None
        busy = self._busy(now - self.step_at, acquired - self.step_calls, rate)
        self._mark(now, acquired)
        if not busy:
            return None
        if self.phase == "climb":
            new = min(self.target, rate + self.climb_step)
            if new >= self.target - _EPS:
                self.phase = "hold"
                self._mark(now, acquired, hold=True)
            return new, f"no 429 for {every:g}s: climbing toward {self.target:.2f}/s"
        self.probes += 1
        new = min(self.ceiling, rate + self.probe_step * self.probes)
        if new >= self.ceiling - _EPS:
            # At the top: hold there; proven after `quiet` s, and a 429 before that goes back.
            self.phase = "hold"
            self._mark(now, acquired, hold=True)
        return new, f"probing: no 429 for {every:g}s, +{new - rate:.2f}/s"

    def _hold(self, now: float, rate: float, acquired: int) -> tuple[float, str] | None:
        if now - self.held_since < self.quiet:
            return None
        if not self._busy(now - self.held_since, acquired - self.held_calls, rate):
            self._mark(now, acquired, hold=True)  # idle: nothing proven, start again
            return None
        self.good = rate
        self._mark(now, acquired, hold=True)
        if rate >= self.ceiling - _EPS:
            return None
        self.phase, self.probes = "probe", 1
        new = min(self.ceiling, rate + self.probe_step)
        return new, f"no 429 for {self.quiet:g}s at {rate:.2f}/s: probing above it"

    def on_429(self, now: float, rate: float, acquired: int) -> tuple[float, str]:
        good, climbing = self.good, self.phase == "climb"
        self._mark(now, acquired, hold=True)
        self.phase = "hold"
        if good is not None and rate > good + _EPS:
            return good, (f"429 at {rate:.2f}/s, above the proven {good:.2f}/s: back to it; next "
                          f"probe after {self.quiet:g}s without a 429")
        if climbing or good is not None:
            self.good = None
            new = max(self.floor, rate * self.settle)
            if good is not None:
                why = (f"429 at the proven {rate:.2f}/s: the others spend more; holding at "
                       f"{new:.2f}/s")
            else:
                why = f"429 at {rate:.2f}/s while climbing: holding just below, at {new:.2f}/s"
            return new, why
        new = max(self.floor, rate * self.backoff)
        self.target = max(new, rate * self.settle)
        if self.target > new + _EPS:
            self.phase = "climb"
        return new, f"429 at {rate:.2f}/s, not yet proven: x{self.backoff:g}, then climbing " \
                    f"toward {self.target:.2f}/s"


def default_law(ceiling: float, floor: float) -> RateLaw:
    """The law `--rate auto` uses (a module-level hook, so a benchmark can compare another)."""
    return SettleAndProbe(ceiling, floor)
