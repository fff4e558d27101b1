"""Exit codes: what a run's end means, for the CLI, the reports and the Python API alike."""

from __future__ import annotations

import signal
from typing import TYPE_CHECKING, Final

from .models import Status

if TYPE_CHECKING:
    from .engine import RunStats

EXIT_OK: Final = 0
EXIT_ROWS: Final = 1
EXIT_USAGE: Final = 2
EXIT_AUTH: Final = 3
EXIT_UNREACHABLE: Final = 69
EXIT_JOURNAL: Final = 74
EXIT_DEFERRED: Final = 75
EXIT_STATE_MISSING: Final = 78
EXIT_SIGINT: Final = 130
EXIT_SIGTERM: Final = 143

EXIT_MEANINGS: Final = {
    EXIT_OK: "every row succeeded",
    EXIT_ROWS: "some rows were not created (invalid, failed, duplicate, uncertain or not sent)",
    EXIT_USAGE: "usage, config or input error",
    EXIT_AUTH: "stopped: Gong refused the credentials or the endpoint (401/403)",
    EXIT_UNREACHABLE: "stopped: Gong could not be reached or did not answer",
    EXIT_JOURNAL: "stopped: the results file or the ledger could not be written",
    EXIT_DEFERRED: "deferred: the rate limit or the daily quota said wait; run again later",
    EXIT_STATE_MISSING: "refused: the state store was required to exist and is new or empty",
    EXIT_SIGINT: "interrupted (SIGINT)",
    EXIT_SIGTERM: "terminated (SIGTERM)",
}

# Final statuses that make a run's exit code 1.
_NOT_DONE = (Status.INVALID, Status.FAILED, Status.NOT_SENT, Status.UNCERTAIN, Status.DUPLICATE)


def exit_code(stats: RunStats, signals: list[int] | None = None) -> int:
    """The exit code of a run that ended with `stats`, after `signals` (SIGINT/SIGTERM) if any."""
    code = _run_code(stats, signals or [])
    # State not saved after the run (its records are all on disk): 2, if nothing says more.
    return code or (EXIT_USAGE if stats.output_errors else EXIT_OK)


def _run_code(stats: RunStats, signals: list[int]) -> int:
    if stats.stopped_by is not None:  # a full disk, an unreachable host: says more than a signal
        return stats.stopped_by.exit_code
    if signals:
        return EXIT_SIGTERM if signals[0] == signal.SIGTERM else EXIT_SIGINT
    if stats.auth_error is not None:
        return EXIT_AUTH
    if stats.exit_status is Status.DEFERRED:
        return EXIT_DEFERRED
    if any(stats.counts.get(s.value) for s in _NOT_DONE) or stats.uncertain_before \
            or stats.refused_before:
        return EXIT_ROWS
    return EXIT_OK
