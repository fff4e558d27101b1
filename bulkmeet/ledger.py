"""The ledger: every key ever created, with its meetingId, kept across runs (for nightly jobs).

An append-only JSONL file. Before each request a `sending` entry is written; after it, the
outcome. A key whose last entry is `sending` may exist in Gong (the answer was lost, or the
process died), so it is never sent again without the user's word (`--resend-uncertain`).
"""

from __future__ import annotations

import errno
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from .errors import InputError
from .results import append_whole, now_iso

_WARNED: set[str] = set()


def warn_deprecated(path: str | Path) -> None:
    """Say once per ledger and process that the state store replaces it."""
    import logging

    if str(path) in _WARNED:
        return
    _WARNED.add(str(path))
    logging.getLogger("bulkmeet").warning(
        "--ledger is deprecated: the state store keeps what the ledger kept (and more). Bring "
        "it in once with `bulkmeet state import --ledger %s`, then drop --ledger", path,
        extra={"event": "deprecated"})


@dataclass(slots=True)
class LedgerEntry:
    meeting_id: str | None = None
    payload_hash: str | None = None
    in_flight: bool = False
    in_flight_op: str | None = None  # create | update | delete: what the cut-off request was
    deleted: bool = False
    organizer: str | None = None
    payload: dict[str, Any] | None = None  # the last payload created or updated (for sync plans)
    refused_hash: str | None = None  # a payload Gong refused (4xx): not sent again unchanged

    @property
    def exists(self) -> bool:
        return self.meeting_id is not None and not self.deleted

    @property
    def create_in_doubt(self) -> bool:
        """A create was sent and never answered: Gong may hold a meeting the ledger lacks."""
        return self.in_flight and self.in_flight_op in (None, "create")


class Ledger:
    """Load with `Ledger.open(path)`; then `entries` holds the state of every key."""

    def __init__(self, path: Path, entries: dict[str, LedgerEntry], warnings: list[str]) -> None:
        self.path = path
        self.entries = entries
        self.warnings = warnings
        try:
            # A raw O_APPEND descriptor, each entry one whole write (results.append_whole): a
            # full disk leaves no torn entry that a later read would drop.
            self._fd: int | None = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT
                                           | getattr(os, "O_CLOEXEC", 0), 0o644)
        except OSError as exc:
            raise InputError(f"cannot write ledger {path}: {exc.strerror or exc}") from None

    @classmethod
    def open(cls, path: str | Path) -> Ledger:
        p = Path(path)
        entries, warnings, torn = _read(p)
        ledger = cls(p, entries, warnings)
        if torn:
            ledger._append(b"\n")
        return ledger

    def get(self, key: str) -> LedgerEntry | None:
        return self.entries.get(key)

    def write(self, key: str, op: str, *, meeting_id: str | None = None,
              payload_hash: str | None = None, organizer: str | None = None,
              payload: Mapping[str, Any] | None = None, intent: str | None = None) -> None:
        """Append one entry. `intent` (with op "sending") says which request goes out."""
        data: dict[str, Any] = {"key": key, "op": op, "meetingId": meeting_id,
                                "payloadHash": payload_hash, "organizer": organizer,
                                "at": now_iso()}
        if intent is not None:
            data["intent"] = intent
        if payload is not None:
            data["payload"] = dict(payload)
        self._append(orjson.dumps(data, option=orjson.OPT_APPEND_NEWLINE))
        _apply(self.entries.setdefault(key, LedgerEntry()), op, data)

    def _append(self, line: bytes) -> None:
        if self._fd is None:
            raise OSError(errno.EBADF, "the ledger is closed")
        append_whole(self._fd, line)

    def close(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            try:
                os.fsync(fd)
            finally:
                os.close(fd)


def read_ledger(path: str | Path) -> tuple[dict[str, LedgerEntry], list[str]]:
    """The state of every key, without opening the file for writing (for `bulkmeet plan`)."""
    entries, warnings, _ = _read(Path(path))
    return entries, warnings


def _read(p: Path) -> tuple[dict[str, LedgerEntry], list[str], bool]:
    entries: dict[str, LedgerEntry] = {}
    warnings: list[str] = []
    torn = False
    if not p.exists():
        return entries, warnings, torn
    try:
        f = open(p, "rb")  # noqa: SIM115
    except OSError as exc:
        raise InputError(f"cannot read ledger {p}: {exc.strerror or exc}") from None
    with f:
        for n, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                data = orjson.loads(line)
                key = str(data["key"])
                op = str(data["op"])
            except (orjson.JSONDecodeError, KeyError, TypeError):
                torn = not line.endswith(b"\n")
                warnings.append(f"{p}: line {n} is incomplete or unreadable; ignored")
                continue
            _apply(entries.setdefault(key, LedgerEntry()), op, data)
            torn = not line.endswith(b"\n")
    return entries, warnings, torn


def _apply(entry: LedgerEntry, op: str, data: Mapping[str, object]) -> None:
    mid = data.get("meetingId")
    ph = data.get("payloadHash")
    org = data.get("organizer")
    if op == "sending":
        entry.in_flight = True
        intent = data.get("intent")
        entry.in_flight_op = intent if isinstance(intent, str) else None
    elif op in ("created", "updated"):
        entry.in_flight = False
        entry.deleted = False
        if isinstance(mid, str):
            entry.meeting_id = mid
        if isinstance(ph, str):
            entry.payload_hash = ph
        if isinstance(org, str):
            entry.organizer = org
        payload = data.get("payload")
        if isinstance(payload, dict):
            entry.payload = payload
    elif op == "deleted":
        entry.in_flight = False
        entry.deleted = True
    elif op == "not_created":  # a definite answer that nothing was made (4xx, 5xx)
        entry.in_flight = False
    elif op == "uncertain":  # kept in flight: the user decides
        entry.in_flight = True
