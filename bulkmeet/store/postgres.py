"""The shared store: PostgreSQL, for teams and CI runners without a disk that lasts.

psycopg 3's AsyncConnection: a lock wait on the server never blocks the event loop. Each
operation is one transaction: the key's row is locked with SELECT ... FOR UPDATE; a key never
seen is inserted with INSERT ... ON CONFLICT DO NOTHING, and when another machine inserted it
first the transaction reads it again (now locked) and decides anew. The clock is the server's
`clock_timestamp()`, read after the lock is held, so every machine paces on one clock.
One connection per store; the operations of one process take turns on it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit, urlunsplit

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

try:
    import psycopg
except ImportError:  # pragma: no cover - the optional extra is not installed
    psycopg = None  # type: ignore[assignment]


def _pg(sql: str) -> str:
    return sql.replace("?", "%s")


NOW = "SELECT extract(epoch FROM clock_timestamp())::float8"
SELECT_FOR_UPDATE = _pg(_sql.SELECT_ROW + " FOR UPDATE")
INSERT_ROW = _pg(_sql.INSERT_ROW + " RETURNING key")
UPDATE_ROW = _pg(_sql.UPDATE_ROW)
INSERT_HISTORY = _pg(_sql.INSERT_HISTORY)


def redact(url: str) -> str:
    """The URL without its password, for messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return urlunsplit((parts.scheme, f"{user}:***@{netloc}", parts.path, parts.query, ""))


def _cannot_open(url: str, exc: Exception) -> Exception:
    """One line for a server that refuses or cannot be reached; never the URL's password."""
    from ..errors import ConfigError

    text = " ".join(str(exc).split())
    password = urlsplit(url).password
    if password:
        text = text.replace(password, "***")
    return ConfigError(f"cannot open the state store {redact(url)}: {text}")


