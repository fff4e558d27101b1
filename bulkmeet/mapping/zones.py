"""A row's times in its time zone: the zone (the config's `timezone`, or the row's
`timezone_column`), local wall time to UTC across DST changes, and the ISO-8601 text Gong gets."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, time, timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ..errors import ConfigError
from .sources import _text
from .times import _Duration, _Read, _shown, _TimeSpec

_Span = tuple[datetime, datetime]  # (local, utc), both without microseconds


def _zone(name: str, key: str) -> tzinfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ConfigError(f"{key}: {name!r} is not an IANA time zone name "
                          "(for example Europe/Berlin or America/New_York)") from None


def _iso(local: datetime, utc: datetime) -> str:
    text = local.isoformat()
    # An offset with seconds (LMT, odd inputs) is not what Gong documents: send UTC instead.
    return text if len(text) == 25 else utc.isoformat()


class _Clock:
    """A row's start and end as (local, utc) spans: the compiled startTime and endTime, read in
    the config's zone or the one the row's `timezone_column` names."""

    __slots__ = ("start", "end", "tz", "tz_column", "_zones")

    def __init__(self, start: _TimeSpec, end: _TimeSpec | _Duration, tz: tzinfo | None,
                 tz_column: str | None) -> None:
        self.start = start
        self.end = end
        self.tz = tz
        self.tz_column = tz_column
        self._zones: dict[str, tzinfo | None] = {}

    def zone(self, fields: Mapping[str, Any], where: str,
             errors: list[str]) -> tuple[tzinfo | None, bool]:
        """The zone the row's `timezone_column` names (the config's when the cell is empty), and
        whether the cell failed (the reason appended)."""
        tz, tz_failed = self.tz, False
        if self.tz_column is not None:
            name = _text(fields.get(self.tz_column))
            if name:
                zone = self._zones.get(name) if name in self._zones else self._row_zone(name)
                if zone is None:
                    errors.append(f"{where}, column {self.tz_column!r} (time zone): {name!r} is "
                                  "not an IANA time zone name (for example Europe/Berlin)")
                    tz_failed = True
                tz = zone
        return tz, tz_failed

    def times(self, fields: dict[str, Any], where: str, tz: tzinfo | None, tz_failed: bool,
              errors: list[str]) -> tuple[_Span | None, _Span | None]:
        """Start and end, each (local, utc), or None with the reasons appended."""
        start = end = None
        got = self.start.read(fields, where, "startTime", errors)
        if got is not None:
            start = self._localize(got, where, "startTime", tz, tz_failed, errors)
        if isinstance(self.end, _Duration):
            minutes = self.end.minutes(fields, where, errors)
            unit = "minute" if minutes == 1 else "minutes"
            end_label, end_shown, end_raw = self.end.src.label, f"{minutes} {unit}", None
            if start is not None and minutes is not None:
                try:
                    end_utc = (start[1] + timedelta(minutes=minutes)).replace(microsecond=0)
                    end = end_utc.astimezone(start[0].tzinfo), end_utc
                except OverflowError:
                    errors.append(f"{where}, {end_label} (endTime): {end_shown} after the start "
                                  "time is out of range")
        else:
            got = self.end.read(fields, where, "endTime", errors)
            if got is None:
                return start, None
            end = self._localize(got, where, "endTime", tz, tz_failed, errors)
            end_label, end_shown, end_raw = got[1], None, got[2]  # shown only on an error
        if start is not None and end is not None and end[1] <= start[1]:
            shown = end_shown if end_shown is not None else _shown(end_raw)
            errors.append(f"{where}, {end_label} (endTime): {shown} is not after the start "
                          f"time ({_iso(*start)})")
            end = None
        return start, end

    def _row_zone(self, name: str) -> tzinfo | None:
        try:
            zone: tzinfo | None = ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError, OSError):
            zone = None
        if len(self._zones) > 4096:  # junk in the column must not grow the cache forever
            self._zones.clear()
        self._zones[name] = zone
        return zone

    def _localize(self, got: _Read, where: str, field: str, tz: tzinfo | None, tz_failed: bool,
                  errors: list[str]) -> _Span | None:
        """(local, utc) without microseconds, or None with the reason appended."""
        dt, label, value = got
        try:
            if dt.utcoffset() is not None:
                local = dt.replace(microsecond=0) if dt.microsecond else dt
                return local, local.astimezone(UTC)
            if tz is None:
                if not tz_failed:
                    column = (f" or fill column {self.tz_column!r}"
                              if self.tz_column is not None else "")
                    errors.append(f"{where}, {label} ({field}): {_shown(value)} has no UTC offset "
                                  "and no time zone is set; pass --timezone (an IANA name such "
                                  "as Europe/Berlin) or set `timezone:` in the config"
                                  f"{column}")
                return None
            local = dt.replace(tzinfo=tz, microsecond=0)  # fold=0: first of a repeated hour
            utc = local.astimezone(UTC)
            back = utc.astimezone(tz)  # a wall time in a DST gap does not come back
            if back.hour != local.hour or back.minute != local.minute or back.day != local.day:
                errors.append(f"{where}, {label} ({field}): {_shown(value)} does not exist in "
                              f"{tz} (the clocks skip it at the DST change); give an explicit "
                              "UTC offset")
                return None
            return local, utc
        except (OverflowError, ValueError):
            errors.append(f"{where}, {label} ({field}): {_shown(value)} is out of range")
            return None

    def all_day_times(self, fields: dict[str, Any], where: str, tz: tzinfo | None,
                      tz_failed: bool, errors: list[str]
                      ) -> tuple[_Span | None, _Span | None]:
        """Local midnight of the start date to local midnight of the end date (at least a day)."""
        first = self.start.read_date(fields, where, "startTime", errors)
        last = None
        if not isinstance(self.end, _Duration):
            last = self.end.read_date(fields, where, "endTime", [])  # a bad end: one day long
        if first is None:
            return None, None
        try:
            if last is None or last <= first:
                last = first + timedelta(days=1)
        except OverflowError:
            errors.append(f"{where} (startTime): {first} is out of range")
            return None, None
        return (
            self._localize((datetime.combine(first, time()), "all-day event", first.isoformat()),
                           where, "startTime", tz, tz_failed, errors),
            self._localize((datetime.combine(last, time()), "all-day event", last.isoformat()),
                           where, "endTime", tz, tz_failed, errors),
        )
