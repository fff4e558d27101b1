"""One state store per Gong company: every key's state and history, the shared pacing slot, the
daily call count. SQLite by default (a file under the state directory), PostgreSQL by URL.

    target = Target.for_access_key(cfg.base_url, access_key_id)
    async with await open_store(None, target) as store:
        result = await store.claim(key, owner=owner, op="create", payload_digest=d, lease=60)
        if isinstance(result, Claimed):
            await asyncio.sleep(await store.take_slot(3.0))
            ...  # send
            await store.settle(key, owner, Outcome.created(meeting_id))

See docs/state-store.md for the design.
"""

from __future__ import annotations

import re
from pathlib import Path

from ..errors import ConfigError
from .base import BudgetSpent, KeyRecord, Store, Target, new_owner, normalise_url, state_dir
from .transitions import (
    AlreadyDone,
    Claimed,
    ClaimLost,
    ClaimResult,
    HeldBy,
    IllegalTransition,
    NoMeeting,
    Op,
    Outcome,
    RefusedSamePayload,
    Row,
    State,
    Uncertain,
)

__all__ = [
    "AlreadyDone", "BudgetSpent", "ClaimLost", "ClaimResult", "Claimed", "HeldBy",
    "IllegalTransition", "KeyRecord", "NoMeeting", "Op", "Outcome", "RefusedSamePayload", "Row",
    "State", "Store", "Target", "Uncertain", "default_path", "new_owner", "normalise_url",
    "open_store", "state_dir",
]


def default_path(target: Target, directory: Path | None = None) -> Path:
    """One file per target under the state directory: the sandbox's state (another host) and
    another company's never share a file, and removing one target's state is removing a file."""
    host = re.sub(r"[^A-Za-z0-9.-]+", "_", target.host)
    return (directory or state_dir()) / f"state-{host}-{target.id}.sqlite3"


async def open_store(url: str | Path | None, target: Target, *,
                     directory: Path | None = None) -> Store:
    """Open (creating if need be) the store for `target`.

    `url`: None (the default file, see `default_path`), `sqlite:///path` (`sqlite:////abs`),
    a bare path, or `postgresql://...` / `postgres://...`.
    """
    if url is None:
        from .sqlite import SQLiteStore
        return await SQLiteStore.open(default_path(target, directory), target)
    text = str(url)
    if text.startswith(("postgresql://", "postgres://")):
        from .postgres import PostgresStore
        return await PostgresStore.open(text, target)
    from .sqlite import SQLiteStore
    return await SQLiteStore.open(_sqlite_path(_sqlite_text(text), target), target)


def sqlite_path(url: str | Path | None, target: Target,
                directory: Path | None = None) -> Path | None:
    """The file `open_store(url, target)` would open, or None for PostgreSQL."""
    if url is None:
        return default_path(target, directory)
    text = str(url)
    if text.startswith(("postgresql://", "postgres://")):
        return None
    return _sqlite_path(_sqlite_text(text), target)


def _sqlite_text(text: str) -> str:
    """The path of a `sqlite:///...` URL, or of a bare path; ConfigError for anything else."""
    if text.startswith("sqlite://"):
        path = text[len("sqlite://"):]
        if not path.startswith("/") or path == "/":
            raise ConfigError(f"state URL {text!r}: write sqlite:///relative/path or "
                              "sqlite:////absolute/path")
        return path[1:]
    if "://" in text:
        raise ConfigError(f"state URL {text!r}: expected sqlite:///path, a path, or "
                          "postgresql://...")
    return text


def _sqlite_path(text: str, target: Target) -> Path:
    path = Path(text).expanduser()
    if path.is_dir():  # a folder: the target's default file name inside it
        return default_path(target, path)
    return path
