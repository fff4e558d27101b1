"""A company's shared quota on the virtual clock: the gate's workers and a neighbour (another
integration spending a steady R calls/s) take calls from one sandbox rate window.

No HTTP: each worker's call reaches the window `latency` / 2 after its token and its 429 comes
back `latency` / 2 later, with the Retry-After the sandbox would send (whole seconds, at least
1). What it records is what the server saw, so the law's effect on the neighbour is counted.
"""

from __future__ import annotations

import asyncio
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field

from bulkmeet.gate import Gate
from bulkmeet.sandbox.limits import FixedWindow, RateWindow, SlidingWindow, TokenBucket

WINDOWS = ("fixed", "sliding", "bucket")


def window(kind: str, limit: int = 3) -> RateWindow:
    if kind == "fixed":
        return FixedWindow(limit)
    return SlidingWindow(limit) if kind == "sliding" else TokenBucket(float(limit))


@dataclass
class Traffic:
    """Calls as the server saw them, in seconds from the start: (time, accepted)."""

    ours: list[tuple[float, bool]] = field(default_factory=list)
    theirs: list[tuple[float, bool]] = field(default_factory=list)
    rates: list[tuple[float, float]] = field(default_factory=list)  # (time, gate rate)

    def our_rate(self, start: float, end: float) -> float:
        """Our accepted calls per second in [start, end)."""
        return sum(1 for t, ok in self.ours if ok and start <= t < end) / (end - start)

    def our_429s(self, start: float, end: float) -> int:
        return sum(1 for t, ok in self.ours if not ok and start <= t < end)

    def their_refused(self, start: float = 0.0, end: float = math.inf) -> tuple[int, int]:
        """(refused, calls) of the neighbour in [start, end)."""
        calls = [ok for t, ok in self.theirs if start <= t < end]
        return sum(1 for ok in calls if not ok), len(calls)

    def first_rate_above(self, rate: float, after: float, span: float = 10.0) -> float | None:
        """The first time t >= after + span at which our accepted rate over [t - span, t)
        exceeds `rate`, in seconds from `after`; None if never."""
        oks = sorted(t for t, ok in self.ours if ok and t >= after)
        for i, t in enumerate(oks):
            j = i  # calls in [t - span, t]
            while j > 0 and oks[j - 1] > t - span:
                j -= 1
            if t - after >= span and (i - j) / span > rate:
                return t - after
        return None


async def share(
    gate: Gate, kind: str, *, seconds: float,
    neighbour: Sequence[tuple[float, float, float]] = ((0.0, math.inf, 1.0),),
    workers: int = 8, latency: float = 0.004, phase: float = 0.37, seed: int = 1,
) -> Traffic:
    """Run the gate's workers beside a neighbour for `seconds`. `neighbour`: (from, to, calls/s)
    spans; it starts `phase` s into each of its intervals."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    win = window(kind)
    traffic = Traffic()
    rng = random.Random(seed)
    end = start + seconds

    async def worker() -> None:
        while loop.time() < end:
            await gate.acquire()
            traffic.rates.append((loop.time() - start, gate.rate or 0.0))
            await asyncio.sleep(latency / 2 * (0.5 + rng.random()))
            wait = win.take(loop.time())
            traffic.ours.append((loop.time() - start, wait is None))
            await asyncio.sleep(latency / 2 * (0.5 + rng.random()))
            if wait is not None:
                gate.pause(max(1, math.ceil(wait - 1e-6)))

    async def other() -> None:
        for begin, until, rate in neighbour:
            k = 0
            while (t := max(begin, 0.0) + (phase + k) / rate) < min(until, seconds):
                await asyncio.sleep(start + t - loop.time())
                traffic.theirs.append((t, win.take(start + t) is None))  # on time, exactly
                k += 1

    tasks = [asyncio.ensure_future(worker()) for _ in range(workers)]
    await other()
    await asyncio.gather(*tasks)
    return traffic
