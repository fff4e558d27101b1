"""The embedded store: one SQLite file (WAL), written by any number of processes on one machine.

Every operation runs in the store's own worker thread (one connection, one thread), so a wait
on another process's lock (busy_timeout) never blocks the event loop. Every write is one
`BEGIN IMMEDIATE` transaction: the writer lock is taken before the row is read, so two
processes cannot both read "absent" and both claim. The clock is this machine's wall clock.
"""

from __future__ import annotations

import asyncio
import functools
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from . import _sql
from .base import BATCH, SCHEMA_VERSION, BudgetSpent, KeyRecord, Store, Target, as_op
from .pacing import extend_pause, gcra
from .transitions import (
    ClaimResult,
    Event,
    Outcome,
    Row,
    State,
    decide_claim,
    decide_merge,
    decide_settle,
    observe,
)

T = TypeVar("T")
BUSY_TIMEOUT_MS = 60_000


class SQLiteStore(Store):
    def __init__(self, path: Path, target: Target, *, clock: Callable[[], float] = time.time
                 ) -> None:
        self.path = path
        self.target = target
        self.location = f"sqlite:///{path}"
        self._clock = clock
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bulkmeet-store")
        self._conn: sqlite3.Connection | None = None
        self._tid = 0

    @classmethod
    async def open(cls, path: str | Path, target: Target, *,
                   clock: Callable[[], float] = time.time) -> SQLiteStore:
        store = cls(Path(path), target, clock=clock)
        try:
            await store._run(store._setup)
        except BaseException:
            await store.close()
            raise
        return store

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, functools.partial(fn, *args))

    # --- in the worker thread -------------------------------------------------------------

    def _setup(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000)
        self._conn = conn
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        # Switching a new file to WAL needs it alone for a moment, and SQLite answers "locked"
        # at once (no busy handler) when another process is opening it too: try again.
        deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
        while True:
            try:
                conn.execute("PRAGMA journal_mode = WAL")
                break
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        # FULL: a committed claim survives a power cut too; a claim costs one fsync.
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute("PRAGMA foreign_keys = ON")

        def setup(c: sqlite3.Connection) -> int:
            for stmt in _sql.ddl("sqlite"):
                c.execute(stmt)
            c.execute("INSERT INTO bulkmeet_meta (name, value) VALUES ('schema', ?) "
                      "ON CONFLICT (name) DO NOTHING", (str(SCHEMA_VERSION),))
            (version,) = c.execute(
                "SELECT value FROM bulkmeet_meta WHERE name = 'schema'").fetchone()
            if int(version) > SCHEMA_VERSION:
                raise RuntimeError(f"{self.path} was written by a newer bulkmeet "
                                   f"(schema {version})")
            t = self.target
            c.execute("INSERT INTO targets (digest, base_url, principal, label, created_at) "
                      "VALUES (?, ?, ?, ?, ?) ON CONFLICT (digest) DO NOTHING",
                      (t.id, t.base_url, t.principal, t.label, self._clock()))
            (tid,) = c.execute("SELECT tid FROM targets WHERE digest = ?", (t.id,)).fetchone()
            return int(tid)

        self._tid = self._tx(setup)

    def _tx(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        c = self._conn
        assert c is not None, "the store is closed"
        c.execute("BEGIN IMMEDIATE")
        try:
            result = fn(c)
        except BaseException:
            c.execute("ROLLBACK")
            raise
        c.execute("COMMIT")
        return result

    def _load(self, c: sqlite3.Connection, key: str) -> Row | None:
        t = c.execute(_sql.SELECT_ROW, (self._tid, key)).fetchone()
        return None if t is None else _sql.row_of(t)

    def _write(self, c: sqlite3.Connection, old: Row | None, new: Row | None,
               events: list[Event]) -> None:
        if new is not None:
            if old is None:
                c.execute(_sql.INSERT_ROW, (self._tid, *_sql.values_of(new)))
            else:
                c.execute(_sql.UPDATE_ROW, _sql.update_values(self._tid, new))
        for e in events:
            c.execute(_sql.INSERT_HISTORY, _sql.history_values(self._tid, e))

    def _claim(self, key: str, owner: str, op: str, digest: str, lease: float,
               resend: bool) -> ClaimResult:
        def tx(c: sqlite3.Connection) -> ClaimResult:
            row = self._load(c, key)
            result, new, events = decide_claim(row, key, owner=owner, op=as_op(op),
                                               payload_digest=digest, lease=lease,
                                               resend_uncertain=resend, now=self._clock())
            self._write(c, row, new, events)
            return result
        return self._tx(tx)

    def _settle(self, key: str, owner: str, outcome: Outcome) -> KeyRecord:
        def tx(c: sqlite3.Connection) -> KeyRecord:
            row = self._load(c, key)
            new, events = decide_settle(row, key, owner, outcome, self._clock())
            self._write(c, row, new, events)
            return KeyRecord.of(new)
        return self._tx(tx)

    def _record(self, facts: Sequence[Row], source: str) -> int:
        def tx(c: sqlite3.Connection) -> int:
            changed = 0
            now = self._clock()
            for fact in facts:
                row = self._load(c, fact.key)
                new, events = decide_merge(row, fact, now, source)
                self._write(c, row, new, events)
                changed += new is not None and any(e.event == source for e in events)
            return changed
        return self._tx(tx)

    def _renew(self, owner: str) -> int:
        def tx(c: sqlite3.Connection) -> int:
            now = self._clock()
            return c.execute(_sql.RENEW, (now, now, self._tid, owner, now)).rowcount
        return self._tx(tx)

    def _read(self, sql: str, args: tuple[Any, ...]) -> list[Any]:
        assert self._conn is not None, "the store is closed"
        return self._conn.execute(sql, args).fetchall()

    def _pacing(self, rate: float | None, burst: float, pause: float | None,
                relative: bool) -> float:
        def tx(c: sqlite3.Connection) -> float:
            now = self._clock()
            t = c.execute("SELECT tat, paused_until FROM pacing WHERE tid = ?",
                          (self._tid,)).fetchone()
            tat, paused = (None, None) if t is None else t
            if rate is not None:
                slot = gcra(tat, paused, now, rate, burst)
                tat, answer = slot.tat, slot.wait
            else:
                assert pause is not None
                paused = extend_pause(paused, now + pause if relative else pause)
                answer = paused
            c.execute("INSERT INTO pacing (tid, tat, paused_until) VALUES (?, ?, ?) "
                      "ON CONFLICT (tid) DO UPDATE SET tat = excluded.tat, "
                      "paused_until = excluded.paused_until", (self._tid, tat, paused))
            return answer
        return self._tx(tx)

    def _spend(self, day: str, budget: int, calls: int) -> int:
        def tx(c: sqlite3.Connection) -> int:
            t = c.execute("SELECT used FROM daily WHERE tid = ? AND day = ?",
                          (self._tid, day)).fetchone()
            used = 0 if t is None else int(t[0])
            if used + calls > budget:
                raise BudgetSpent(day, used, budget)
            c.execute("INSERT INTO daily (tid, day, used) VALUES (?, ?, ?) ON CONFLICT "
                      "(tid, day) DO UPDATE SET used = excluded.used",
                      (self._tid, day, used + calls))
            return used + calls
        return self._tx(tx)

    def _close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    # --- the async API ---------------------------------------------------------------------

    async def close(self) -> None:
        try:
            await self._run(self._close)
        finally:
            self._pool.shutdown(wait=True)

    async def claim(self, key: str, *, owner: str, op: Any, payload_digest: str,
                    lease: float, resend_uncertain: bool = False) -> ClaimResult:
        return await self._run(self._claim, key, owner, str(op), payload_digest, lease,
                               resend_uncertain)

    async def settle(self, key: str, owner: str, outcome: Outcome) -> KeyRecord:
        return await self._run(self._settle, key, owner, outcome)

    async def renew(self, owner: str) -> int:
        return await self._run(self._renew, owner)

    async def record(self, facts: Sequence[Row], *, source: str = "record") -> int:
        return await self._run(self._record, facts, source)

    async def get(self, key: str) -> KeyRecord | None:
        rows = await self._run(self._read, _sql.SELECT_ROW, (self._tid, key))
        now = self._clock()
        return None if not rows else _view(_sql.row_of(rows[0]), now)

    async def get_many(self, keys: Iterable[str]) -> dict[str, KeyRecord]:
        out: dict[str, KeyRecord] = {}
        batch: list[str] = []
        for key in keys:
            batch.append(key)
            if len(batch) == BATCH:
                await self._many(batch, out)
                batch = []
        if batch:
            await self._many(batch, out)
        return out

    async def _many(self, batch: list[str], out: dict[str, KeyRecord]) -> None:
        rows = await self._run(self._read, _sql.many_sql(len(batch)), (self._tid, *batch))
        now = self._clock()
        for t in rows:
            rec = _view(_sql.row_of(t), now)
            out[rec.key] = rec

    async def iter_states(self, *, with_payload: bool = False,
                          states: Iterable[State] | None = None) -> AsyncIterator[KeyRecord]:
        wanted = [s.value for s in states] if states is not None else []
        sql = _sql.page_sql(with_payload, len(wanted))
        after = ""
        while True:
            rows = await self._run(self._read, sql, (self._tid, after, *wanted, BATCH))
            now = self._clock()
            for t in rows:
                yield _view(_sql.row_of(t), now, with_payload)
            if len(rows) < BATCH:
                return
            after = rows[-1][0]

    async def history(self, key: str) -> list[dict[str, Any]]:
        rows = await self._run(self._read, _sql.SELECT_HISTORY, (self._tid, key))
        return [_sql.history_dict(t) for t in rows]

    async def is_empty(self) -> bool:
        rows = await self._run(self._read, "SELECT 1 FROM keys WHERE tid = ? LIMIT 1",
                               (self._tid,))
        return not rows

    async def count(self) -> dict[State, int]:
        rows = await self._run(self._read, "SELECT state, owner, lease_until FROM keys "
                               "WHERE tid = ? AND state = 'in_flight'", (self._tid,))
        counts = await self._run(self._read, "SELECT state, count(*) FROM keys WHERE tid = ? "
                                 "GROUP BY state", (self._tid,))
        return _counts(counts, [t[2] for t in rows], self._clock())

    async def take_slot(self, rate: float, *, burst: float = 0.0) -> float:
        return await self._run(self._pacing, rate, burst, None, False)

    async def pause_for(self, seconds: float) -> float:
        return await self._run(self._pacing, None, 0.0, seconds, True)

    async def pause_until(self, deadline: float) -> float:
        return await self._run(self._pacing, None, 0.0, deadline, False)

    async def spend(self, day: str, budget: int, calls: int = 1) -> int:
        return await self._run(self._spend, day, budget, calls)

    async def spent(self, day: str) -> int:
        rows = await self._run(self._read, "SELECT used FROM daily WHERE tid = ? AND day = ?",
                               (self._tid, day))
        return int(rows[0][0]) if rows else 0

    async def now(self) -> float:
        return self._clock()

    async def organizers_checked(self, day: str, emails: Sequence[str]) -> dict[str, str | None]:
        out: dict[str, str | None] = {}
        for i in range(0, len(emails), _sql.ORGANIZER_BATCH):
            batch = emails[i:i + _sql.ORGANIZER_BATCH]
            rows = await self._run(self._read, _sql.organizers_sql(len(batch)),
                                   (self._tid, day, *batch))
            out.update((str(email), problem) for email, problem in rows)
        return out

    async def record_organizers(self, day: str, checked: Mapping[str, str | None]) -> None:
        values = [(self._tid, email, day, problem) for email, problem in checked.items()]

        def tx(c: sqlite3.Connection) -> None:
            c.executemany(_sql.UPSERT_ORGANIZER, values)
        await self._run(self._tx, tx)


def _view(row: Row, now: float, with_payload: bool = True) -> KeyRecord:
    observed, _ = observe(row, now)
    assert observed is not None
    return KeyRecord.of(observed, with_payload=with_payload)


def _counts(by_state: list[Any], leases: list[float | None], now: float) -> dict[State, int]:
    """Counts by state, an expired claim counted uncertain (as every read sees it)."""
    out = {State(s): int(n) for s, n in by_state}
    expired = sum(1 for lease in leases if lease is not None and lease <= now)
    if expired:
        out[State.IN_FLIGHT] -= expired
        out[State.UNCERTAIN] = out.get(State.UNCERTAIN, 0) + expired
        if not out[State.IN_FLIGHT]:
            del out[State.IN_FLIGHT]
    return out
