"""Run's reader stage without the network: map a row, then sort it.

A row is left out by the mapping's filter (skipped), found invalid, found to repeat an earlier
row's key (duplicate: the second of two is never sent), or would be sent. `bulkmeet run`,
`validate` and the preflight estimate all sort rows here, so they always agree.
"""

from __future__ import annotations

import sqlite3
from array import array
from collections import Counter
from collections.abc import Callable
from enum import StrEnum

from .ledger import LedgerEntry
from .mapping import Mapper
from .models import RawRow, Record, Row, Status, value_class
from .results import KeyState
from .scratch import scratch_table


def _hash64(key: str) -> int:
    return (hash(key) & 0xFFFF_FFFF_FFFF_FFFF) or 1  # 0 marks a free slot


class KeyIndex:
    """The keys a run has queued, each with the line of its first row, in ~24 bytes a key.

    A dict of key strings costs ~150 bytes a key (135 MB at a million rows), so this keeps each
    key's 64-bit hash in an open-addressing table (linear probing, at most half full) beside the
    line. str hashes are SipHash with a per-process random key: two different keys share one
    with odds of about n²/2^65 (one in 37 million at a million rows), and the second would then
    be recorded a duplicate of the first, naming both lines.
    """

    __slots__ = ("_hashes", "_lines", "_count")

    def __init__(self, capacity: int = 1024) -> None:
        self._hashes = array("Q", [0]) * capacity  # a power of two; 0 marks a free slot
        self._lines = array("I", [0]) * capacity  # lines past 2^32 - 1 are kept as that
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def add(self, key: str, line: int) -> int | None:
        """Record that `key` was first seen at `line`, or return the line it was first seen at
        (and record nothing)."""
        h = (hash(key) & 0xFFFF_FFFF_FFFF_FFFF) or 1  # _hash64 and _slot, inlined: once a row
        hashes = self._hashes
        mask = len(hashes) - 1
        i = h & mask
        while (other := hashes[i]) != 0:
            if other == h:
                return self._lines[i]
            i = (i + 1) & mask
        hashes[i] = h
        self._lines[i] = min(line, 0xFFFF_FFFF)
        self._count += 1
        if 2 * self._count > len(self._hashes):
            self._grow()
        return None

    def get(self, key: str) -> int | None:
        """The line `key` was first seen at, or None."""
        h = _hash64(key)
        i = self._slot(h)
        return self._lines[i] if self._hashes[i] == h else None

    def _slot(self, h: int) -> int:
        """The slot holding `h`, or the free slot where it would go (linear probing)."""
        hashes = self._hashes
        mask = len(hashes) - 1
        i = h & mask
        while (other := hashes[i]) != 0 and other != h:
            i = (i + 1) & mask
        return i

    def _grow(self) -> None:
        old = zip(self._hashes, self._lines, strict=True)
        capacity = 2 * len(self._hashes)
        hashes = self._hashes = array("Q", [0]) * capacity
        lines = self._lines = array("I", [0]) * capacity
        mask = capacity - 1
        for h, line in old:
            if h:
                i = h & mask
                while hashes[i] != 0:
                    i = (i + 1) & mask
                hashes[i], lines[i] = h, line


IN_MEMORY_KEYS = 1 << 17  # keys held in memory before the rest go to disk (~3 MB)


class FirstLines:
    """Every key seen, with its first line: in memory up to `in_memory` keys (a few MB), then
    in a temporary SQLite table on disk, so memory stays flat whatever the input's size.

    Runs of up to ~130k rows (13 days of Gong's quota) never touch the disk; past that, each
    new key costs a few microseconds more, which is nothing beside a call at 3 per second.
    """

    def __init__(self, in_memory: int = IN_MEMORY_KEYS) -> None:
        self._memory = KeyIndex()
        self._limit = in_memory
        self._disk: sqlite3.Connection | None = None

    def add(self, key: str, line: int) -> int | None:
        """Remember `key` at `line`; if it was seen before, return its first line instead."""
        if self._disk is None:
            memory = self._memory
            if memory._count < self._limit:  # not len(): that is a Python call a row
                return memory.add(key, line)
            self._disk = scratch_table("CREATE TABLE seen (h INTEGER PRIMARY KEY, line INTEGER)")
        first = self._memory.get(key)
        if first is not None:
            return first
        h = hash(key)
        if self._disk.execute("INSERT OR IGNORE INTO seen VALUES (?, ?)", (h, line)).rowcount:
            return None
        found = self._disk.execute("SELECT line FROM seen WHERE h = ?", (h,)).fetchone()
        return int(found[0])

    def close(self) -> None:
        if self._disk is not None:
            self._disk.close()
            self._disk = None


@value_class
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
    """Map rows and sort them the way run's reader stage does (see planner.Planner).

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
        return self.sort(row, warnings)

    def sort(self, row: Row, warnings: tuple[str, ...] = ()) -> Verdict:
        """Sort a row already mapped (the rows `retry` and `sync` plan are)."""
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

    def close(self) -> None:
        self._seen.close()

    @property
    def all_valid(self) -> bool:
        """What validate's exit code says: no invalid row and no duplicate (skipped is fine)."""
        return not self.counts["invalid"] and not self.counts["duplicate"]




class Decision(StrEnum):
    """What a re-run does with a valid row, given what earlier runs recorded of its key."""

    SEND = "send"
    CREATED_BEFORE = "created_before"  # the results file holds its meeting: skipped, no record
    IN_LEDGER = "in_ledger"  # the ledger holds its meeting: a `skipped` record
    IN_FLIGHT = "in_flight"  # a request for it was cut off: recorded `uncertain` now
    UNCERTAIN_BEFORE = "uncertain_before"  # recorded `uncertain` already: counted, not sent
    REFUSED_BEFORE = "refused_before"  # Gong refused this very payload (4xx): counted, not sent


# Answers that sending the same payload again cannot change.
PERMANENT_HTTP = frozenset({400, 404, 409, 422})


def decide(row: Row, digest: str, ks: KeyState | None, led: LedgerEntry | None, *,
           resend_uncertain: bool) -> Decision:
    """The resume rules, in one place for `run`, `retry` and the preflight estimate.

    A key whose meeting exists (results file or ledger) is never created again; one whose
    create was cut off is not sent again without --resend-uncertain; one Gong refused is not
    sent again unchanged (a corrected row has another digest). A refusal is Gong's when the
    answer had Gong's error shape, so a requestId: a 4xx from a proxy or a wrong base URL
    (recorded without one) is sent again.
    """
    if row.op != "create":
        return Decision.SEND  # sync plans updates and deletes from the ledger itself
    if ks is not None and ks.exists:
        return Decision.CREATED_BEFORE
    if led is not None and led.exists:
        return Decision.IN_LEDGER
    dangling = (ks is not None and ks.in_flight) or (led is not None and led.create_in_doubt)
    recorded = ks is not None and ks.last is not None and ks.last.status is Status.UNCERTAIN
    if (dangling or recorded) and not resend_uncertain:
        return Decision.UNCERTAIN_BEFORE if recorded and not dangling else Decision.IN_FLIGHT
    last = ks.last if ks is not None else None
    if last is not None and last.status is Status.FAILED and last.http_status in PERMANENT_HTTP \
            and last.request_id is not None and last.payload_hash == digest:
        return Decision.REFUSED_BEFORE
    return Decision.SEND
