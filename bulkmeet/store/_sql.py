"""SQL shared by both stores (written with `?` placeholders; PostgreSQL gets `%s`)."""

from __future__ import annotations

from typing import Any

from .transitions import Event, Op, Row, State

KEY_COLUMNS = ("key", "state", "meeting_id", "organizer", "payload", "payload_digest", "op",
               "claim_digest", "claim_from", "owner", "lease_until", "lease_s", "refused_digest",
               "http_status", "errors", "updated_at")
LIGHT_COLUMNS = tuple("NULL" if c == "payload" else c for c in KEY_COLUMNS)
HISTORY_COLUMNS = ("key", "at", "event", "from_state", "to_state", "owner", "op", "meeting_id",
                   "payload_digest", "http_status", "detail")


def ddl(dialect: str) -> list[str]:
    """Every table is keyed by the target's number: a shared database (a team's PostgreSQL, or
    one SQLite file named with --state) never lets one target read another's rows."""
    pg = dialect == "postgres"
    real = "double precision" if pg else "REAL"
    serial = "bigint generated always as identity primary key" if pg else \
        "INTEGER PRIMARY KEY AUTOINCREMENT"
    tid_serial = "integer generated always as identity primary key" if pg else \
        "INTEGER PRIMARY KEY AUTOINCREMENT"
    return [
        "CREATE TABLE IF NOT EXISTS bulkmeet_meta (name text PRIMARY KEY, value text NOT NULL)",
        f"""CREATE TABLE IF NOT EXISTS targets (
            tid {tid_serial},
            digest text NOT NULL UNIQUE,
            base_url text NOT NULL,
            principal text NOT NULL,
            label text NOT NULL,
            created_at {real} NOT NULL)""",
        f"""CREATE TABLE IF NOT EXISTS keys (
            tid integer NOT NULL REFERENCES targets(tid),
            key text NOT NULL,
            state text NOT NULL,
            meeting_id text,
            organizer text,
            payload text,
            payload_digest text,
            op text,
            claim_digest text,
            claim_from text,
            owner text,
            lease_until {real},
            lease_s {real},
            refused_digest text,
            http_status integer,
            errors text,
            updated_at {real} NOT NULL,
            PRIMARY KEY (tid, key))""",
        "CREATE INDEX IF NOT EXISTS keys_in_flight ON keys (tid, owner) "
        "WHERE state = 'in_flight'",
        f"""CREATE TABLE IF NOT EXISTS history (
            id {serial},
            tid integer NOT NULL REFERENCES targets(tid),
            key text NOT NULL,
            at {real} NOT NULL,
            event text NOT NULL,
            from_state text,
            to_state text NOT NULL,
            owner text,
            op text,
            meeting_id text,
            payload_digest text,
            http_status integer,
            detail text)""",
        "CREATE INDEX IF NOT EXISTS history_key ON history (tid, key)",
        f"""CREATE TABLE IF NOT EXISTS pacing (
            tid integer PRIMARY KEY REFERENCES targets(tid),
            tat {real},
            paused_until {real})""",
        """CREATE TABLE IF NOT EXISTS daily (
            tid integer NOT NULL REFERENCES targets(tid),
            day text NOT NULL,
            used integer NOT NULL,
            PRIMARY KEY (tid, day))""",
        # What Gong's integration/status said of an organizer, on the day it was asked:
        # problem NULL is a Gong user whose integration is valid.
        """CREATE TABLE IF NOT EXISTS organizers (
            tid integer NOT NULL REFERENCES targets(tid),
            email text NOT NULL,
            day text NOT NULL,
            problem text,
            PRIMARY KEY (tid, email))""",
    ]


SELECT_ROW = f"SELECT {', '.join(KEY_COLUMNS)} FROM keys WHERE tid = ? AND key = ?"
INSERT_ROW = (f"INSERT INTO keys (tid, {', '.join(KEY_COLUMNS)}) "
              f"VALUES ({', '.join('?' * (len(KEY_COLUMNS) + 1))}) "
              "ON CONFLICT (tid, key) DO NOTHING")
UPDATE_ROW = (f"UPDATE keys SET {', '.join(f'{c} = ?' for c in KEY_COLUMNS[1:])} "
              "WHERE tid = ? AND key = ?")
INSERT_HISTORY = (f"INSERT INTO history (tid, {', '.join(HISTORY_COLUMNS)}) "
                  f"VALUES ({', '.join('?' * (len(HISTORY_COLUMNS) + 1))})")
SELECT_HISTORY = (f"SELECT {', '.join(HISTORY_COLUMNS)} FROM history WHERE tid = ? AND key = ? "
                  "ORDER BY id")
RENEW = ("UPDATE keys SET lease_until = ? + lease_s, updated_at = ? WHERE tid = ? AND owner = ? "
         "AND state = 'in_flight' AND lease_until > ?")


UPSERT_ORGANIZER = ("INSERT INTO organizers (tid, email, day, problem) VALUES (?, ?, ?, ?) "
                    "ON CONFLICT (tid, email) DO UPDATE SET day = excluded.day, "
                    "problem = excluded.problem")
ORGANIZER_BATCH = 500


def organizers_sql(n: int) -> str:
    return ("SELECT email, problem FROM organizers WHERE tid = ? AND day = ? AND email IN "
            f"({', '.join('?' * n)})")


def page_sql(with_payload: bool, states: int) -> str:
    cols = KEY_COLUMNS if with_payload else LIGHT_COLUMNS
    where = "tid = ? AND key > ?"
    if states:
        where += f" AND state IN ({', '.join('?' * states)})"
    return f"SELECT {', '.join(cols)} FROM keys WHERE {where} ORDER BY key LIMIT ?"


def many_sql(n: int) -> str:
    return f"SELECT {', '.join(KEY_COLUMNS)} FROM keys WHERE tid = ? AND key IN " \
           f"({', '.join('?' * n)})"


def row_of(t: tuple[Any, ...] | Any) -> Row:
    (key, state, meeting_id, organizer, payload, payload_digest, op, claim_digest, claim_from,
     owner, lease_until, lease_s, refused_digest, http_status, errors, updated_at) = t
    return Row(key, State(state), meeting_id, organizer, payload, payload_digest,
               Op(op) if op else None, claim_digest, State(claim_from) if claim_from else None,
               owner, lease_until, lease_s, refused_digest, http_status, errors, updated_at)


def values_of(row: Row) -> tuple[Any, ...]:
    return (row.key, row.state.value, row.meeting_id, row.organizer, row.payload,
            row.payload_digest, row.op.value if row.op else None, row.claim_digest,
            row.claim_from.value if row.claim_from else None, row.owner, row.lease_until,
            row.lease_s, row.refused_digest, row.http_status, row.errors, row.updated_at)


def update_values(tid: int, row: Row) -> tuple[Any, ...]:
    return (*values_of(row)[1:], tid, row.key)


def history_values(tid: int, e: Event) -> tuple[Any, ...]:
    return (tid, e.key, e.at, e.event, e.from_state.value if e.from_state else None,
            e.to_state.value, e.owner, e.op.value if e.op else None, e.meeting_id,
            e.payload_digest, e.http_status, e.detail)


def history_dict(t: tuple[Any, ...] | Any) -> dict[str, Any]:
    return dict(zip(HISTORY_COLUMNS, t, strict=True))
