"""Fixtures shared by the store tests: the same behavioural tests run on SQLite and PostgreSQL.

PostgreSQL tests read the server's URL from $BULKMEET_TEST_POSTGRES_URL (`.ci/run` starts a
server and sets it); where it is unset or nothing answers, they skip with the reason printed.
Every test uses a target of its own (a random access key id), so tests never see each other's
rows in a shared database, which also exercises the per-target keying.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from bulkmeet.store import Target

PG_ENV = "BULKMEET_TEST_POSTGRES_URL"
BASE_URL = "https://api.gong.example"
_pg_checked: list[str | None] = []  # the skip reason (None: available), once per session


def postgres_url() -> str:
    url = os.environ.get(PG_ENV)
    if not url:
        pytest.skip(f"PostgreSQL store tests skipped: ${PG_ENV} is not set "
                    "(.ci/run starts a server and sets it)")
    if not _pg_checked:
        reason: str | None = None
        try:
            import psycopg

            psycopg.connect(url, connect_timeout=3).close()
        except ImportError:
            reason = "psycopg is not installed (pip install '.[postgres]')"
        except Exception as exc:  # any failure to connect means: no server for these tests
            from bulkmeet.store.postgres import redact

            reason = f"no PostgreSQL answers at {redact(url)}: {str(exc).strip()[:200]}"
        _pg_checked.append(reason)
    if _pg_checked[0] is not None:
        pytest.skip(f"PostgreSQL store tests skipped: {_pg_checked[0]}")
    return url


def store_url_for(kind: str, tmp_path: Path) -> str:
    if kind == "postgres":
        return postgres_url()
    return f"sqlite:///{tmp_path / 'state.sqlite3'}"


def fresh_target(base_url: str = BASE_URL) -> Target:
    return Target.for_access_key(base_url, f"test-{uuid.uuid4().hex[:12]}")