class PostgresStore(Store):
    def __init__(self, conn: Any, url: str, target: Target) -> None:
        self._conn = conn
        self.target = target
        self.location = redact(url)
        self._lock = asyncio.Lock()
        self._tid = 0

    @classmethod
    async def open(cls, url: str, target: Target, *, connect_timeout: float = 10
                   ) -> PostgresStore:
        if psycopg is None:
            from ..errors import ConfigError
            raise ConfigError("a postgresql:// state needs psycopg: "
                              "pip install 'bulkmeet[postgres]'")
        try:
            conn = await psycopg.AsyncConnection.connect(url, autocommit=True,
                                                         connect_timeout=int(connect_timeout))
        except psycopg.Error as exc:
            raise _cannot_open(url, exc) from None
        store = cls(conn, url, target)
        try:
            await store._setup()
        except psycopg.Error as exc:
            await conn.close()
            raise _cannot_open(url, exc) from None
        except BaseException:
            await conn.close()
            raise
        return store

    async def _setup(self) -> None:
        t = self.target
        async with self._conn.transaction():
            # CREATE TABLE IF NOT EXISTS races with itself across sessions: one at a time.
            await self._conn.execute("SELECT pg_advisory_xact_lock(7171455)")
            for stmt in _sql.ddl("postgres"):
                await self._conn.execute(stmt)
            await self._conn.execute(
                "INSERT INTO bulkmeet_meta (name, value) VALUES ('schema', %s) "
                "ON CONFLICT (name) DO NOTHING", (str(SCHEMA_VERSION),))
            cur = await self._conn.execute(
                "SELECT value FROM bulkmeet_meta WHERE name = 'schema'")
            (version,) = await cur.fetchone()
            if int(version) > SCHEMA_VERSION:
                raise RuntimeError(f"{self.location} was written by a newer bulkmeet "
                                   f"(schema {version})")
            await self._conn.execute(
                "INSERT INTO targets (digest, base_url, principal, label, created_at) "
                f"VALUES (%s, %s, %s, %s, ({NOW[7:]})) ON CONFLICT (digest) DO NOTHING",
                (t.id, t.base_url, t.principal, t.label))
            cur = await self._conn.execute("SELECT tid FROM targets WHERE digest = %s", (t.id,))
            (tid,) = await cur.fetchone()
            self._tid = int(tid)
            await self._conn.execute(
                "INSERT INTO pacing (tid) VALUES (%s) ON CONFLICT (tid) DO NOTHING", (self._tid,))

    async def close(self) -> None:
        await self._conn.close()

    async def _now(self) -> float:
        cur = await self._conn.execute(NOW)
        (now,) = await cur.fetchone()
        return float(now)

    async def _locked_row(self, key: str) -> Row | None:
        cur = await self._conn.execute(SELECT_FOR_UPDATE, (self._tid, key))
        t = await cur.fetchone()
        return None if t is None else _sql.row_of(t)

    async def _write(self, old: Row | None, new: Row | None, events: list[Event]) -> bool:
        """Write the row and its history; False when another session inserted the key first
        (the caller reads it again and decides anew)."""
        if new is not None:
            if old is None:
                cur = await self._conn.execute(INSERT_ROW, (self._tid, *_sql.values_of(new)))
                if await cur.fetchone() is None:
                    return False
            else:
                await self._conn.execute(UPDATE_ROW, _sql.update_values(self._tid, new))
        for e in events:
            await self._conn.execute(INSERT_HISTORY, _sql.history_values(self._tid, e))
        return True

    async def claim(self, key: str, *, owner: str, op: Any, payload_digest: str,
                    lease: float, resend_uncertain: bool = False) -> ClaimResult:
        the_op = as_op(op)
        async with self._lock, self._conn.transaction():
            while True:
                row = await self._locked_row(key)
                result, new, events = decide_claim(
                    row, key, owner=owner, op=the_op, payload_digest=payload_digest,
                    lease=lease, resend_uncertain=resend_uncertain, now=await self._now())
                if await self._write(row, new, events):
                    return result

    async def settle(self, key: str, owner: str, outcome: Outcome) -> KeyRecord:
        async with self._lock, self._conn.transaction():
            row = await self._locked_row(key)
            new, events = decide_settle(row, key, owner, outcome, await self._now())
            await self._write(row, new, events)
            return KeyRecord.of(new)

    async def renew(self, owner: str) -> int:
        async with self._lock, self._conn.transaction():
            now = await self._now()
            cur = await self._conn.execute(_pg(_sql.RENEW), (now, now, self._tid, owner, now))
            return int(cur.rowcount)

    async def record(self, facts: Sequence[Row], *, source: str = "record") -> int:
        async with self._lock, self._conn.transaction():
            now = await self._now()
            changed = 0
            for fact in facts:
                while True:
                    row = await self._locked_row(fact.key)
                    new, events = decide_merge(row, fact, now, source)
                    if await self._write(row, new, events):
                        break
                changed += new is not None and any(e.event == source for e in events)
            return changed

    async def _read(self, sql: str, args: tuple[Any, ...]) -> tuple[list[Any], float]:
        async with self._lock:
            cur = await self._conn.execute(_pg(sql), args)
            rows = await cur.fetchall()
            return rows, await self._now()

    async def get(self, key: str) -> KeyRecord | None:
        rows, now = await self._read(_sql.SELECT_ROW, (self._tid, key))
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
        rows, now = await self._read(_sql.many_sql(len(batch)), (self._tid, *batch))
        for t in rows:
            rec = _view(_sql.row_of(t), now)
            out[rec.key] = rec

    async def iter_states(self, *, with_payload: bool = False,
                          states: Iterable[State] | None = None) -> AsyncIterator[KeyRecord]:
        wanted = [s.value for s in states] if states is not None else []
        # "C" collation: the same order (and the same `>`) whatever the database's locale.
        sql = _sql.page_sql(with_payload, len(wanted)).replace(
            "key > ?", 'key > ? COLLATE "C"').replace("ORDER BY key", 'ORDER BY key COLLATE "C"')
        after = ""
        while True:
            rows, now = await self._read(sql, (self._tid, after, *wanted, BATCH))
            for t in rows:
                yield _view(_sql.row_of(t), now, with_payload)
            if len(rows) < BATCH:
                return
            after = rows[-1][0]

    async def history(self, key: str) -> list[dict[str, Any]]:
        rows, _ = await self._read(_sql.SELECT_HISTORY, (self._tid, key))
        return [_sql.history_dict(t) for t in rows]

    async def is_empty(self) -> bool:
        rows, _ = await self._read("SELECT 1 FROM keys WHERE tid = ? LIMIT 1", (self._tid,))
        return not rows

    async def count(self) -> dict[State, int]:
        from .sqlite import _counts
        counts, _ = await self._read("SELECT state, count(*) FROM keys WHERE tid = ? "
                                     "GROUP BY state", (self._tid,))
        leases, now = await self._read("SELECT lease_until FROM keys WHERE tid = ? AND "
                                       "state = 'in_flight'", (self._tid,))
        return _counts(counts, [t[0] for t in leases], now)

    async def _pacing(self, rate: float | None, burst: float, pause: float | None,
                      relative: bool) -> float:
        async with self._lock, self._conn.transaction():
            cur = await self._conn.execute(
                "SELECT tat, paused_until FROM pacing WHERE tid = %s FOR UPDATE", (self._tid,))
            tat, paused = await cur.fetchone()
            now = await self._now()
            if rate is not None:
                slot = gcra(tat, paused, now, rate, burst)
                tat, answer = slot.tat, slot.wait
            else:
                assert pause is not None
                paused = extend_pause(paused, now + pause if relative else pause)
                answer = paused
            await self._conn.execute(
                "UPDATE pacing SET tat = %s, paused_until = %s WHERE tid = %s",
                (tat, paused, self._tid))
            return float(answer)

    async def take_slot(self, rate: float, *, burst: float = 0.0) -> float:
        return await self._pacing(rate, burst, None, False)

    async def pause_for(self, seconds: float) -> float:
        return await self._pacing(None, 0.0, seconds, True)

    async def pause_until(self, deadline: float) -> float:
        return await self._pacing(None, 0.0, deadline, False)

    async def spend(self, day: str, budget: int, calls: int = 1) -> int:
        async with self._lock, self._conn.transaction():
            await self._conn.execute(
                "INSERT INTO daily (tid, day, used) VALUES (%s, %s, 0) "
                "ON CONFLICT (tid, day) DO NOTHING", (self._tid, day))
            cur = await self._conn.execute(
                "SELECT used FROM daily WHERE tid = %s AND day = %s FOR UPDATE",
                (self._tid, day))
            (used,) = await cur.fetchone()
            if used + calls > budget:
                raise BudgetSpent(day, int(used), budget)
            await self._conn.execute("UPDATE daily SET used = %s WHERE tid = %s AND day = %s",
                                     (used + calls, self._tid, day))
            return int(used + calls)

    async def spent(self, day: str) -> int:
        rows, _ = await self._read("SELECT used FROM daily WHERE tid = ? AND day = ?",
                                   (self._tid, day))
        return int(rows[0][0]) if rows else 0

    async def now(self) -> float:
        async with self._lock:
            return await self._now()

    async def organizers_checked(self, day: str, emails: Sequence[str]) -> dict[str, str | None]:
        out: dict[str, str | None] = {}
        for i in range(0, len(emails), _sql.ORGANIZER_BATCH):
            batch = emails[i:i + _sql.ORGANIZER_BATCH]
            rows, _ = await self._read(_sql.organizers_sql(len(batch)), (self._tid, day, *batch))
            out.update((str(email), problem) for email, problem in rows)
        return out

    async def record_organizers(self, day: str, checked: Mapping[str, str | None]) -> None:
        values = [(self._tid, email, day, problem) for email, problem in checked.items()]
        async with self._lock, self._conn.transaction(), self._conn.cursor() as cur:
            await cur.executemany(_pg(_sql.UPSERT_ORGANIZER), values)


def _view(row: Row, now: float, with_payload: bool = True) -> KeyRecord:
    observed, _ = observe(row, now)
    assert observed is not None
    return KeyRecord.of(observed, with_payload=with_payload)
