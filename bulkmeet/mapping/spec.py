"""Compiling the `mapping:` config: the preset merged under the user's keys, then each entry
checked and turned into the object that reads it from a row. A bad entry raises ConfigError
naming its key, e.g. `mapping.startTime`."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from ..errors import ConfigError
from ..presets import PRESET_HINTS, PRESETS
from .people import _SEPARATORS, _Directory, _Invitees, _load_directory
from .sources import _Column, _Const, _PersonColumns, _Source, _Template, _text
from .times import _DateAndTime, _DateTime, _Duration, _TimeSpec

API_FIELDS: Final = ("startTime", "endTime", "title", "invitees", "externalId", "organizerEmail")
_REQUIRED: Final = ("startTime", "endTime", "organizerEmail")
_OPTIONS: Final = ("preset", "export_timezone", "timezone_column", "invitee_directory",
                   "unresolved_invitees", "organizer_in_invitees", "all_day", "all_day_column",
                   "filter")


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
            default = f'give the column that holds it, e.g. mapping.{field}: "Column name"'
            if field == "organizerEmail":
                default += ", or pass --organizer you@example.com"
            hint = PRESET_HINTS.get(str(preset), {}).get(field, default)
            raise ConfigError(f"mapping.{field}: not mapped, and it is required; {hint}")
    return merged


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


def _compile_time(field: str, spec: Any) -> _TimeSpec:
    key = f"mapping.{field}"
    if isinstance(spec, Mapping) and ("date" in spec or "time" in spec):
        _check_keys(spec, key, ("date", "time", "date_format", "time_format"))
        if "date" not in spec or "time" not in spec:
            raise ConfigError(f"{key}: give both date and time columns")
        formats = [None if spec.get(f) is None else _formats(spec[f], f"{key}.{f}")
                   for f in ("date_format", "time_format")]
        return _DateAndTime(_Column(_column_name(spec["date"], f"{key}.date")),
                            _Column(_column_name(spec["time"], f"{key}.time")), *formats)
    src = _compile_source(field, spec, ("format",))
    if isinstance(src, _Const) and not isinstance(src.value, str | datetime):
        raise ConfigError(f"{key}: a constant time must be a string, not {src.value!r}")
    fmt = spec.get("format") if isinstance(spec, Mapping) else None
    return _DateTime(src, None if fmt is None else _formats(fmt, f"{key}.format"))


def _compile_end(spec: Any) -> _TimeSpec | _Duration:
    if isinstance(spec, Mapping) and "duration_minutes" in spec:
        _check_keys(spec, "mapping.endTime", ("duration_minutes",))
        return _Duration(_Column(_column_name(spec["duration_minutes"],
                                              "mapping.endTime.duration_minutes")))
    return _compile_time("endTime", spec)


def _compile_text(field: str, spec: Any) -> _Source | None:
    if spec is None:
        return None
    src = _compile_source(field, spec)
    if isinstance(src, _Const) and not isinstance(src.value, str | None):
        raise ConfigError(f"mapping.{field}: a constant must be a string, not {src.value!r}")
    return src


def _compile_person(field: str, spec: Any, base_dir: Path, directory: _Directory | None,
                    encoding: str = "utf-8") -> tuple[_Source, _Directory | None]:
    """The source, and its own directory if it has one, else `directory` (invitee_directory)."""
    src = _compile_source(field, spec, ("directory",))
    if isinstance(spec, Mapping) and spec.get("directory") is not None:
        return src, _load_directory(spec["directory"], f"mapping.{field}.directory", base_dir,
                                    encoding)
    return src, directory


def _compile_invitees(spec: Any, base_dir: Path, directory: _Directory | None, *,
                      unresolved: str, org_in_invitees: str, warnings: list[str],
                      encoding: str = "utf-8") -> _Invitees:
    """`mapping.invitees` (None: no invitees); `directory` is invitee_directory. Constants are
    read here, once: a bad one fails at start-up, and its `warnings` go to the mapper's."""
    if spec is None:
        return _Invitees((), _SEPARATORS, directory, unresolved, org_in_invitees)
    key = "mapping.invitees"
    separators = _SEPARATORS
    sources: tuple[_Source, ...]
    if isinstance(spec, Mapping) and ("columns" in spec or "people" in spec):
        _check_keys(spec, key, ("columns", "people", "separator", "directory"))
        columns = spec.get("columns", [])
        if not isinstance(columns, list) or ("columns" in spec and not columns):
            raise ConfigError(f"{key}.columns: must be a list of column names, not {columns!r}")
        sources = tuple(_Column(_column_name(c, f"{key}.columns")) for c in columns)
        if "people" in spec:
            sources += _compile_people(spec["people"], f"{key}.people")
    else:
        src = _compile_source("invitees", spec, ("separator", "directory"))
        if isinstance(src, _Const) and not isinstance(src.value, str | list | None):
            raise ConfigError(
                f"{key}: a constant must be a string or a list, not {src.value!r}")
        sources = (src,)
    if isinstance(spec, Mapping):
        sep = spec.get("separator")
        if sep is not None:
            seps = [sep] if isinstance(sep, str) else sep
            if not isinstance(seps, list) or not seps or not all(
                isinstance(s, str) and s and '"' not in s for s in seps
            ):
                raise ConfigError(f"{key}.separator: must be a string or a list of strings "
                                  f"(without double quotes), not {sep!r}")
            separators = re.compile("|".join(re.escape(s) for s in seps))
        if spec.get("directory") is not None:
            directory = _load_directory(spec["directory"], f"{key}.directory", base_dir,
                                        encoding)
    invitees = _Invitees(sources, separators, directory, unresolved, org_in_invitees)
    for src in sources:
        if isinstance(src, _Const):  # fail at start-up, not on every row
            probe: list[str] = []
            invitees.read({}, "mapping", probe, warnings, only=src)
            if probe:
                raise ConfigError(probe[0].removeprefix("mapping, "))
    return invitees


_PERSON_KEYS: Final = ("email", "firstName", "lastName", "displayName")


def _compile_people(spec: Any, key: str) -> tuple[_PersonColumns, ...]:
    """`invitees.people`: a list of {email: COLUMN, firstName: COLUMN, lastName: COLUMN,
    displayName: COLUMN}, one invitee each (email required, the names optional)."""
    if not isinstance(spec, list) or not spec:
        raise ConfigError(f"{key}: must be a list of {{email: column, firstName: column, "
                          f"lastName: column, displayName: column}}, not {spec!r}")
    people = []
    for i, person in enumerate(spec):
        here = f"{key}[{i}]"
        if not isinstance(person, Mapping) or "email" not in person:
            raise ConfigError(f"{here}: must name at least the email column, as "
                              f"{{email: Contact Email}}, not {person!r}")
        _check_keys(person, here, _PERSON_KEYS)
        names = tuple((k, _column_name(person[k], f"{here}.{k}")) for k in _PERSON_KEYS[1:]
                      if person.get(k) is not None)
        people.append(_PersonColumns(_column_name(person["email"], f"{here}.email"), names))
    return tuple(people)


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
