"""What an answer means for the request that got it: one policy for every command that sends.

`next_step` turns the client's outcome into what happens next: the request is done, the row ends
with a final status, every worker pauses (429), the request is tried again after a backoff, or
the run must stop waiting (a 429 asking for longer than `max_wait`). The engine and `check` both
act on it, so a 5xx, a 429 or a lost answer is treated alike everywhere.

The run-wide breaker (`Breaker`) watches the same outcomes across rows: requests in a row that got
no answer at all, and 429s with no success between, stop the run instead of spending the day's
budget on calls that cannot pass.
"""

from __future__ import annotations

from dataclasses import dataclass

from .client import Lost, Outcome, RateLimited, Rejected, Retryable, Succeeded, backoff_delay
from .config import Config
from .models import Status, value_class

# The breaker: requests in a row that could not connect or got no answer; 429 pauses in a row
# (with no success between) lasting at least this long.
BREAKER_TRANSPORT = 5
BREAKER_429_PAUSES = 5
BREAKER_429_SECONDS = 4.0


@value_class
class Done:
    """The request did what it asked (created, updated or deleted)."""

    outcome: Succeeded


@value_class
class Finish:
    """The row ends here with `status`; nothing is gained by sending it again in this run."""

    status: Status
    http_status: int | None
    request_id: str | None
    errors: tuple[str, ...]
    log: str  # what to log: "failed" (an error) or "uncertain"


@value_class
class Pause:
    """Gong limits: every worker waits `seconds` (None: the header was missing or unusable,
    and the default was taken)."""

    seconds: float
    raw: str | None
    defaulted: bool
    request_id: str | None


@value_class
class TooLong:
    """Gong asks to wait longer than max_wait: the rest of the run is deferred."""

    seconds: float
    raw: str | None
    request_id: str | None


@value_class
class Again:
    """Send the same request again after `delay` seconds (0: at once)."""

    delay: float
    message: str


Step = Done | Finish | Pause | TooLong | Again


def next_step(outcome: Outcome, *, failures: int, cfg: Config, rand: float,
              resend_uncertain: bool = False) -> Step:
    """What follows `outcome`, the answer to a request after `failures` earlier failed tries
    of the same row (a 429 is not a failure). `rand` in [0, 1) draws the backoff's jitter."""
    match outcome:
        case Succeeded():
            return Done(outcome)
        case RateLimited():
            wait = outcome.retry_after
            defaulted = wait is None
            if wait is None:
                wait = cfg.retry_after_default
            if wait > cfg.max_wait:
                return TooLong(wait, outcome.raw, outcome.request_id)
            return Pause(wait, outcome.raw, defaulted, outcome.request_id)
        case Retryable():
            if failures + 1 >= cfg.max_attempts:
                return Finish(Status.FAILED, outcome.http_status, outcome.request_id,
                             (outcome.message,), "failed")
            return Again(backoff_delay(failures + 1, base=cfg.backoff_base, cap=cfg.backoff_max,
                                       rand=rand), outcome.message)
        case Rejected():
            return Finish(Status.FAILED, outcome.http_status, outcome.request_id, outcome.errors,
                         "failed")
        case Lost():
            # The request may have reached Gong: sending it again could create a second meeting.
            if resend_uncertain and failures + 1 < cfg.max_attempts:
                return Again(0.0, outcome.message)
            return Finish(Status.UNCERTAIN, outcome.http_status, outcome.request_id,
                         (outcome.message,), "uncertain")
    raise AssertionError(f"unknown outcome {outcome!r}")  # pragma: no cover


def no_answer(outcome: Outcome) -> bool:
    """Nothing came back at all: no connection, or no answer in time."""
    return isinstance(outcome, Retryable | Lost) and outcome.http_status is None


@dataclass(slots=True)
class Breaker:
    """Counts, across rows, what says that nothing sent now can pass.

    `no_answer` counts requests in a row without any answer; `pauses` the 429 pauses since the
    last success, `first_429` when the first of them came, `paused_at_success` the gate's paused
    seconds at the last success (so the 429 waits since then can be added up).
    """

    no_answer_count: int = 0
    pauses: int = 0
    first_429: float | None = None
    paused_at_success: float = 0.0

    def answered(self, paused_seconds: float) -> None:
        """Gong answered and did not limit: every count starts again."""
        self.no_answer_count = 0
        self.pauses = 0
        self.first_429 = None
        self.paused_at_success = paused_seconds

    def heard(self) -> None:
        """An HTTP answer of any kind: the host is up."""
        self.no_answer_count = 0

    def silent(self) -> bool:
        """A request got no answer. True when that makes too many in a row."""
        self.no_answer_count += 1
        return self.no_answer_count >= BREAKER_TRANSPORT

    def may_resend_lost(self) -> bool:
        """A lost answer may be sent again (--resend-uncertain) unless the host seems gone."""
        return self.no_answer_count + 1 < BREAKER_TRANSPORT

    def limited(self, now: float, paused_seconds: float, wait: float, *, new_pause: bool,
                max_wait: float) -> str | None:
        """A 429 at loop time `now`. The reason to defer the rest, or None to pause and go on:
        429s for BREAKER_429_PAUSES pauses over BREAKER_429_SECONDS with no success between,
        or 429 waits since the last success adding up past max_wait."""
        self.no_answer_count = 0
        if self.first_429 is None:
            self.first_429 = now
        waited = paused_seconds - self.paused_at_success
        constant = (self.pauses + 1 >= BREAKER_429_PAUSES
                    and now - self.first_429 >= BREAKER_429_SECONDS)
        if new_pause and (constant or waited + wait > max_wait):
            return (f"Gong answered 429 to every request for {now - self.first_429:.0f}s "
                    f"({self.pauses + 1} answers 429 in a row, {waited:.0f}s paused, with "
                    "no success between); the rest is deferred")
        return None
