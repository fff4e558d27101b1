"""Row events: the journey of each row, published by the engine to whoever subscribes.

Every row the engine takes is `read` (with its planned work), then, if it is sent, `sending`
before each request and `answered` after each answer that created nothing (429, 5xx, no
connection), and finally `final` with its one final record. The results journal and the ledger
subscribe (`Journal`, whose failures stop the run), and so do the progress display and the
reports (`RowEvents` subclasses whose hooks must not raise). Nobody reaches into the engine.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..errors import JournalError
from ..ledger import Ledger
from ..models import Record, Row, Status
from ..planner import Work
from ..results import ResultsWriter

# What a successful request of each op is called in the ledger.
_LEDGER_DONE = {Status.CREATED: "created", Status.UPDATED: "updated", Status.DELETED: "deleted"}


class RowEvents:
    """A subscriber: every hook does nothing unless overridden."""

    def read(self, work: Work) -> None:
        """The engine took one planned row (in input order)."""

    def sending(self, row: Row, attempt: int, digest: str) -> None:
        """A request for `row` is about to leave."""

    def answered(self, row: Row, http_status: int | None) -> None:
        """The request got an answer, or failed to connect, and nothing was created."""

    def final(self, record: Record, row: Row | None, payload: dict[str, Any] | None) -> None:
        """The row's one final record. `row` is set when the run sent (or meant to send) it,
        None for a row settled without a request; `payload` is kept for rows not sent."""


class Journal(RowEvents):
    """The results file and the ledger: what a resume reads. Each hook raises JournalError when
    the disk refuses it; the engine then stops sending."""

    def __init__(self, writer: ResultsWriter, ledger: Ledger | None = None) -> None:
        self.writer = writer
        self.ledger = ledger

    def sending(self, row: Row, attempt: int, digest: str) -> None:
        self.writer.sending(row, attempt, digest)
        if self.ledger is not None:
            self._ledger(row.key, "sending", payload_hash=digest, intent=row.op)

    def answered(self, row: Row, http_status: int | None) -> None:
        self.writer.answered(row, http_status)
        if self.ledger is not None:
            self._ledger(row.key, "not_created")

    def final(self, record: Record, row: Row | None, payload: dict[str, Any] | None) -> None:
        if row is not None and self.ledger is not None:
            done = _LEDGER_DONE.get(record.status)
            if done is not None:
                # The payload itself is kept so that `bulkmeet plan` can name changed fields.
                self._ledger(
                    row.key, done, meeting_id=record.meeting_id, payload_hash=record.payload_hash,
                    organizer=str(row.payload.get("organizerEmail")) if row.payload else None,
                    payload=row.payload if row.op != "delete" else None)
            elif record.status is Status.FAILED:
                self._ledger(row.key, "not_created")
            elif record.status is Status.UNCERTAIN:
                self._ledger(row.key, "uncertain")
        self.writer.record(record, payload)

    def _ledger(self, key: str, op: str, **fields: Any) -> None:
        if self.ledger is None:
            return
        try:
            self.ledger.write(key, op, **fields)
        except OSError as exc:
            raise JournalError(f"cannot write the ledger {self.ledger.path}: "
                               f"{exc.strerror or exc}") from None


class Fanout:
    """The journal first (its errors reach the engine), then every other subscriber."""

    def __init__(self, journal: Journal, listeners: Sequence[RowEvents] = ()) -> None:
        self.journal = journal
        self.listeners = tuple(listeners)

    def read(self, work: Work) -> None:
        for listener in self.listeners:
            listener.read(work)

    def sending(self, row: Row, attempt: int, digest: str) -> None:
        self.journal.sending(row, attempt, digest)
        for listener in self.listeners:
            listener.sending(row, attempt, digest)

    def answered(self, row: Row, http_status: int | None) -> None:
        self.journal.answered(row, http_status)
        for listener in self.listeners:
            listener.answered(row, http_status)

    def final(self, record: Record, row: Row | None, payload: dict[str, Any] | None) -> None:
        self.journal.final(record, row, payload)
        for listener in self.listeners:
            listener.final(record, row, payload)
