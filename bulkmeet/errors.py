"""The exceptions that stop a run. A row's own problem is never one of these: it is a record.

    BulkmeetError
     +-- UsageError        bad command line or option combination        (exit 2)
     +-- ConfigError       bad config file or setting, names key and file (exit 2)
     +-- InputError        input file missing, unreadable, unknown format (exit 2)
     +-- AuthError         401/403 from Gong: holds for every row         (exit 3)
     +-- QuotaExhausted    daily budget spent or a 429 wait past max_wait (exit 75)
     +-- Unreachable       Gong's host cannot be reached or never answers (exit 69)
     +-- JournalError      the results file (or ledger) cannot be written (exit 74)
     +-- StateMissing      --state-must-exist, and the state store is new  (exit 78)
"""

from __future__ import annotations


class BulkmeetError(Exception):
    """Base of every error that stops a run."""

    exit_code = 1


class UsageError(BulkmeetError):
    exit_code = 2


class ConfigError(BulkmeetError):
    exit_code = 2


class InputError(BulkmeetError):
    exit_code = 2


class AuthError(BulkmeetError):
    """Gong answered 401 or 403: credentials or the endpoint's release hold for every row."""

    exit_code = 3

    def __init__(self, message: str, *, http_status: int, request_id: str | None = None) -> None:
        super().__init__(message)
        self.http_status = http_status
        self.request_id = request_id


class QuotaExhausted(BulkmeetError):
    """No more calls may be spent now; the run defers what is left."""

    exit_code = 75


class Unreachable(BulkmeetError):
    """Requests in a row could not connect, or got no answer: the rest of the run would fare the
    same (sysexits EX_UNAVAILABLE)."""

    exit_code = 69


class JournalError(BulkmeetError):
    """An entry of the results file or the ledger could not be written whole (a full disk, an
    I/O error). Nothing more is sent: a request whose outcome cannot be recorded could be sent
    again by the resume (sysexits EX_IOERR)."""

    exit_code = 74


class StateMissing(BulkmeetError):
    """The run was told its state must exist (a nightly job), and the store is new or empty:
    starting would create every row again."""

    exit_code = 78
