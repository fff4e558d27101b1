"""What one run of the engine did: live counters, read for progress, the summary and reports."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field

from ..errors import AuthError, BulkmeetError
from ..models import Status


@dataclass(frozen=True, slots=True)
class QuotaView:
    """The daily quota as the run left it."""

    day: str
    budget: int
    used: int

    @property
    def remaining(self) -> int:
        return max(0, self.budget - self.used)


@dataclass(slots=True)
class RunStats:
    """Live counters of one run; the engine writes them, everything else only reads."""

    started: float = field(default_factory=time.monotonic)
    finished: float | None = None
    rows_read: int = 0
    requests: int = 0
    organizer_checks: int = 0  # integration/status calls before sending (engine.precheck)
    rate_limited: int = 0
    counts: Counter[str] = field(default_factory=Counter)
    skipped: int = 0
    uncertain_before: int = 0
    refused_before: int = 0  # rows Gong refused (4xx) in an earlier run, unchanged since
    settled: int = 0  # rows an earlier run settled: skipped with no record (for progress)
    uncertain_lines: list[int] = field(default_factory=list)
    stop_reason: str | None = None
    exit_status: Status | None = None  # the status given to rows not sent after a stop
    auth_error: AuthError | None = None
    stopped_by: BulkmeetError | None = None  # Unreachable or JournalError: the run's exit code
    unrecorded: int = 0  # final records the results file refused (a full disk)
    output_errors: list[str] = field(default_factory=list)  # state not saved after the run
    interrupted: bool = False
    unread: bool = False
    pauses: int = 0
    paused_seconds: float = 0.0
    first_request: float | None = None
    last_request: float | None = None
    final_rate: float | None = None  # the gate's rate at the end (adaptive mode moves it)
    quota: QuotaView | None = None  # the daily quota at the end (None for a sandbox)

    @property
    def wall(self) -> float:
        return (self.finished or time.monotonic()) - self.started

    @property
    def achieved_rate(self) -> float:
        if self.first_request is None or self.last_request is None or self.requests < 2:
            return 0.0
        span = self.last_request - self.first_request
        return (self.requests - 1) / span if span > 0 else 0.0

    def add(self, other: RunStats) -> None:
        """Fold the counters of a later run of the same command (sync's phases) into these."""
        self.requests += other.requests
        self.organizer_checks += other.organizer_checks
        self.rate_limited += other.rate_limited
        self.counts.update(other.counts)
        self.skipped += other.skipped
        self.settled += other.settled
        self.uncertain_before += other.uncertain_before
        self.refused_before += other.refused_before
        self.uncertain_lines.extend(other.uncertain_lines)
        self.unrecorded += other.unrecorded
        self.stop_reason = self.stop_reason or other.stop_reason
        self.exit_status = self.exit_status or other.exit_status
        self.auth_error = self.auth_error or other.auth_error
        self.stopped_by = self.stopped_by or other.stopped_by
        self.interrupted = self.interrupted or other.interrupted
        self.unread = self.unread or other.unread
        if other.first_request is not None:
            self.first_request = min(self.first_request or other.first_request,
                                     other.first_request)
        if other.last_request is not None:
            self.last_request = max(self.last_request or other.last_request, other.last_request)
