"""Row -> Gong meeting payload (NewMeetingRequest), with every validation error named.

`Mapper.from_config(cfg).map(raw)` turns one `RawRow` into one `Row`: a payload ready to POST, or
every reason the row is invalid. Each error names the line, the column (or setting), the API field
and the value: `line 5, column 'Start' (startTime): '2024-13-01 10:00' is not an ISO-8601 time`.
The mapping is compiled once, in the constructor (a bad one raises ConfigError naming the key, e.g.
`mapping.startTime`); `map` never raises.

The `mapping:` config, every key optional, shown with its default::

    mapping:
      preset: null               # outlook | google | salesforce; the keys below override its keys
      # One entry per API field. A plain string is a column name (the simple rename form).
      startTime: startTime       # an ISO-8601 column, or {column: X, format: "%d.%m.%Y %H:%M"}
                                 # (format: one strptime format or a list), or a date column
                                 # plus a time column: {date: X, time: Y, date_format: "%m/%d/%Y",
                                 # time_format: ["%I:%M:%S %p", "%I:%M %p"]} (default ISO)
      endTime: endTime           # as startTime, or {duration_minutes: X}: start + X minutes
      title: title               # a column, {const: "Demo"} or {template: "{Subject} - {Account}"}
      organizerEmail: organizerEmail   # a column, a const or a template, plus an optional
                                 # directory: (CSV path | {value: email}) for names or ids
      invitees: invitees         # a column, {columns: [A, B]}, {const: [...]} or a template, plus
                                 # optional separator: ";" (default ; and ,) and directory:
      externalId: externalId     # a column, a const or a template
      timezone_column: null      # a column of IANA zone names; an empty cell -> config `timezone`
      invitee_directory: null    # CSV path (name,email; header optional) or {name: email}
      unresolved_invitees: error # error | drop (dropped with a warning)
      organizer_in_invitees: error     # error | drop (dropped silently)
      all_day_column: null       # a column whose true/yes/y/1/x/on marks an all-day event
      all_day: reject            # reject | skip | allow (local midnight to midnight)
      filter:                    # a condition or a list of them; any one that matches skips
        skip_if: {column: Canceled, equals: ["true", "yes", "1"]}   # case-insensitive, stripped

`null` unmaps a field: title and externalId are then left out, invitees is []. Relative directory
paths are read from the working directory.

Presets (bulkmeet/presets.py holds them in full)::

    # Outlook calendar CSV export (US locale: 3/15/2024, 2:30:00 PM). Expands to title: Subject,
    # startTime/endTime: {date: Start Date / End Date, time: Start Time / End Time, US formats},
    # organizerEmail: Meeting Organizer, invitees: {columns: [Required Attendees, Optional
    # Attendees], separator: ";"}, all_day_column: All day event, organizer_in_invitees: drop.
    mapping:
      preset: outlook
      invitee_directory: people.csv   # Outlook exports attendees and organizer by name

    # Google Calendar CSV (05/30/2020, 10:00 AM). Like outlook for title and times,
    # all_day_column: All Day Event; it has no organizer and no attendees.
    mapping:
      preset: google
      organizerEmail: {const: me@example.com}   # required: the export has no organizer

    # Salesforce Event export. title: Subject, startTime: ActivityDateTime (2023-01-18 15:00:00),
    # endTime: {duration_minutes: DurationInMinutes}, externalId: Id, all_day_column: IsAllDayEvent.
    mapping:
      preset: salesforce
      organizerEmail: {column: OwnerId, directory: owners.csv}   # or {const: me@example.com}
      invitees: {column: WhoId, directory: contacts.csv}         # optional; else no invitees

Decisions:
- Times are sent as `YYYY-MM-DDTHH:MM:SS±HH:MM`: Z becomes +00:00, fractions of a second are
  dropped. A time without an offset is read in the row's zone (`timezone_column`, else the config
  `timezone`; neither: invalid, saying to set `timezone`). A local time in a DST gap is invalid;
  one in the repeated hour is its first occurrence (the earlier instant). Durations are added in
  UTC, so they are elapsed time across DST changes. endTime must be after startTime.
- Cells are stripped and "" counts as missing. Invitee cells split on `;` and `,` (or `separator`)
  outside double quotes; items are `email`, `Name <email>` or `"Last, First" <email>`; a bare name
  goes through the directory. JSONL invitees may also be lists of such strings or of objects
  {email, displayName, firstName, lastName} (other keys are ignored). Duplicate invitees (case-
  insensitive) are merged silently: the first stays, a later one may add its display name.
- In a template, an empty column renders as ""; for externalId it makes the row invalid instead,
  because an id built from missing parts would collide with others.
- All-day events are invalid by default (Gong records calls, not days); `all_day: allow` sends the
  start date's local midnight to the end date's (at least one day later).
- A row skipped by `filter` or `all_day: skip` comes back with `payload=None` and `errors=()`.
- Dropped invitees are reported in `Mapper.warnings`; `drain_warnings()` hands them over.
- Keys: see `row_key`; invalid and skipped rows key as "r:" + a hash of their raw fields, or
  "line:N" when the reader could not produce fields.
"""

