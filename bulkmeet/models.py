"""The small immutable values that flow through the pipeline: reader, mapping, pool, results."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, TypeVar, dataclass_transform

import orjson

_T = TypeVar("_T")


@dataclass_transform(frozen_default=True, field_specifiers=(field,))
def value_class(cls: type[_T]) -> type[_T]:
    """A dataclass that the type checker holds frozen, built at run time without `frozen`.

    For the values made once or more per row (RawRow, Row, Record, Verdict, the outcomes):
    a frozen dataclass's __init__ sets each field through object.__setattr__, which made it
    four times slower to build than a plain slots dataclass (BENCHMARKS.md, part b). mypy
    --strict still rejects any assignment to a field; instances are not hashable.
    """
    return dataclass(slots=True)(cls)


class Status(StrEnum):
    """A row's status in the results file. Every status but SENDING is final."""

    CREATED = "created"
    INVALID = "invalid"
    FAILED = "failed"
    NOT_SENT = "not_sent"
    DUPLICATE = "duplicate"
    UNCERTAIN = "uncertain"
    DEFERRED = "deferred"
    SKIPPED = "skipped"  # created by an earlier run (per the ledger); nothing sent this time
    UPDATED = "updated"  # sync: an existing meeting changed in place
    DELETED = "deleted"  # sync --prune and undo: the meeting is gone (a 404 counts as gone)
    SENDING = "sending"  # journal entry written just before a POST; not an outcome
    ANSWERED = "answered"  # journal entry: Gong answered and created nothing (429, 5xx)


JOURNAL_STATUSES = frozenset({Status.SENDING, Status.ANSWERED})
FINAL_STATUSES = frozenset(s for s in Status if s not in JOURNAL_STATUSES)


@value_class
class RawRow:
    """One record as the reader found it.

    `line` is the 1-based physical line where the record starts (a CSV record with quoted newlines
    spans several lines; the header is line 1). `fields` is None when the record could not be
    parsed, and then `error` says why, naming the line.
    """

    line: int
    fields: dict[str, Any] | None
    error: str | None = None


@value_class
class Row:
    """A row after mapping and validation: either a payload ready to send, or its errors."""

    line: int
    key: str
    payload: dict[str, Any] | None
    errors: tuple[str, ...] = ()
    fields: dict[str, Any] | None = field(default=None, compare=False)
    skipped_reason: str | None = None  # set when the mapping's filter leaves the row out
    op: str = "create"  # create | update | delete (sync and undo)
    meeting_id: str | None = None  # the meeting an update or delete acts on

    @property
    def valid(self) -> bool:
        return self.payload is not None and not self.errors


@value_class
class Record:
    """One line of the results file."""

    line: int
    key: str
    status: Status
    http_status: int | None = None
    meeting_id: str | None = None
    meeting_url: str | None = None
    request_id: str | None = None
    errors: tuple[str, ...] = ()
    attempts: int = 0
    finished_at: str | None = None
    payload_hash: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The record under the results file's field names (the API's camelCase)."""
        return {
            "line": self.line,
            "key": self.key,
            "status": self.status._value_,  # the enum's .value is a slow descriptor
            "httpStatus": self.http_status,
            "meetingId": self.meeting_id,
            "meetingUrl": self.meeting_url,
            "requestId": self.request_id,
            "errors": list(self.errors),
            "attempts": self.attempts,
            "finishedAt": self.finished_at,
            "payloadHash": self.payload_hash,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Record:
        return cls(
            line=int(data["line"]),
            key=str(data["key"]),
            status=Status(data["status"]),
            http_status=data.get("httpStatus"),
            meeting_id=data.get("meetingId"),
            meeting_url=data.get("meetingUrl"),
            request_id=data.get("requestId"),
            errors=tuple(data.get("errors") or ()),
            attempts=int(data.get("attempts") or 0),
            finished_at=data.get("finishedAt"),
            payload_hash=data.get("payloadHash"),
        )


RESULT_FIELDS = (
    "line",
    "key",
    "status",
    "httpStatus",
    "meetingId",
    "meetingUrl",
    "requestId",
    "errors",
    "attempts",
    "finishedAt",
    "payloadHash",
)


def payload_digest(payload: dict[str, Any]) -> str:
    """A short digest of the exact payload sent, to tell on a re-run whether a row changed."""
    return hashlib.sha256(orjson.dumps(payload, option=orjson.OPT_SORT_KEYS)).hexdigest()[:16]
