"""What earlier runs into a results file left, as the resume rules ask for it: by key, its last
final record, whether a request for it was left in flight, and whether a meeting exists.

A small file is folded in memory (`results.read_results`). A larger one is folded into a
temporary SQLite table on disk, a chunk of keys at a time, and each row's key is looked up there
as the run reads it: a resumed million-row run holds a few MB for it, where a dict of a million
`KeyState`s holds ~700 MB. A look-up costs a few microseconds, nothing beside a call at 3/s.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any, Protocol

import orjson

from .models import FINAL_STATUSES, Record, Status
from .results import HAS_MEETING, KeyState, ResultsState, iter_entries, read_results
from .scratch import scratch_table

# Files up to this size are folded in memory: ~12,000 rows of a typical run, ~10 MB of state.
IN_MEMORY_BYTES = 8 * 1024 * 1024
_CHUNK_KEYS = 20_000  # keys folded in memory before they are merged into the table

_SENDING, _ANSWERED = Status.SENDING.value, Status.ANSWERED.value

# A chunk's value for a column is NULL when the chunk said nothing of it: the older one stays.
_UPSERT = (
    "INSERT INTO prior (key, in_flight, meeting, last) VALUES (?, ?, ?, ?) "
    "ON CONFLICT (key) DO UPDATE SET "
    "in_flight = coalesce(excluded.in_flight, in_flight), "
    "meeting = coalesce(excluded.meeting, meeting), "
    "last = coalesce(excluded.last, last)"
)


class Prior(Protocol):
    """What a resume asks of an earlier results file."""

    warnings: list[str]
    targets: set[str]

    def get(self, key: str) -> KeyState | None: ...

    def close(self) -> None: ...


def open_prior(path: str | Path, *, in_memory_bytes: int | None = None) -> Prior:
    """The resume state of the results file `path` (empty when there is none); folded on disk
    when the file is larger than `in_memory_bytes` (IN_MEMORY_BYTES)."""
    p = Path(path)
    try:
        size = p.stat().st_size
    except FileNotFoundError:
        return ResultsState()
    except OSError:
        size = 0  # read_results says what is wrong with it
    if size <= (IN_MEMORY_BYTES if in_memory_bytes is None else in_memory_bytes):
        return read_results(p)
    return DiskPrior.fold(p)


class DiskPrior:
    """A results file folded into a temporary SQLite table (deleted on close)."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db: sqlite3.Connection | None = db
        self.warnings: list[str] = []
        self.targets: set[str] = set()
        self.keys = 0

    @classmethod
    def fold(cls, path: Path, *, chunk_keys: int = _CHUNK_KEYS) -> DiskPrior:
        db = scratch_table("CREATE TABLE prior (key TEXT PRIMARY KEY, in_flight INTEGER, "
                           "meeting TEXT, last TEXT) WITHOUT ROWID")
        prior = cls(db)
        try:
            prior._fold(path, chunk_keys)
        except BaseException:
            prior.close()
            raise
        return prior

    def _fold(self, path: Path, chunk_keys: int) -> None:
        """As read_results folds a file, with each chunk's word on a key merged into the table:
        in flight (1/0), meeting ("" once deleted) and the last final record, each left as
        the table has it when the chunk said nothing of it."""
        part: dict[str, list[Any]] = {}
        for data in iter_entries(path, self.warnings):
            key = str(data["key"])
            slot = part.get(key)
            if slot is None:
                slot = part[key] = [None, None, None]
            status = data["status"]
            if status == _SENDING:
                target = data.get("target")
                if isinstance(target, str):
                    self.targets.add(target)
                slot[0] = 1
            elif status == _ANSWERED:
                slot[0] = 0
            else:
                try:
                    rec = Record.from_json(data)
                except (KeyError, ValueError, TypeError):
                    self.warnings.append(f"{path}: an entry for key {key!r} cannot be read; "
                                         "ignored")
                    continue
                if rec.status in FINAL_STATUSES:
                    data.pop("payload", None)  # the resume rules never read it
                    # As text: orjson's bytes keep a 4 KB buffer whatever their length.
                    slot[0], slot[2] = 0, orjson.dumps(data).decode()
                    if rec.status is Status.DELETED:
                        slot[1] = ""
                    elif rec.meeting_id and rec.status in HAS_MEETING:
                        slot[1] = rec.meeting_id
            if len(part) >= chunk_keys:
                self._merge(part)
        self._merge(part)
        assert self._db is not None
        self.keys = int(self._db.execute("SELECT count(*) FROM prior").fetchone()[0])

    def _merge(self, part: dict[str, list[Any]]) -> None:
        if not part:
            return
        assert self._db is not None
        self._db.execute("BEGIN")
        self._db.executemany(_UPSERT, ((key, *slot) for key, slot in part.items()))
        self._db.execute("COMMIT")
        part.clear()

    def get(self, key: str) -> KeyState | None:
        assert self._db is not None
        found = self._db.execute("SELECT in_flight, meeting, last FROM prior WHERE key = ?",
                                 (key,)).fetchone()
        if found is None:
            return None
        in_flight, meeting, last = found
        return KeyState(last=Record.from_json(orjson.loads(last)) if last else None,
                        in_flight=bool(in_flight), meeting_id=meeting or None)

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
