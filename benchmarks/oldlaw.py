"""`bulkmeet` with the adaptive law it had before issue 16, for the benchmark's "old vs new":

    python -m benchmarks.oldlaw run INPUT --rate auto ...

Halve on a 429; add 0.1/s after each 10 s without one, up to the ceiling; start at the rate.
Kept here, not in bulkmeet: nothing else should reach it.
"""

from __future__ import annotations

import bulkmeet.gate
from bulkmeet.gate import RateLaw


class HalveAndAdd:
    def __init__(self, ceiling: float, floor: float) -> None:
        self.ceiling, self.floor = ceiling, floor
        self.last: float | None = None

    def first_rate(self, rate: float) -> float:
        return rate

    def tick(self, now: float, rate: float, acquired: int) -> tuple[float, str] | None:
        if self.last is None:
            self.last = now
        elif now - self.last >= 10.0:
            self.last = now
            if rate + 0.1 <= self.ceiling + 1e-9:
                return min(self.ceiling, rate + 0.1), "no 429 for 10s"
        return None

    def on_429(self, now: float, rate: float, acquired: int) -> tuple[float, str]:
        self.last = now
        return max(self.floor, rate * 0.5), "429 received"


def old_law(ceiling: float, floor: float) -> RateLaw:
    return HalveAndAdd(ceiling, floor)


if __name__ == "__main__":
    bulkmeet.gate.default_law = old_law
    from bulkmeet.cli import main

    main()
