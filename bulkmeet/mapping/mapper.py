"""The Mapper: a compiled `mapping:` config (spec.py) applied to one row at a time."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Final

from ..config import Config
from ..errors import ConfigError, InputError
from ..models import RawRow, Row
from ..presets import PRESETS, layout_of
from .keys import _raw_key, _valid_row
from .people import _load_directory, _person
from .plain import PlainMapper
from .sources import _Const, _show, _Source, _Template, _text
from .spec import (
    _choice,
    _column_name,
    _compile_end,
    _compile_filter,
    _compile_invitees,
    _compile_person,
    _compile_text,
    _compile_time,
    _merge,
)
from .times import _DateAndTime, _shown
from .zones import _Clock, _iso, _zone

# The words an all-day column may hold, case-insensitive; an empty cell is false. Outlook writes
# the flag in the language of its installation: True/False, German Ein/Aus, French Vrai/Faux,
# Spanish Verdadero/Falso, Dutch Waar/Onwaar; Google and Salesforce write True/False or
# true/false. Any other word makes the row invalid: "Ein" once read as false, and the row went
# out as a 24-hour meeting.
_TRUE: Final = frozenset({"true", "yes", "y", "1", "x", "on", "ein", "ja", "wahr", "vrai", "oui",
                          "verdadero", "sí", "si", "waar"})
_FALSE: Final = frozenset({"false", "no", "n", "0", "off", "aus", "nein", "falsch", "faux",
                           "non", "falso", "onwaar", "nee"})
_ALL_DAY_WORDS: Final = (f"true: {', '.join(sorted(_TRUE))}; false: {', '.join(sorted(_FALSE))}"
                         ", or empty")


class Mapper:
    """A compiled `mapping:` config. `map` turns a RawRow into a Row and never raises.

    Warnings (dropped unresolved invitees) collect in `warnings`; `drain_warnings()` hands them
    over and clears the list.
    """

    def __init__(self, mapping: Mapping[str, Any] | None = None, *, timezone: str | None = None,
                 base_dir: Path | None = None, encoding: str = "utf-8") -> None:
        base_dir = Path.cwd() if base_dir is None else base_dir
        spec = _merge({} if mapping is None else mapping)
        self.preset = mapping.get("preset") if mapping is not None else None
        self.warnings: list[str] = []
        export_zone = spec.get("export_timezone")
        if export_zone is not None and not isinstance(export_zone, str):
            raise ConfigError(f"mapping.export_timezone: must be an IANA zone name, not "
                              f"{export_zone!r}")
        # The zone the user names wins; else the one the export format defines; never this
        # computer's (zone_error stops a file whose times need one).
        tz = (_zone(timezone, "timezone") if timezone else
              _zone(export_zone, "mapping.export_timezone") if export_zone else None)
        tz_column = spec.get("timezone_column")
        if tz_column is not None:
            _column_name(tz_column, "mapping.timezone_column")
        unresolved = _choice(spec, "unresolved_invitees", ("error", "drop"))
        org_in_invitees = _choice(spec, "organizer_in_invitees", ("error", "drop"))
        self._all_day = _choice(spec, "all_day", ("reject", "skip", "allow"))
        self._all_day_column = spec.get("all_day_column")
        if self._all_day_column is not None:
            _column_name(self._all_day_column, "mapping.all_day_column")
        self._skip_if = _compile_filter(spec.get("filter"))
        directory = (None if spec.get("invitee_directory") is None else
                     _load_directory(spec["invitee_directory"], "mapping.invitee_directory",
                                     base_dir, encoding))

        self._clock = _Clock(_compile_time("startTime", spec["startTime"]),
                             _compile_end(spec["endTime"]), tz, tz_column)
        self._title = _compile_text("title", spec.get("title"))
        self._external = _compile_text("externalId", spec.get("externalId"))
        self._organizer, self._org_directory = _compile_person(
            "organizerEmail", spec["organizerEmail"], base_dir, directory, encoding)
        self._invitees = _compile_invitees(
            spec.get("invitees"), base_dir, directory, unresolved=unresolved,
            org_in_invitees=org_in_invitees, warnings=self.warnings, encoding=encoding)
        # Rows of a plain mapping take a fast path that falls back to _map (plain.py).
        self._plain = PlainMapper.compile(
            start=self._clock.start, end=self._clock.end, title=self._title,
            external=self._external, organizer=self._organizer,
            has_directory=self._org_directory is not None, invitees=self._invitees,
            other_rules=bool(self._skip_if) or self._all_day_column is not None
            or tz_column is not None)
        if isinstance(self._organizer, _Const):
            probe: list[str] = []
            _person(self._organizer, self._org_directory, {}, "mapping", probe)
            if probe:
                raise ConfigError(probe[0].removeprefix("mapping, "))

    @classmethod
    def from_config(cls, cfg: Config) -> Mapper:
        return cls(cfg.mapping, timezone=cfg.timezone, encoding=cfg.encoding)

    # -- what the mapping reads --

    @property
    def columns(self) -> frozenset[str]:
        """Every column the mapping reads."""
        names: set[str] = set(self.required_columns)
        for src in (self._title, self._external, *self._invitees.sources):
            if src is not None:
                names.update(src.columns)
        names.update(c for c, _ in self._skip_if)
        names.update(c for c in (self._clock.tz_column, self._all_day_column) if c is not None)
        return frozenset(names)

    @property
    def required_columns(self) -> frozenset[str]:
        """Columns without which no row can be valid: check them against the header once."""
        names: set[str] = set(self._organizer.columns)
        for spec in (self._clock.start, self._clock.end):
            if isinstance(spec, _DateAndTime):
                names.update((spec.date_src.column, spec.time_src.column))
            else:
                names.update(spec.src.columns)
        return frozenset(names)

    def missing_columns(self, header: Iterable[str]) -> list[str]:
        """The required columns that `header` lacks, sorted."""
        return sorted(self.required_columns.difference(header))

    def column_uses(self) -> dict[str, list[str]]:
        """Every column the mapping reads, with the mapping keys that read it: required first."""
        uses: dict[str, list[str]] = {}

        def add(key: str, columns: Iterable[str]) -> None:
            for column in columns:
                keys = uses.setdefault(column, [])
                if key not in keys:
                    keys.append(key)

        for key, spec in (("startTime", self._clock.start), ("endTime", self._clock.end)):
            if isinstance(spec, _DateAndTime):
                add(f"mapping.{key}", (spec.date_src.column, spec.time_src.column))
            else:
                add(f"mapping.{key}", spec.src.columns)
        for key, src in (("organizerEmail", self._organizer), ("title", self._title),
                         ("externalId", self._external)):
            if src is not None:
                add(f"mapping.{key}", src.columns)
        for src in self._invitees.sources:
            add("mapping.invitees", src.columns)
        add("mapping.timezone_column", filter(None, (self._clock.tz_column,)))
        add("mapping.all_day_column", filter(None, (self._all_day_column,)))
        add("mapping.filter", (c for c, _ in self._skip_if))
        return uses

    def check_header(self, columns: Sequence[str] | None, source: str) -> None:
        """Raise InputError, once, when the header lacks a column the mapping reads.

        Every column counts, an optional field's too: a title mapped to a column the file
        does not have would otherwise be sent empty or dropped on every row without a word.
        Call it when the header is known, before the first row is mapped. `columns` None
        (JSONL: each object has its own keys, and an exporter may leave out empty ones) checks
        nothing; a key an object lacks is then that row's error, or an empty optional field.
        """
        if columns is None:
            return
        present = set(columns)
        missing = [(c, keys) for c, keys in self.column_uses().items() if c not in present]
        if not missing:
            return
        name = "<stdin>" if source == "-" else source
        listed = ", ".join(f"{c!r} ({', '.join(keys)})" for c, keys in missing)
        plural = "s" if len(missing) > 1 else ""
        layout = layout_of(list(columns))
        if layout is not None and layout != self.preset:
            raise InputError(
                f"{name}: the input has no column{plural} {listed}, but its header is "
                f"the {layout} export's layout: try --preset {layout} (mapping.preset: "
                f"{layout}). Nothing was sent")
        raise InputError(
            f"{name}: the input has no column{plural} {listed}; its columns are "
            f"{', '.join(map(repr, columns))}. Nothing was sent: name the input's columns under "
            "`mapping:` in the config, or pass --preset for a known export "
            f"({', '.join(sorted(PRESETS))})")

    @property
    def zone_known(self) -> bool:
        """Whether a time without a UTC offset has a zone to be read in: one the user named
        (`timezone`, a zone column) or the export's (`export_timezone`)."""
        return self._clock.tz is not None or self._clock.tz_column is not None

    def zone_error(self, raws: Iterable[RawRow], source: str) -> str | None:
        """The file-level error when the first of `raws` whose start time reads has no UTC
        offset and no zone is known; None when it has one (or none reads). Said once for the
        file, before any row is sent, rather than on every row: it names this computer's zone
        as a suggestion, and never applies it unasked."""
        if self.zone_known:
            return None
        for raw in raws:
            if raw.fields is None:
                continue
            got = self._clock.start.read(raw.fields, "", "startTime", [])
            if got is None:
                continue
            if got[0].utcoffset() is not None:
                return None
            from ..config import local_zone

            here = local_zone()
            example = here if here is not None else "Europe/Berlin"
            suggestion = (f"this computer's zone is {here}: --timezone {here}" if here else
                          "for example --timezone Europe/Berlin")
            name = "<stdin>" if source == "-" else source
            return (f"{name}: line {raw.line}, {got[1]} (startTime): {_shown(got[2])} has no UTC "
                    "offset, and no time zone is set for this file's times. Nothing was sent: "
                    f"name the zone the times were written in ({suggestion}), or set "
                    f"`timezone: {example}` in the config, or a column of zone names with "
                    "mapping.timezone_column. bulkmeet never guesses it: an export read in the "
                    "wrong zone lands hours off")
        return None

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
            if self._plain is not None:
                row = self._plain.map(raw.line, fields)
                if row is not None:
                    return row
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
        clock = self._clock
        tz, tz_failed = clock.tz, False
        if clock.tz_column is not None:  # most configs have none: spare the call
            tz, tz_failed = clock.zone(fields, where, errors)
        all_day = False
        if self._all_day_column is not None:
            flag = fields.get(self._all_day_column)
            word = _text(flag).casefold()
            if word and word not in _TRUE and word not in _FALSE:
                errors.append(f"{where}, column {self._all_day_column!r} (all day): "
                              f"{_show(flag)} is neither a true nor a false word "
                              f"({_ALL_DAY_WORDS})")
                word = ""
            if word in _TRUE:
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
            start, end = clock.times(fields, where, tz, tz_failed, errors)
        elif self._all_day == "allow":  # rejected ones keep just that error
            start, end = clock.all_day_times(fields, where, tz, tz_failed, errors)

        title = self._read_text(self._title, fields, where, "title", errors)
        external = self._read_text(self._external, fields, where, "externalId", errors)
        organizer = _person(self._organizer, self._org_directory, fields, where, errors)
        invitees = self._invitees.read(fields, where, errors, self.warnings, organizer=organizer)

        if errors or start is None or end is None or organizer is None:
            # The externalId, when readable, is the key even of an invalid row: the corrected
            # row then has the same key, and a re-run knows it.
            return Row(line, external or _raw_key(line, fields), None, tuple(errors), fields)
        return _valid_row(line, fields, _iso(*start), _iso(*end), start[1], end[1], title,
                          invitees, external, organizer)

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


def _skipped(line: int, fields: dict[str, Any], reason: str) -> Row:
    """A row the config says not to send: no payload, no errors."""
    return Row(line, _raw_key(line, fields), None, (), fields, skipped_reason=reason)

