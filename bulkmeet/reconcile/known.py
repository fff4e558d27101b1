"""What bulkmeet made in Gong, in the shape a sync plan compares the input with: key ->
LedgerEntry (meeting, organizer, the payload Gong holds, a request whose answer is not known).

`KnownIndex` holds it in a temporary SQLite table on disk, filled from the state store a page at
a time, so planning against a store of a million keys holds a few MB, not a dict of them all
(~1.3 KB a key with its payload). `make_plan` looks each input row's key up there, marks it, and
lists the keys the input did not name afterwards (for prune). A plain dict (an old ledger file,
tests) is wrapped in `InMemoryKnown`, which behaves the same.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any, Protocol

import orjson

from ..config import Config
from ..errors import UsageError
from ..ledger import LedgerEntry
from ..scratch import scratch_table

if TYPE_CHECKING:
    from ..store import KeyRecord, Store

_FILL_BATCH = 2000


class Known(Protocol):
    """What a plan asks of the known keys."""

    def get(self, key: str) -> LedgerEntry | None:
        """The key's entry, marking it named by the input."""

    def unnamed(self) -> Iterator[tuple[str, LedgerEntry]]:
        """Every key not looked up since, in key order."""

    def close(self) -> None: ...


class InMemoryKnown:
    """A dict of entries (an old ledger file, tests) as a `Known`."""

    def __init__(self, entries: Mapping[str, LedgerEntry]) -> None:
        self._entries = entries
        self._named: set[str] = set()

    def get(self, key: str) -> LedgerEntry | None:
        entry = self._entries.get(key)
        if entry is not None:
            self._named.add(key)
        return entry

    def unnamed(self) -> Iterator[tuple[str, LedgerEntry]]:
        for key in sorted(self._entries):
            if key not in self._named:
                yield key, self._entries[key]

    def close(self) -> None:
        pass


class KnownIndex:
    """The keys of a state store, in a temporary SQLite table (deleted on close)."""

    def __init__(self) -> None:
        self._db: sqlite3.Connection | None = scratch_table(
            "CREATE TABLE known (key TEXT PRIMARY KEY, entry TEXT NOT NULL, "
            "named INTEGER NOT NULL DEFAULT 0) WITHOUT ROWID")
        self.size = 0

    @classmethod
    async def of_store(cls, store: Store) -> KnownIndex:
        index = cls()
        try:
            batch: list[tuple[str, str]] = []
            async for rec in store.iter_states(with_payload=True):
                batch.append((rec.key, _dump(entry_of(rec))))
                if len(batch) >= _FILL_BATCH:
                    index._add(batch)
            index._add(batch)
        except BaseException:
            index.close()
            raise
        return index

    @classmethod
    def of_entries(cls, entries: Mapping[str, LedgerEntry]) -> KnownIndex:
        index = cls()
        index._add([(key, _dump(entry)) for key, entry in entries.items()])
        return index

    def _add(self, batch: list[tuple[str, str]]) -> None:
        assert self._db is not None
        self._db.execute("BEGIN")
        self._db.executemany("INSERT INTO known (key, entry) VALUES (?, ?)", batch)
        self._db.execute("COMMIT")
        self.size += len(batch)
        batch.clear()

    def get(self, key: str) -> LedgerEntry | None:
        assert self._db is not None
        # A SELECT, then an UPDATE: UPDATE ... RETURNING needs SQLite 3.35, and a Python may
        # be built with an older one (Debian 11 ships 3.34).
        found = self._db.execute("SELECT entry, named FROM known WHERE key = ?",
                                 (key,)).fetchone()
        if found is None:
            return None
        if not found[1]:
            self._db.execute("UPDATE known SET named = 1 WHERE key = ?", (key,))
        return _load(found[0])

    def unnamed(self) -> Iterator[tuple[str, LedgerEntry]]:
        assert self._db is not None
        after = ""
        while True:  # a page at a time: no cursor held open across the caller's work
            rows = self._db.execute("SELECT key, entry FROM known WHERE named = 0 AND key > ? "
                                    "ORDER BY key LIMIT 1000", (after,)).fetchall()
            for key, text in rows:
                yield key, _load(text)
            if len(rows) < 1000:
                return
            after = rows[-1][0]

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None


def _dump(entry: LedgerEntry) -> str:
    return orjson.dumps([entry.meeting_id, entry.payload_hash, entry.in_flight,
                         entry.in_flight_op, entry.deleted, entry.organizer,
                         entry.payload, entry.refused_hash]).decode()


def _load(text: str) -> LedgerEntry:
    fields: list[Any] = orjson.loads(text)
    return LedgerEntry(*fields)


def entry_of(rec: KeyRecord) -> LedgerEntry:
    """One key of the store as a plan reads it: its meeting while it exists (or the one that
    was deleted), the payload Gong holds, and a request whose answer is not known."""
    from ..store import State

    deleted = rec.state is State.DELETED
    doubt = rec.state in (State.IN_FLIGHT, State.UNCERTAIN)
    exists = rec.exists
    return LedgerEntry(
        meeting_id=rec.meeting_id if exists or deleted else None,
        payload_hash=rec.payload_digest if exists else None,
        in_flight=doubt,
        in_flight_op=rec.op.value if doubt and rec.op is not None else None,
        deleted=deleted,
        organizer=rec.organizer if exists else None,
        payload=rec.payload if exists else None,
        # Where a claim checks it: a key Gong refused, or an update of a meeting; a key deleted
        # or released since is sent again whatever was refused before.
        refused_hash=rec.refused_digest if exists or rec.state is State.REFUSED else None,
    )


async def known_of_store(cfg: Config) -> KnownIndex:
    """Every key the state store of `cfg`'s Gong (base URL and the credentials in the
    environment) knows. A sandbox trial of a sync plans against the real state too.

    Raises UsageError when that target keeps no store (a server on this machine uses none
    unless --state names one), StateMissing for an empty store with state_must_exist."""
    from ..session import Target, credentials_for, open_state, state_url

    target = Target()
    url = state_url(cfg, target)
    if url is None:
        raise UsageError(
            f"plan and sync compare the input with what bulkmeet made in Gong, which the state "
            f"store keeps; {cfg.base_url} keeps none unless told (a server on this machine, or "
            "`state: off`): give --state URL (or an old --ledger FILE)")
    store = await open_state(cfg, credentials_for(target, sandbox_hint=False), url)
    try:
        return await KnownIndex.of_store(store)
    finally:
        await store.close()
