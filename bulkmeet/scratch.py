"""Scratch tables on disk: what would not fit in memory flat (a million keys), in a temporary
SQLite database that the process alone uses and that is deleted when closed."""

from __future__ import annotations

import sqlite3


def scratch_table(ddl: str) -> sqlite3.Connection:
    """A temporary database on disk ("" as its name: removed on close) holding the table `ddl`
    creates. No journal and no syncing: nothing in it must survive the process. Usable from
    any one thread at a time (a pipe's rows are planned in the reader thread, and the run closes
    it from the loop's)."""
    db = sqlite3.connect("", isolation_level=None, check_same_thread=False)
    db.execute("PRAGMA journal_mode=OFF")
    db.execute("PRAGMA synchronous=OFF")
    db.execute(ddl)
    return db