from __future__ import annotations

import csv
import hashlib
import re
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from pathlib import Path
from typing import Any, Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import orjson

from .config import Config
from .errors import ConfigError
from .models import RawRow, Row
from .presets import PRESET_HINTS, PRESETS

__all__ = ["API_FIELDS", "MAX_DURATION_MINUTES", "Mapper", "row_key"]

API_FIELDS: Final = ("startTime", "endTime", "title", "invitees", "externalId", "organizerEmail")
_REQUIRED: Final = ("startTime", "endTime", "organizerEmail")
_OPTIONS: Final = ("preset", "timezone_column", "invitee_directory", "unresolved_invitees",
                   "organizer_in_invitees", "all_day", "all_day_column", "filter")
MAX_DURATION_MINUTES: Final = 14 * 24 * 60  # Salesforce's own longest event
_TRUE: Final = frozenset({"true", "yes", "y", "1", "x", "on"})

# Practical, not RFC 5322: local@domain.tld, ASCII, no spaces or brackets.
_EMAIL: Final = re.compile(
    r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+"
    r"(?:[A-Za-z]{2,63}|xn--[A-Za-z0-9-]{1,59})",
    re.ASCII,
)
_ISO_START: Final = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}", re.ASCII)
_QUOTED: Final = re.compile(r'("(?:[^"\\]|\\.)*(?:"|$))')
_TEMPLATE_TOKEN: Final = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|[^{}]+|[{}]")
_INVITEE_KEYS: Final = ("displayName", "firstName", "lastName")


def _show(value: Any) -> str:
    """A value as it appears in an error message: repr, cut short."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _text(value: Any) -> str:
    """A cell as text (for templates and text fields); xlsx's 42.0 reads as 42."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


# --- where a value comes from ----------------------------------------------------------------


class _Source:
    """A column, a constant or a template. `get` gives a stripped non-empty str, another value
    (JSONL / xlsx), or None when missing."""

    __slots__ = ("label", "columns")

    def __init__(self, label: str, columns: tuple[str, ...]) -> None:
        self.label = label
        self.columns = columns

    def get(self, fields: Mapping[str, Any]) -> Any:
        raise NotImplementedError

    def missing(self, fields: Mapping[str, Any], field: str) -> str:
        return f"{self.label} ({field}): required but empty"


class _Column(_Source):
    __slots__ = ("column",)

    def __init__(self, column: str) -> None:
        super().__init__(f"column {column!r}", (column,))
        self.column = column

    def get(self, fields: Mapping[str, Any]) -> Any:
        value = fields.get(self.column)
        if isinstance(value, str):
            value = value.strip()
            return value or None
        return value

    def missing(self, fields: Mapping[str, Any], field: str) -> str:
        if self.column not in fields:
            return f"{self.label} ({field}): no such column in this row; {field} is required"
        return f"{self.label} ({field}): {_show(fields[self.column])} is empty; {field} is required"


class _Const(_Source):
    __slots__ = ("value",)

    def __init__(self, value: Any, key: str) -> None:
        super().__init__(key, ())
        self.value = value.strip() or None if isinstance(value, str) else value

    def get(self, fields: Mapping[str, Any]) -> Any:
        return self.value


class _Template(_Source):
    __slots__ = ("parts",)

    def __init__(self, text: str, key: str) -> None:
        parts: list[tuple[str, bool]] = []  # (literal text, False) or (column, True)
        for match in _TEMPLATE_TOKEN.finditer(text):
            token = match.group(0)
            if token in ("{{", "}}"):
                parts.append((token[0], False))
            elif match.group(1) is not None:
                if not match.group(1).strip():
                    raise ConfigError(f"{key}: empty placeholder {{}} in template {text!r}")
                parts.append((match.group(1), True))
            elif token in ("{", "}"):
                raise ConfigError(
                    f"{key}: unbalanced {token!r} in template {text!r} "
                    "(write {{ or }} for a literal brace)"
                )
            else:
                parts.append((token, False))
        super().__init__(f"template {text!r}", tuple(p for p, is_col in parts if is_col))
        self.parts = tuple(parts)

    def get(self, fields: Mapping[str, Any]) -> Any:
        text = "".join(_text(fields.get(p)) if is_col else p for p, is_col in self.parts).strip()
        return text or None

    def first_empty(self, fields: Mapping[str, Any]) -> str | None:
        return next((c for c in self.columns if not _text(fields.get(c))), None)


# --- directories of people ---------------------------------------------------------------------


def _norm_name(name: str) -> str:
    return " ".join(name.split()).casefold()


