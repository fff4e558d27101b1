"""How a sandbox behaves: rate, window, budget, Retry-After form, faults, users, credentials."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

Window = Literal["fixed", "sliding", "bucket"]
RetryAfterStyle = Literal["seconds", "date", "none"]


@dataclass(frozen=True, slots=True, kw_only=True)
class SandboxSettings:
    """How the sandbox behaves. Defaults mimic a default Gong company: 3 calls/s, sliding."""

    rate: float | None = 3.0  # calls per second; None = unlimited
    # fixed: whole clock seconds; sliding: requests in (t-1, t]; bucket: capacity `rate`,
    # refilled at `rate`/s. The windows hold floor(rate) requests (at least 1).
    window: Window = "sliding"
    daily: int | None = None  # accepted calls per UTC day; None = unlimited
    retry_after: RetryAfterStyle = "seconds"
    retry_after_fixed: int | None = None  # always answer this many seconds
    fail_rate: float = 0.0  # fraction answered 500
    drop_rate: float = 0.0  # fraction whose connection is closed without an answer
    drop_after_create: bool = False  # a dropped request is still carried out
    latency: float = 0.0  # seconds added before answering
    seed: int | None = None
    unknown_organizers: frozenset[str] = frozenset()
    unknown_domains: frozenset[str] = frozenset({"unknown.example"})
    invalid_integration: frozenset[str] = frozenset()
    # Unset: any well-formed Basic key:secret or Bearer token passes. Once either is set only
    # configured ones do: a Basic header must carry `credentials`, a Bearer header `bearer`.
    credentials: tuple[str, str] | None = None
    bearer: str | None = None
    forbidden: bool = False
    clock: Callable[[], float] = time.monotonic  # for rates and the request log
    wall_clock: Callable[[], float] = time.time  # for the daily budget and HTTP-dates
    log_limit: int | None = 100_000  # request log entries kept; None = all
    # Another integration of the same company: the sandbox itself spends `neighbour` calls/s
    # of the rate window and the daily budget, evenly spaced, from when it starts listening
    # (for `neighbour_for` seconds; None: until it closes). Refused ones are counted, not
    # retried: GET /_sandbox/stats reports them under "neighbour".
    neighbour: float = 0.0
    neighbour_for: float | None = None

    def __post_init__(self) -> None:
        if self.rate is not None and not self.rate > 0:
            raise ValueError(f"rate must be greater than 0 or None, not {self.rate!r}")
        if self.window not in ("fixed", "sliding", "bucket"):
            raise ValueError(f"window must be fixed, sliding or bucket, not {self.window!r}")
        if self.retry_after not in ("seconds", "date", "none"):
            raise ValueError(f"retry_after must be seconds, date or none, not {self.retry_after!r}")
        for name in ("daily", "retry_after_fixed", "log_limit"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ValueError(f"{name} must not be negative, not {value!r}")
        for name in ("fail_rate", "drop_rate"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], not {getattr(self, name)!r}")
        if self.neighbour < 0:
            raise ValueError(f"neighbour must not be negative, not {self.neighbour!r}")
        if self.neighbour_for is not None and self.neighbour_for < 0:
            raise ValueError(f"neighbour_for must not be negative, not {self.neighbour_for!r}")
        if self.latency < 0:
            raise ValueError(f"latency must not be negative, not {self.latency!r}")
        if self.credentials is not None and not all(self.credentials):
            raise ValueError("credentials must be a non-empty (key, secret) pair")


DEFAULT_SETTINGS = SandboxSettings()
