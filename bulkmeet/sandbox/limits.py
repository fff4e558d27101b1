"""The sandbox's limits: one per-second rate window (fixed, sliding or a token bucket) and a
daily budget. Each says how long a refused call should wait; a refused call spends nothing."""

from __future__ import annotations

import math
from collections import deque
from typing import Protocol

from .settings import SandboxSettings

DAY = 86_400


class RateWindow(Protocol):
    """A per-second limit on accepted calls."""

    def take(self, now: float) -> float | None:
        """Spend one call if allowed (None), else say how many seconds until a slot frees."""


class FixedWindow:
    """At most `limit` calls per whole clock second."""

    __slots__ = ("limit", "window", "count")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.window: int | None = None
        self.count = 0

    def take(self, now: float) -> float | None:
        window = math.floor(now)
        if window != self.window:
            self.window, self.count = window, 0
        if self.count >= self.limit:
            return window + 1 - now
        self.count += 1
        return None


class SlidingWindow:
    """At most `limit` calls in any one-second span (t-1, t]."""

    __slots__ = ("limit", "times")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.times: deque[float] = deque()  # accepted calls in (now-1, now], oldest first

    def take(self, now: float) -> float | None:
        # A call 1 s ago, give or take float noise, has left the window: a caller steady at
        # exactly `limit` calls/s always fits.
        times, edge = self.times, now - 1.0 + 1e-9
        while times and times[0] <= edge:
            times.popleft()
        if len(times) >= self.limit:
            return times[0] + 1.0 - now
        times.append(now)
        return None


class TokenBucket:
    """Capacity `rate` calls, refilled at `rate` per second."""

    __slots__ = ("rate", "capacity", "tokens", "last")

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.capacity = max(1.0, rate)  # below 1 a bucket could never hold a whole call
        self.tokens = self.capacity
        self.last: float | None = None

    def take(self, now: float) -> float | None:
        if self.last is not None:
            self.tokens = min(self.capacity, self.tokens + (now - self.last) * self.rate)
        self.last = now
        # The epsilon absorbs float error in the refill (0.1 s * 10/s must buy one call).
        if self.tokens >= 1.0 - 1e-9:
            self.tokens -= 1.0
            return None
        return (1.0 - self.tokens) / self.rate


def rate_window(settings: SandboxSettings) -> RateWindow | None:
    """The window `settings` ask for, holding floor(rate) calls (at least 1); None: no limit."""
    if settings.rate is None:
        return None
    if settings.window == "bucket":
        return TokenBucket(settings.rate)
    limit = max(1, math.floor(settings.rate))
    return FixedWindow(limit) if settings.window == "fixed" else SlidingWindow(limit)


class DailyBudget:
    """At most `limit` accepted calls per UTC day; the caller counts them in `used`."""

    __slots__ = ("limit", "day", "used")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.day: float | None = None
        self.used = 0

    def wait(self, wall: float) -> float | None:
        """Seconds to the next UTC midnight if today's budget is spent, else None."""
        day = wall // DAY
        if day != self.day:
            self.day, self.used = day, 0
        return (day + 1) * DAY - wall if self.used >= self.limit else None
