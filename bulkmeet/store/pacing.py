"""Shared pacing: GCRA (the generic cell rate algorithm, "virtual scheduling" form).

The store keeps, per target, one theoretical arrival time (TAT): the earliest moment the next
request may leave. Taking a slot is one atomic read-modify-write of it on the store's clock:

    send_at = max(now, TAT - burst, paused_until)
    TAT     = max(TAT, send_at) + 1/rate
    wait    = send_at - now

Every process reserves its own slot this way, so however many processes share the store, the
slots handed out are spaced 1/rate apart (with `burst` = 0): at most `rate` in any window of one
second, whoever asks. A reservation is kept even if its taker dies, which only leaves a gap.

`paused_until` is the shared pause: a 429 seen by one process (Retry-After) moves it forward,
never back, and every later slot starts after it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Slot:
    wait: float     # seconds from the store's `now` until the reserved send time
    send_at: float  # the reserved send time, store clock
    tat: float      # the new theoretical arrival time


def gcra(tat: float | None, paused_until: float | None, now: float, rate: float,
         burst: float = 0.0) -> Slot:
    """Reserve the next slot. `rate` in calls/s (> 0); `burst` in seconds of credit (>= 0)."""
    if not rate > 0:
        raise ValueError(f"rate must be positive, not {rate!r}")
    if burst < 0:
        raise ValueError(f"burst must not be negative, not {burst!r}")
    interval = 1.0 / rate
    prev = now if tat is None else tat
    send_at = max(now, prev - burst, paused_until or now)
    new_tat = max(prev, send_at) + interval
    return Slot(send_at - now, send_at, new_tat)


def extend_pause(current: float | None, deadline: float) -> float:
    """A pause only ever grows: a shorter Retry-After never cuts another process's wait."""
    return deadline if current is None else max(current, deadline)
