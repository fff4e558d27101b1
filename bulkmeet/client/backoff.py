"""How long to wait before trying again."""

from __future__ import annotations


def backoff_delay(attempt: int, *, base: float, cap: float, rand: float) -> float:
    """Exponential backoff with full jitter (AWS architecture blog): U(0, min(cap, base*2^n))."""
    return rand * min(cap, base * 2.0 ** max(0, attempt - 1))
