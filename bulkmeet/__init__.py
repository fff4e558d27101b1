"""bulkmeet: turn spreadsheet rows into Gong meetings.

The Python API (see bulkmeet.api) is what the CLI is built on: `run`, `retry`, `sync`, `undo`,
`plan`, `validate` and `check`, each with an `..._async` twin where it sends or reads the
state store, returning typed
summaries and raising the exceptions rooted at `BulkmeetError`.
"""

__version__ = "0.1.0"  # before the imports: modules they load read it

import logging

from .api import (
    RunSummary,
    ValidateSummary,
    check,
    check_async,
    plan,
    plan_async,
    retry,
    retry_async,
    run,
    run_async,
    settings,
    sync,
    sync_async,
    undo,
    undo_async,
    validate,
)
from .config import Config
from .errors import (
    AuthError,
    BulkmeetError,
    ConfigError,
    InputError,
    JournalError,
    QuotaExhausted,
    Unreachable,
    UsageError,
)
from .exits import EXIT_MEANINGS
from .models import Record, Status

# A library logs to its logger and leaves where it goes to the caller (the CLI sets that up).
logging.getLogger("bulkmeet").addHandler(logging.NullHandler())

__all__ = [
    "EXIT_MEANINGS",
    "AuthError",
    "BulkmeetError",
    "Config",
    "ConfigError",
    "InputError",
    "JournalError",
    "QuotaExhausted",
    "Record",
    "RunSummary",
    "Status",
    "Unreachable",
    "UsageError",
    "ValidateSummary",
    "__version__",
    "check",
    "check_async",
    "plan",
    "plan_async",
    "retry",
    "retry_async",
    "run",
    "run_async",
    "settings",
    "sync",
    "sync_async",
    "undo",
    "undo_async",
    "validate",
]