class _Directory:
    """Name (or id) -> email, matched exactly, then case- and space-insensitively, then with
    "Last, First" turned round."""

    __slots__ = ("key", "_exact", "_loose")

    def __init__(self, key: str, entries: Iterable[tuple[str, str, str]]) -> None:
        self.key = key
        self._exact: dict[str, str] = {}
        self._loose: dict[str, str] = {}
        for name, email, where in entries:
            if not _EMAIL.fullmatch(email):
                raise ConfigError(f"{key}: {where}: {email!r} is not a valid email address")
            loose = _norm_name(name)
            if self._loose.get(loose, email).lower() != email.lower():
                raise ConfigError(
                    f"{key}: {where}: {name!r} is listed with two emails "
                    f"({self._loose[loose]!r} and {email!r})"
                )
            self._exact[name] = email
            self._loose[loose] = email

    def get(self, name: str) -> str | None:
        email = self._exact.get(name)
        if email is None:
            loose = _norm_name(name)
            email = self._loose.get(loose)
            if email is None and loose.count(",") == 1:
                last, first = loose.split(",")
                email = self._loose.get(_norm_name(f"{first} {last}"))
        return email


def _load_directory(value: Any, key: str, base_dir: Path) -> _Directory:
    if isinstance(value, Mapping):
        entries = []
        for name, email in value.items():
            if not isinstance(name, str) or not isinstance(email, str):
                raise ConfigError(f"{key}: entries must map a name to an email, not {name!r}")
            entries.append((name.strip(), email.strip(), f"entry {name!r}"))
        return _Directory(key, entries)
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{key}: must be a CSV path or a mapping of name to email, not {value!r}")
    path = base_dir / value
    try:
        with path.open(encoding="utf-8-sig", newline="") as f:
            rows = [(i, row) for i, row in enumerate(csv.reader(f), 1)
                    if any(c.strip() for c in row)]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ConfigError(f"{key}: cannot read {path}: {exc}") from None
    entries = []
    for i, row in rows:
        if len(row) < 2:
            raise ConfigError(f"{key}: {path} line {i}: expected two columns, name and email")
        name, email = row[0].strip(), row[1].strip()
        if i == rows[0][0] and not _EMAIL.fullmatch(email):
            continue  # a header row
        entries.append((name, email, f"{path} line {i}"))
    return _Directory(key, entries)


# --- times -------------------------------------------------------------------------------------


def _formats(value: Any, key: str) -> tuple[str, ...]:
    formats = [value] if isinstance(value, str) else value
    if not isinstance(formats, list) or not formats or not all(
        isinstance(f, str) and f for f in formats
    ):
        raise ConfigError(f"{key}: must be a strptime format or a list of them, not {value!r}")
    probe = datetime(2024, 3, 15, 14, 30, 45, tzinfo=UTC)
    for f in formats:
        try:
            datetime.strptime(probe.strftime(f), f)
        except ValueError as exc:
            raise ConfigError(f"{key}: {f!r} is not a usable strptime format: {exc}") from None
    return tuple(formats)


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
_Span = tuple[datetime, datetime]  # (local, utc), both without microseconds


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


def _canonical_utc(utc: datetime) -> str:
    return utc.isoformat()[:19] + "Z"


def _iso(local: datetime, utc: datetime) -> str:
    text = local.isoformat()
    # An offset with seconds (LMT, odd inputs) is not what Gong documents: send UTC instead.
    return text if len(text) == 25 else utc.isoformat()


# --- keys --------------------------------------------------------------------------------------


def _hash(data: Any) -> str:
    try:
        blob = orjson.dumps(data, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS,
                            default=str)
    except (orjson.JSONEncodeError, TypeError):  # e.g. integers beyond 64 bits
        blob = repr(sorted((repr(k), repr(v)) for k, v in data.items())).encode()
    return hashlib.sha256(blob).hexdigest()[:32]


def _content_key(start: str, end: str, organizer: str, emails: Iterable[str],
                 title: Any) -> str:
    canon: dict[str, Any] = {"startTime": start, "endTime": end,
                             "organizerEmail": organizer.lower(),
                             "invitees": sorted(e.lower() for e in emails)}
    if title is not None:
        canon["title"] = title
    return "h:" + hashlib.sha256(orjson.dumps(canon, option=orjson.OPT_SORT_KEYS)).hexdigest()[:32]


def _utc_text(value: Any) -> Any:
    if isinstance(value, str):
        try:
            dt = datetime.fromisoformat(value)
        except ValueError:
            return value
        if dt.utcoffset() is not None:
            return _canonical_utc(dt.replace(microsecond=0).astimezone(UTC))
    return value


def row_key(payload: Mapping[str, Any]) -> str:
    """The row's identity across runs: the externalId when there is one, else "h:" and 32 hex of
    the SHA-256 of the payload's canonical form: times in UTC, emails lower-cased, invitee emails
    sorted, title. Display names, offset style, email case and invitee order do not change it."""
    external = payload.get("externalId")
    if isinstance(external, str) and external:
        return external
    emails = [i.get("email", "") if isinstance(i, Mapping) else str(i)
              for i in payload.get("invitees") or ()]
    return _content_key(_utc_text(payload.get("startTime")), _utc_text(payload.get("endTime")),
                        str(payload.get("organizerEmail", "")), emails, payload.get("title"))


