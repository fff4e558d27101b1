"""Reading a time from a row: one date-and-time cell (ISO-8601 or strptime formats), a date cell
plus a time cell, or a duration in minutes. What comes out is naive or aware; zones.py places it
in a time zone."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date, datetime, time
from typing import Any, Final

from .sources import _Column, _show, _Source

MAX_DURATION_MINUTES: Final = 14 * 24 * 60  # Salesforce's own longest event
_ISO_START: Final = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}", re.ASCII)


def _strptime(text: str, formats: tuple[str, ...]) -> datetime | None:
    for f in formats:
        try:
            return datetime.strptime(text, f)
        except ValueError:
            pass
    return None


def _expected(formats: tuple[str, ...]) -> str:
    return " or ".join(repr(f) for f in formats)


_Read = tuple[datetime, str, Any]  # (naive or aware time, label, raw value) for later messages


def _shown(value: Any) -> str:
    """A _Read's raw value in a message; a tuple is a date cell and a time cell."""
    return " ".join(map(_show, value)) if isinstance(value, tuple) else _show(value)


class _DateTime:
    """One column (or constant/template) holding date and time."""

    __slots__ = ("src", "formats")

    def __init__(self, src: _Source, formats: tuple[str, ...] | None) -> None:
        self.src = src
        self.formats = formats

    def read(self, fields: Mapping[str, Any], where: str, field: str,
             errors: list[str]) -> _Read | None:
        value = self.src.get(fields)
        label = self.src.label
        if value is None:
            errors.append(f"{where}, {self.src.missing(fields, field)}")
            return None
        if isinstance(value, datetime):
            return value, label, value
        dt = None
        if isinstance(value, str):
            if self.formats is not None:
                dt = _strptime(value, self.formats)
                if dt is None:
                    errors.append(f"{where}, {label} ({field}): {_show(value)} does not match "
                                  f"{_expected(self.formats)}")
                    return None
                return dt, label, value
            if _ISO_START.match(value):
                try:
                    dt = datetime.fromisoformat(value)
                except ValueError:
                    pass
        if dt is None:
            why = "has no time of day" if type(value) is date else "is not an ISO-8601 time"
            errors.append(f"{where}, {label} ({field}): {_show(value)} {why}")
            return None
        return dt, label, value

    def read_date(self, fields: Mapping[str, Any], where: str, field: str,
                  errors: list[str]) -> date | None:
        """The day alone (for all-day events): a date, a datetime, or text starting with one."""
        value = self.src.get(fields)
        if isinstance(value, date):
            return value.date() if isinstance(value, datetime) else value
        if isinstance(value, str):
            dt = _strptime(value, self.formats) if self.formats else None
            if dt is not None:
                return dt.date()
            try:
                return date.fromisoformat(value[:10])
            except ValueError:
                pass
        if value is None:
            errors.append(f"{where}, {self.src.missing(fields, field)}")
        else:
            errors.append(f"{where}, {self.src.label} ({field}): {_show(value)} is not a date")
        return None


class _DateAndTime:
    """A date column plus a time column, each with its own formats."""

    __slots__ = ("date_src", "time_src", "date_formats", "time_formats")

    def __init__(self, date_src: _Column, time_src: _Column, date_formats: tuple[str, ...] | None,
                 time_formats: tuple[str, ...] | None) -> None:
        self.date_src = date_src
        self.time_src = time_src
        self.date_formats = date_formats
        self.time_formats = time_formats

    def read_date(self, fields: Mapping[str, Any], where: str, field: str,
                  errors: list[str]) -> date | None:
        value = self.date_src.get(fields)
        if isinstance(value, date):
            return value.date() if isinstance(value, datetime) else value
        if isinstance(value, str):
            if self.date_formats is None:
                try:
                    return date.fromisoformat(value)
                except ValueError:
                    pass
            else:
                dt = _strptime(value, self.date_formats)
                if dt is not None:
                    return dt.date()
        if value is None:
            errors.append(f"{where}, {self.date_src.missing(fields, field)}")
        else:
            want = _expected(self.date_formats) if self.date_formats else "YYYY-MM-DD"
            errors.append(f"{where}, {self.date_src.label} ({field}): {_show(value)} is not "
                          f"a date like {want}")
        return None

    def read(self, fields: Mapping[str, Any], where: str, field: str,
             errors: list[str]) -> _Read | None:
        day = self.read_date(fields, where, field, errors)
        value = self.time_src.get(fields)
        clock: time | None = None
        if isinstance(value, datetime):
            clock = value.timetz()
        elif isinstance(value, time):
            clock = value
        elif isinstance(value, str):
            if self.time_formats is None:
                try:
                    clock = time.fromisoformat(value)
                except ValueError:
                    pass
            else:
                dt = _strptime(value, self.time_formats)
                clock = dt.timetz() if dt is not None else None
        if clock is None:
            if value is None:
                errors.append(f"{where}, {self.time_src.missing(fields, field)}")
            else:
                want = _expected(self.time_formats) if self.time_formats else "HH:MM[:SS]"
                errors.append(f"{where}, {self.time_src.label} ({field}): {_show(value)} is not "
                              f"a time like {want}")
            return None
        if day is None:
            return None
        label = f"columns {self.date_src.column!r} + {self.time_src.column!r}"
        return datetime.combine(day, clock), label, (self.date_src.get(fields), value)


class _Duration:
    """End time as start plus a number of minutes."""

    __slots__ = ("src",)

    def __init__(self, src: _Source) -> None:
        self.src = src

    def minutes(self, fields: Mapping[str, Any], where: str, errors: list[str]) -> float | None:
        value = self.src.get(fields)
        if value is None:
            errors.append(f"{where}, {self.src.missing(fields, 'endTime')}")
            return None
        number: float | None = None
        if isinstance(value, int | float) and not isinstance(value, bool):
            number = float(value)
        elif isinstance(value, str):
            try:
                number = float(value)
            except ValueError:
                pass
        if number is None or not 0 < number <= MAX_DURATION_MINUTES:  # NaN fails too
            errors.append(f"{where}, {self.src.label} (endTime): {_show(value)} is not a duration "
                          f"in minutes (more than 0, at most {MAX_DURATION_MINUTES})")
            return None
        return number


_TimeSpec = _DateTime | _DateAndTime
