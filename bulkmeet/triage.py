"""Run's reader stage without the network: map a row, then sort it.

A row is left out by the mapping's filter (skipped), found invalid, found to repeat an earlier
row's key (duplicate: the second of two is never sent), or would be sent. `bulkmeet run`,
`validate` and the preflight estimate all sort rows here, so they always agree.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from .mapping import Mapper
from .models import RawRow, Record, Row, Status


class FirstLines:
    """The first line of every key seen, kept in a temporary SQLite table on disk.

    A dict of a million keys costs over 100 MB; this stays at SQLite's page cache (a few MB)
    whatever the input's size, for a few microseconds a row. Keys are stored as 63-bit digests:
    two different keys colliding is a 1-in-10^13 event at a million rows.
    """

    def __init__(self) -> None:
        # "" opens a private temporary database that SQLite deletes on close.
        self._db = sqlite3.connect("", isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=OFF")
        self._db.execute("PRAGMA synchronous=OFF")
        self._db.execute("CREATE TABLE seen (digest INTEGER PRIMARY KEY, line INTEGER)")

    def add(self, key: str, line: int) -> int | None:
        """Remember `key` at `line`; if it was seen before, return its first line instead."""
        digest = int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest()) >> 1
        cur = self._db.execute("INSERT OR IGNORE INTO seen VALUES (?, ?)", (digest, line))
        if cur.rowcount == 1:
            return None
        found = self._db.execute("SELECT line FROM seen WHERE digest = ?", (digest,)).fetchone()
        return int(found[0])

    def close(self) -> None:
        self._db.close()


@dataclass(frozen=True, slots=True)
class Verdict:
    """What `run` would do with one row. `record` is None when the row would be sent; otherwise
    it is the skipped, invalid or duplicate record run writes for it."""

    row: Row
    record: Record | None
    warnings: tuple[str, ...] = ()
    first_line: int | None = None  # for a duplicate: the line whose key it repeats

    @property
    def status(self) -> Status | None:
        return None if self.record is None else self.record.status


class Triage:
    """Map rows and sort them the way run's reader stage does (see pool.Pipeline._triage).

    `counts` has rows, valid, invalid, duplicate and skipped so far.
    """

    def __init__(self, mapper: Mapper | Callable[[RawRow], Row], *,
                 warnings: Callable[[], list[str]] | None = None) -> None:
        self._map: Callable[[RawRow], Row]
        self._warnings: Callable[[], list[str]] | None
        if isinstance(mapper, Mapper):
            self._map, self._warnings = mapper.map, warnings or mapper.drain_warnings
        else:
            self._map, self._warnings = mapper, warnings
        self.counts: Counter[str] = Counter()
        self._seen = FirstLines()

    def __call__(self, raw: RawRow) -> Verdict:
        row = self._map(raw)
        warnings = tuple(self._warnings()) if self._warnings is not None else ()
        self.counts["rows"] += 1
        record: Record | None = None
        first = None
        if row.skipped_reason is not None:
            record = Record(row.line, row.key, Status.SKIPPED, errors=(row.skipped_reason,))
        elif not row.valid:
            record = Record(row.line, row.key, Status.INVALID,
                            errors=row.errors or ("the row has no payload",))
        else:
            first = self._seen.add(row.key, row.line)
            if first is not None:
                record = Record(row.line, row.key, Status.DUPLICATE, errors=(
                    f"line {row.line}: same key {row.key!r} as line {first}; not sent twice",))
        self.counts["valid" if record is None else record.status.value] += 1
        return Verdict(row, record, warnings, first)

    @property
    def all_valid(self) -> bool:
        """What validate's exit code says: no invalid row and no duplicate (skipped is fine)."""
        return not self.counts["invalid"] and not self.counts["duplicate"]