def _raw_key(line: int, fields: Mapping[str, Any] | None) -> str:
    return f"line:{line}" if fields is None else "r:" + _hash(fields)


# --- the mapper --------------------------------------------------------------------------------


def _choice(spec: Mapping[str, Any], key: str, choices: tuple[str, ...]) -> str:
    value = spec.get(key, choices[0])
    if value is None:
        return choices[0]
    if value not in choices:
        raise ConfigError(f"mapping.{key}: must be {' or '.join(choices)}, not {value!r}")
    return str(value)


def _column_name(value: Any, key: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{key}: must be a column name (a non-empty string), not {value!r}")
    return value


def _check_keys(spec: Mapping[str, Any], key: str, allowed: tuple[str, ...]) -> None:
    for name in spec:
        if name not in allowed:
            raise ConfigError(f"{key}: unknown key {name!r} (known keys: {', '.join(allowed)})")


class Mapper:
    """A compiled `mapping:` config. `map` turns a RawRow into a Row and never raises.

    Warnings (dropped unresolved invitees) collect in `warnings`; `drain_warnings()` hands them
    over and clears the list.
    """

    def __init__(self, mapping: Mapping[str, Any] | None = None, *, timezone: str | None = None,
                 base_dir: Path | None = None) -> None:
        base_dir = Path.cwd() if base_dir is None else base_dir
        spec = self._merge({} if mapping is None else mapping)
        self.warnings: list[str] = []
        self._tz: tzinfo | None = self._zone(timezone, "timezone") if timezone else None
        self._zones: dict[str, tzinfo | None] = {}
        self._tz_column = spec.get("timezone_column")
        if self._tz_column is not None:
            _column_name(self._tz_column, "mapping.timezone_column")
        self._unresolved = _choice(spec, "unresolved_invitees", ("error", "drop"))
        self._org_in_invitees = _choice(spec, "organizer_in_invitees", ("error", "drop"))
        self._all_day = _choice(spec, "all_day", ("reject", "skip", "allow"))
        self._all_day_column = spec.get("all_day_column")
        if self._all_day_column is not None:
            _column_name(self._all_day_column, "mapping.all_day_column")
        self._skip_if = self._compile_filter(spec.get("filter"))
        directory = spec.get("invitee_directory")
        self._directory = (None if directory is None else
                           _load_directory(directory, "mapping.invitee_directory", base_dir))

        self._start = self._compile_time("startTime", spec["startTime"])
        end = spec["endTime"]
        self._end: _TimeSpec | _Duration
        if isinstance(end, Mapping) and "duration_minutes" in end:
            _check_keys(end, "mapping.endTime", ("duration_minutes",))
            self._end = _Duration(_Column(_column_name(end["duration_minutes"],
                                                       "mapping.endTime.duration_minutes")))
        else:
            self._end = self._compile_time("endTime", end)
        self._title = self._compile_text("title", spec.get("title"))
        self._external = self._compile_text("externalId", spec.get("externalId"))
        self._organizer, self._org_directory = self._compile_person(
            "organizerEmail", spec["organizerEmail"], base_dir)
        self._invitees: tuple[_Source, ...] = ()
        self._separators = re.compile("[;,]")
        self._inv_directory = self._directory
        if spec.get("invitees") is not None:
            self._compile_invitees(spec["invitees"], base_dir)
        if isinstance(self._organizer, _Const):
            probe: list[str] = []
            self._person(self._organizer, self._org_directory, {}, "mapping", probe)
            if probe:
                raise ConfigError(probe[0].removeprefix("mapping, "))

    @classmethod
    def from_config(cls, cfg: Config) -> Mapper:
        return cls(cfg.mapping, timezone=cfg.timezone)

    # -- compiling the config --

    @staticmethod
    def _merge(mapping: Mapping[str, Any]) -> dict[str, Any]:
        if not isinstance(mapping, Mapping):
            raise ConfigError(f"mapping: must be a mapping of API field to column, not {mapping!r}")
        spec = dict(mapping)
        preset = spec.pop("preset", None)
        if preset is None:
            base: dict[str, Any] = {f: f for f in API_FIELDS}
        elif isinstance(preset, str) and preset in PRESETS:
            base = dict(PRESETS[preset])
        else:
            raise ConfigError(f"mapping.preset: unknown preset {preset!r} "
                              f"(known: {', '.join(sorted(PRESETS))})")
        for key in spec:
            if key not in API_FIELDS and key not in _OPTIONS:
                raise ConfigError(
                    f"mapping.{key}: unknown key (API fields: {', '.join(API_FIELDS)}; "
                    f"options: {', '.join(_OPTIONS)})"
                )
        merged = {**base, **spec}
        for field in _REQUIRED:
            if merged.get(field) is None:
                hint = PRESET_HINTS.get(str(preset), {}).get(
                    field, f'give the column that holds it, e.g. mapping.{field}: "Column name"')
                raise ConfigError(f"mapping.{field}: not mapped, and it is required; {hint}")
        return merged

    def _zone(self, name: str, key: str) -> tzinfo:
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError, OSError):
            raise ConfigError(f"{key}: {name!r} is not an IANA time zone name "
                              "(for example Europe/Berlin or America/New_York)") from None

    @staticmethod
    def _compile_source(field: str, spec: Any, extra: tuple[str, ...] = ()) -> _Source:
        key = f"mapping.{field}"
        if isinstance(spec, str):
            return _Column(_column_name(spec, key))
        if not isinstance(spec, Mapping):
            raise ConfigError(f"{key}: must be a column name or a mapping, not {spec!r}")
        _check_keys(spec, key, ("column", "const", "template", *extra))
        kinds = [k for k in ("column", "const", "template") if k in spec]
        if len(kinds) != 1:
            raise ConfigError(f"{key}: give exactly one of column, const or template")
        if "column" in spec:
            return _Column(_column_name(spec["column"], f"{key}.column"))
        if "template" in spec:
            if not isinstance(spec["template"], str):
                raise ConfigError(f"{key}.template: must be a string, not {spec['template']!r}")
            return _Template(spec["template"], f"{key}.template")
        return _Const(spec["const"], key)

    def _compile_time(self, field: str, spec: Any) -> _TimeSpec:
        key = f"mapping.{field}"
        if isinstance(spec, Mapping) and ("date" in spec or "time" in spec):
            _check_keys(spec, key, ("date", "time", "date_format", "time_format"))
            if "date" not in spec or "time" not in spec:
                raise ConfigError(f"{key}: give both date and time columns")
            formats = [None if spec.get(f) is None else _formats(spec[f], f"{key}.{f}")
                       for f in ("date_format", "time_format")]
            return _DateAndTime(_Column(_column_name(spec["date"], f"{key}.date")),
                                _Column(_column_name(spec["time"], f"{key}.time")), *formats)
        src = self._compile_source(field, spec, ("format",))
        if isinstance(src, _Const) and not isinstance(src.value, str | datetime):
            raise ConfigError(f"{key}: a constant time must be a string, not {src.value!r}")
        fmt = spec.get("format") if isinstance(spec, Mapping) else None
        return _DateTime(src, None if fmt is None else _formats(fmt, f"{key}.format"))

    def _compile_text(self, field: str, spec: Any) -> _Source | None:
        if spec is None:
            return None
        src = self._compile_source(field, spec)
        if isinstance(src, _Const) and not isinstance(src.value, str | None):
            raise ConfigError(f"mapping.{field}: a constant must be a string, not {src.value!r}")
        return src

    def _compile_person(self, field: str, spec: Any,
                        base_dir: Path) -> tuple[_Source, _Directory | None]:
        src = self._compile_source(field, spec, ("directory",))
        if isinstance(spec, Mapping) and spec.get("directory") is not None:
            return src, _load_directory(spec["directory"], f"mapping.{field}.directory", base_dir)
        return src, self._directory

    def _compile_invitees(self, spec: Any, base_dir: Path) -> None:
        key = "mapping.invitees"
        if isinstance(spec, Mapping) and "columns" in spec:
            _check_keys(spec, key, ("columns", "separator", "directory"))
            columns = spec["columns"]
            if not isinstance(columns, list) or not columns:
                raise ConfigError(f"{key}.columns: must be a list of column names, not {columns!r}")
            self._invitees = tuple(_Column(_column_name(c, f"{key}.columns")) for c in columns)
        else:
            src = self._compile_source("invitees", spec, ("separator", "directory"))
            if isinstance(src, _Const) and not isinstance(src.value, str | list | None):
                raise ConfigError(
                    f"{key}: a constant must be a string or a list, not {src.value!r}")
            self._invitees = (src,)
        if isinstance(spec, Mapping):
            sep = spec.get("separator")
            if sep is not None:
                seps = [sep] if isinstance(sep, str) else sep
                if not isinstance(seps, list) or not seps or not all(
                    isinstance(s, str) and s and '"' not in s for s in seps
                ):
                    raise ConfigError(f"{key}.separator: must be a string or a list of strings "
                                      f"(without double quotes), not {sep!r}")
                self._separators = re.compile("|".join(re.escape(s) for s in seps))
            if spec.get("directory") is not None:
                self._inv_directory = _load_directory(spec["directory"], f"{key}.directory",
                                                      base_dir)
        for src in self._invitees:
            if isinstance(src, _Const):  # fail at start-up, not on every row
                probe: list[str] = []
                self._read_invitees({}, "mapping", probe, only=src)
                if probe:
                    raise ConfigError(probe[0].removeprefix("mapping, "))

    @staticmethod
    def _compile_filter(spec: Any) -> tuple[tuple[str, frozenset[str]], ...]:
        if spec is None:
            return ()
        key = "mapping.filter"
        if not isinstance(spec, Mapping):
            raise ConfigError(f"{key}: must be a mapping with skip_if, not {spec!r}")
        _check_keys(spec, key, ("skip_if",))
        conditions = spec.get("skip_if")
        if isinstance(conditions, Mapping):
            conditions = [conditions]
        if not isinstance(conditions, list) or not conditions:
            raise ConfigError(f"{key}.skip_if: must be a condition {{column: X, equals: [...]}} "
                              "or a list of them")
        compiled = []
        for cond in conditions:
            if not isinstance(cond, Mapping):
                raise ConfigError(f"{key}.skip_if: a condition must be a mapping, not {cond!r}")
            _check_keys(cond, f"{key}.skip_if", ("column", "equals"))
            column = _column_name(cond.get("column"), f"{key}.skip_if.column")
            equals = cond.get("equals")
            values = [equals] if isinstance(equals, str | int | bool) else equals
            if not isinstance(values, list) or not values:
                raise ConfigError(f"{key}.skip_if.equals: must be a value or a list of values, "
                                  f"not {equals!r}")
            compiled.append((column, frozenset(_text(v).casefold() for v in values)))
        return tuple(compiled)

    # -- what the mapping reads --

    @property
    def columns(self) -> frozenset[str]:
        """Every column the mapping reads."""
        names: set[str] = set(self.required_columns)
        for src in (self._title, self._external, *self._invitees):
            if src is not None:
                names.update(src.columns)
        names.update(c for c, _ in self._skip_if)
        names.update(c for c in (self._tz_column, self._all_day_column) if c is not None)
        return frozenset(names)

    @property
    def required_columns(self) -> frozenset[str]:
        """Columns without which no row can be valid: check them against the header once."""
        names: set[str] = set(self._organizer.columns)
        for spec in (self._start, self._end):
            if isinstance(spec, _DateAndTime):
                names.update((spec.date_src.column, spec.time_src.column))
            else:
                names.update(spec.src.columns)
        return frozenset(names)

    def missing_columns(self, header: Iterable[str]) -> list[str]:
        """The required columns that `header` lacks, sorted."""
        return sorted(self.required_columns.difference(header))

    def drain_warnings(self) -> list[str]:
        warnings, self.warnings = self.warnings, []
        return warnings

    # -- mapping a row --

    def map(self, raw: RawRow) -> Row:
        """One RawRow -> one Row with the same line: a payload, errors, or (filtered) neither."""
        fields = raw.fields
        if fields is None or raw.error is not None:
            error = raw.error or f"line {raw.line}: the record could not be read"
            return Row(raw.line, _raw_key(raw.line, fields), None, (error,), fields)
        try:
            return self._map(raw.line, fields)
        except Exception as exc:  # a row's problem is a record, never a stopped run
            return Row(raw.line, _raw_key(raw.line, fields), None,
                       (f"line {raw.line}: internal error while mapping: "
                        f"{type(exc).__name__}: {exc}",), fields)

    def _map(self, line: int, fields: dict[str, Any]) -> Row:
        where = f"line {line}"
        for column, values in self._skip_if:
            if _text(fields.get(column)).casefold() in values:
                return _skipped(line, fields, f"{where}, column {column!r}: "
                                f"{_show(fields.get(column))} matches mapping.filter.skip_if")
        errors: list[str] = []
        tz, tz_failed = self._tz, False
        if self._tz_column is not None:
            name = _text(fields.get(self._tz_column))
            if name:
                zone = self._zones.get(name) if name in self._zones else self._row_zone(name)
                if zone is None:
                    errors.append(f"{where}, column {self._tz_column!r} (time zone): {name!r} is "
                                  "not an IANA time zone name (for example Europe/Berlin)")
                    tz_failed = True
                tz = zone
        all_day = False
        if self._all_day_column is not None:
            flag = fields.get(self._all_day_column)
            if _text(flag).casefold() in _TRUE:
                if self._all_day == "skip":
                    return _skipped(line, fields, f"{where}, column {self._all_day_column!r}: "
                                    f"{_show(flag)} marks an all-day event (mapping.all_day: skip)")
                if self._all_day == "reject":
                    errors.append(f"{where}, column {self._all_day_column!r} (all day): "
                                  f"{_show(flag)} marks an all-day event, which Gong does not "
                                  "record; set mapping.all_day: skip or allow")
                all_day = True

        start, end = None, None
        if not all_day:
            start, end = self._times(fields, where, tz, tz_failed, errors)
        elif self._all_day == "allow":  # rejected ones keep just that error
            start, end = self._all_day_times(fields, where, tz, tz_failed, errors)

        title = self._read_text(self._title, fields, where, "title", errors)
        external = self._read_text(self._external, fields, where, "externalId", errors)
        organizer = self._person(self._organizer, self._org_directory, fields, where, errors)
        invitees = self._read_invitees(fields, where, errors, organizer=organizer)

        if errors or start is None or end is None or organizer is None:
            # The externalId, when readable, is the key even of an invalid row: the corrected
            # row then has the same key, and a re-run knows it.
            return Row(line, external or _raw_key(line, fields), None, tuple(errors), fields)
        payload: dict[str, Any] = {"startTime": _iso(*start), "endTime": _iso(*end)}
        if title is not None:
            payload["title"] = title
        payload["invitees"] = invitees
        if external is not None:
            payload["externalId"] = external
        payload["organizerEmail"] = organizer
        key = external or _content_key(_canonical_utc(start[1]), _canonical_utc(end[1]),
                                       organizer, (i["email"] for i in invitees), title)
        return Row(line, key, payload, (), fields)

    def _times(self, fields: dict[str, Any], where: str, tz: tzinfo | None, tz_failed: bool,
               errors: list[str]) -> tuple[_Span | None, _Span | None]:
        """Start and end, each (local, utc), or None with the reasons appended."""
        start = end = None
        got = self._start.read(fields, where, "startTime", errors)
        if got is not None:
            start = self._localize(got, where, "startTime", tz, tz_failed, errors)
        if isinstance(self._end, _Duration):
            minutes = self._end.minutes(fields, where, errors)
            end_label, end_shown = self._end.src.label, f"{minutes} minutes"
            if start is not None and minutes is not None:
                try:
                    end_utc = (start[1] + timedelta(minutes=minutes)).replace(microsecond=0)
                    end = end_utc.astimezone(start[0].tzinfo), end_utc
                except OverflowError:
                    errors.append(f"{where}, {end_label} (endTime): {end_shown} after the start "
                                  "time is out of range")
        else:
            got = self._end.read(fields, where, "endTime", errors)
            if got is None:
                return start, None
            end = self._localize(got, where, "endTime", tz, tz_failed, errors)
            end_label, end_shown = got[1], _shown(got[2])
        if start is not None and end is not None and end[1] <= start[1]:
            errors.append(f"{where}, {end_label} (endTime): {end_shown} is not after the start "
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
                local = dt.replace(microsecond=0)
                return local, local.astimezone(UTC)
            if tz is None:
                if not tz_failed:
                    column = (f" or fill column {self._tz_column!r}"
                              if self._tz_column is not None else "")
                    errors.append(f"{where}, {label} ({field}): {_shown(value)} has no UTC offset "
                                  "and no time zone is set; set `timezone:` in the config (an "
                                  f"IANA name such as Europe/Berlin){column}")
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

    def _all_day_times(self, fields: dict[str, Any], where: str, tz: tzinfo | None,
                       tz_failed: bool, errors: list[str]
                       ) -> tuple[_Span | None, _Span | None]:
        """Local midnight of the start date to local midnight of the end date (at least a day)."""
        first = self._start.read_date(fields, where, "startTime", errors)
        last = None
        if not isinstance(self._end, _Duration):
            last = self._end.read_date(fields, where, "endTime", [])  # a bad end: one day long
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

    @staticmethod
    def _read_text(src: _Source | None, fields: dict[str, Any], where: str, field: str,
                   errors: list[str]) -> str | None:
        if src is None:
            return None
        if field == "externalId" and isinstance(src, _Template):
            empty = src.first_empty(fields)
            if empty is not None:
                errors.append(f"{where}, {src.label} ({field}): column {empty!r} is "
                              f"{_show(fields.get(empty, ''))}, so the id would be incomplete")
                return None
        value = src.get(fields)
        if value is None or isinstance(value, str):
            return value
        if isinstance(value, int | float) and not isinstance(value, bool):
            return _text(value)
        errors.append(f"{where}, {src.label} ({field}): {_show(value)} is not text")
        return None

    def _person(self, src: _Source, directory: _Directory | None, fields: Mapping[str, Any],
                where: str, errors: list[str]) -> str | None:
        value = src.get(fields)
        if value is None:
            errors.append(f"{where}, {src.missing(fields, 'organizerEmail')}")
            return None
        if not isinstance(value, str):
            errors.append(f"{where}, {src.label} (organizerEmail): {_show(value)} is not an "
                          "email address")
            return None
        name, address = _split_person(value)
        if name is not None or "@" in address:
            if _EMAIL.fullmatch(address):
                return address
            errors.append(f"{where}, {src.label} (organizerEmail): {_show(value)} is not a valid "
                          "email address")
            return None
        email = directory.get(address) if directory is not None else None
        if email is not None:
            return email
        supply = (f"is not in {directory.key}" if directory is not None else
                  "is not an email address; map names to emails with mapping.invitee_directory")
        errors.append(f"{where}, {src.label} (organizerEmail): {_show(value)} {supply}, or set "
                      "mapping.organizerEmail: {const: you@example.com}")
        return None

    def _split(self, cell: str) -> list[str]:
        if '"' not in cell:
            return self._separators.split(cell)
        items = [""]
        for i, segment in enumerate(_QUOTED.split(cell)):
            if i % 2:  # a quoted display name: separators inside do not count
                items[-1] += segment
            else:
                pieces = self._separators.split(segment)
                items[-1] += pieces[0]
                items.extend(pieces[1:])
        return items

    def _read_invitees(self, fields: Mapping[str, Any], where: str, errors: list[str], *,
                       organizer: str | None = None,
                       only: _Source | None = None) -> list[dict[str, str]]:
        found: dict[str, dict[str, str]] = {}  # lower-cased email -> invitee, first one wins
        labels: dict[str, str] = {}
        for src in (only,) if only is not None else self._invitees:
            value = src.get(fields)
            if value is None:
                continue
            here = f"{where}, {src.label} (invitees)"
            if isinstance(value, str):
                for item in self._split(value):
                    item = item.strip()
                    if item:
                        self._add(found, labels, self._invitee(item, here, errors), here)
            elif isinstance(value, list):
                for item in value:
                    if isinstance(item, str):
                        if item.strip():
                            self._add(found, labels, self._invitee(item.strip(), here, errors),
                                      here)
                    elif isinstance(item, Mapping):
                        self._add(found, labels, _invitee_object(item, here, errors), here)
                    elif item is not None:
                        errors.append(f"{here}: {_show(item)} is not an email address")
            else:
                errors.append(f"{here}: {_show(value)} is not a list of email addresses")
        if organizer is not None:
            lower = organizer.lower()
            if lower in found:
                if self._org_in_invitees == "drop":
                    del found[lower]
                else:
                    errors.append(f"{labels[lower]}: {found[lower]['email']!r} is the organizer; "
                                  "Gong's invitees exclude the organizer (set "
                                  "mapping.organizer_in_invitees: drop to remove it)")
        return list(found.values())

    @staticmethod
    def _add(found: dict[str, dict[str, str]], labels: dict[str, str],
             invitee: dict[str, str] | None, here: str) -> None:
        if invitee is None:
            return
        lower = invitee["email"].lower()
        seen = found.get(lower)
        if seen is None:
            found[lower] = invitee
            labels[lower] = here
        else:
            for k, v in invitee.items():
                seen.setdefault(k, v)

    def _invitee(self, item: str, here: str, errors: list[str]) -> dict[str, str] | None:
        name, address = _split_person(item)
        if name is not None or "@" in address:
            if _EMAIL.fullmatch(address):
                return {"email": address, "displayName": name} if name else {"email": address}
            errors.append(f"{here}: {_show(item)} is not a valid email address")
            return None
        directory = self._inv_directory
        email = directory.get(address) if directory is not None else None
        if email is not None:
            return {"email": email, "displayName": address}
        if directory is None:
            errors.append(f"{here}: {_show(item)} is not an email address (names need "
                          "mapping.invitee_directory, a CSV of name,email)")
        elif self._unresolved == "drop":
            self.warnings.append(f"{here}: {_show(item)} is not in {directory.key}; dropped")
        else:
            errors.append(f"{here}: {_show(item)} is not in {directory.key} (add the person, or "
                          "set mapping.unresolved_invitees: drop)")
        return None


def _skipped(line: int, fields: dict[str, Any], reason: str) -> Row:
    """A row the config says not to send: no payload, no errors."""
    return Row(line, _raw_key(line, fields), None, (), fields, skipped_reason=reason)


def _split_person(item: str) -> tuple[str | None, str]:
    """`Name <email>` -> (Name, email); `"Doe, Jane" <email>` unquotes; anything else -> (None,
    item)."""
    if item.endswith(">"):
        i = item.rfind("<")
        if i >= 0:
            name = item[:i].strip()
            if len(name) >= 2 and name[0] == name[-1] == '"':
                name = name[1:-1].replace('\\"', '"').strip()
            return name or None, item[i + 1:-1].strip()
    return None, item


def _invitee_object(item: Mapping[Any, Any], here: str, errors: list[str]) -> dict[str, str] | None:
    """A JSONL invitee {email, displayName, firstName, lastName}; other keys are ignored."""
    email = item.get("email")
    if not isinstance(email, str) or not _EMAIL.fullmatch(email.strip()):
        errors.append(f"{here}: {_show(item)} has no valid email address")
        return None
    invitee = {"email": email.strip()}
    for key in _INVITEE_KEYS:
        value = item.get(key)
        if isinstance(value, str) and value.strip():
            invitee[key] = value.strip()
        elif value is not None and not isinstance(value, str):
            errors.append(f"{here}: {key} {_show(value)} of {email.strip()!r} is not text")
            return None
    return invitee
