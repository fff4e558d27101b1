"""A fast path for the most common mapping: plain columns, ISO-8601 times with an offset and
plain email addresses, which is every row of a sheet named after the API fields.

`PlainMapper.compile` returns one only when the mapping has nothing else (no filter, all-day or
time zone column, directory, template or constant); `map` gives the Row the general path
would, or None for anything it does not handle (an error, a name, a display name, a time
without an offset, ...), and the general path then does the work and writes the messages. So
the two always agree; tests/test_mapping.py checks that on generated rows.

Why: mapping was the largest part of run's own work a row (benchmark (b) in BENCHMARKS.md),
and most of it went to generality that such a row does not use.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from ..models import Row
from .keys import _valid_row
from .people import _EMAIL, _Invitees
from .sources import _Column, _Source
from .times import _ISO_START, _DateTime, _Duration, _TimeSpec


def _column(src: _Source | None) -> str | None:
    return src.column if isinstance(src, _Column) else None


class PlainMapper:
    __slots__ = ("start", "end", "title", "external", "organizer", "invitees", "separators")

    def __init__(self, start: str, end: str, title: str | None, external: str | None,
                 organizer: str, invitees: str | None, separators: re.Pattern[str]) -> None:
        self.start, self.end, self.title, self.external = start, end, title, external
        self.organizer, self.invitees, self.separators = organizer, invitees, separators

    @classmethod
    def compile(cls, *, start: _TimeSpec, end: _TimeSpec | _Duration, title: _Source | None,
                external: _Source | None, organizer: _Source, has_directory: bool,
                invitees: _Invitees, other_rules: bool) -> PlainMapper | None:
        """The fast path for these compiled fields, or None when the mapping is not plain."""
        if other_rules or has_directory or invitees.directory is not None:
            return None
        if not (isinstance(start, _DateTime) and start.formats is None
                and isinstance(end, _DateTime) and end.formats is None):
            return None
        start_col, end_col, org_col = _column(start.src), _column(end.src), _column(organizer)
        if start_col is None or end_col is None or org_col is None:
            return None
        if (title is not None and _column(title) is None) or \
                (external is not None and _column(external) is None):
            return None
        if len(invitees.sources) > 1 or (invitees.sources and _column(invitees.sources[0])
                                          is None):
            return None
        inv_col = _column(invitees.sources[0]) if invitees.sources else None
        return cls(start_col, end_col, _column(title), _column(external), org_col, inv_col,
                   invitees.separators)

    def map(self, line: int, fields: dict[str, Any]) -> Row | None:
        """The Row of a plain valid row, or None: then the general path decides."""
        times = self._times(fields)
        if times is None:
            return None
        start, end, start_utc, end_utc = times
        title = fields.get(self.title) if self.title is not None else None
        external = fields.get(self.external) if self.external is not None else None
        if title is not None:
            if type(title) is not str:
                return None  # a number from JSONL or xlsx: the general path formats it
            title = title.strip() or None
        if external is not None:
            if type(external) is not str:
                return None
            external = external.strip() or None
        organizer = fields.get(self.organizer)
        if type(organizer) is not str:
            return None
        organizer = organizer.strip()
        if organizer.endswith(">") or "@" not in organizer or not _EMAIL.fullmatch(organizer):
            return None
        invitees = self._invitees(fields, organizer.lower())
        if invitees is None:
            return None
        return _valid_row(line, fields, start, end, start_utc, end_utc, title, invitees,
                          external, organizer)

    def _times(self, fields: dict[str, Any]) -> tuple[str, str, datetime, datetime] | None:
        start, end = fields.get(self.start), fields.get(self.end)
        if type(start) is not str or type(end) is not str:
            return None
        start, end = start.strip(), end.strip()
        if not (_ISO_START.match(start) and _ISO_START.match(end)):
            return None
        try:
            s, e = datetime.fromisoformat(start), datetime.fromisoformat(end)
            if s.utcoffset() is None or e.utcoffset() is None or s.microsecond or e.microsecond:
                return None  # a zone to apply, or microseconds to cut: the general path
            s_utc, e_utc = s.astimezone(UTC), e.astimezone(UTC)
        except (ValueError, OverflowError):  # out of range in UTC: the general path says so
            return None
        s_text, e_text = s.isoformat(), e.isoformat()
        if e_utc <= s_utc or len(s_text) != 25 or len(e_text) != 25:
            return None
        return s_text, e_text, s_utc, e_utc

    def _invitees(self, fields: dict[str, Any], organizer: str) -> list[dict[str, str]] | None:
        if self.invitees is None:
            return []
        cell = fields.get(self.invitees)
        if cell is None:
            return []
        if type(cell) is not str or '"' in cell:
            return None
        cell = cell.strip()  # as the general path does before splitting (a separator "; " at
        if not cell:  # the end of the cell must not vanish here and fail there)
            return []
        found: dict[str, dict[str, str]] = {}
        for item in self.separators.split(cell):
            item = item.strip()
            if not item:
                continue
            if item.endswith(">") or "@" not in item or not _EMAIL.fullmatch(item):
                return None
            lower = item.lower()
            if lower == organizer:
                return None  # the general path says what the mapping does with it
            if lower not in found:
                found[lower] = {"email": item}
        return list(found.values())

