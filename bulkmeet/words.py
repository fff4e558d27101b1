"""Counts that agree with their nouns, for every message of the package (core and CLI)."""

from __future__ import annotations


def plural(n: int, word: str, many: str | None = None) -> str:
    """`1 row`, `2 rows`, `0 rows`; `many` for an irregular plural."""
    return f"{n} {word if n == 1 else (many or word + 's')}"


def agree(n: int, one: str, many: str) -> str:
    """The form of a verb or pronoun that agrees with a count: agree(n, "is", "are")."""
    return one if n == 1 else many
