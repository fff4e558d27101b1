"""People in a row: email addresses, `Name <email>` items, the organizer, invitee lists, and
the directory that turns a name (or an id) into an email."""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Final

from ..errors import BulkmeetError, ConfigError
from ..reader.encoding import decide_encoding
from .sources import _show, _Source

# Practical, not RFC 5322: local@domain.tld, ASCII, no spaces or brackets.
_EMAIL: Final = re.compile(
    r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+"
    r"(?:[A-Za-z]{2,63}|xn--[A-Za-z0-9-]{1,59})",
    re.ASCII,
)
_QUOTED: Final = re.compile(r'("(?:[^"\\]|\\.)*(?:"|$))')
_INVITEE_KEYS: Final = ("displayName", "firstName", "lastName")
_SEPARATORS: Final = re.compile("[;,]")


def _norm_name(name: str) -> str:
    return " ".join(name.split()).casefold()


class _Directory:
    """Name (or id) -> email, matched exactly, then case- and space-insensitively, then with
    "Last, First" turned round. `names` holds, by lower-cased email, the firstName, lastName
    and displayName a CSV's extra columns give."""

    __slots__ = ("key", "_exact", "_loose", "names")

    def __init__(self, key: str, entries: Iterable[tuple[str, str, str]],
                 names: Mapping[str, dict[str, str]] | None = None) -> None:
        self.key = key
        self._exact: dict[str, str] = {}
        self._loose: dict[str, str] = {}
        self.names: Mapping[str, dict[str, str]] = names or {}
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


def _load_directory(value: Any, key: str, base_dir: Path, encoding: str = "utf-8") -> _Directory:
    """A directory from a mapping or a CSV of name,email (extra columns ignored); the CSV's
    encoding is decided as the input's is (reader.encoding): the configured one, UTF-8 when
    the file starts with a BOM, and a file that does not decode is one error saying what to
    set."""
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
        codec = decide_encoding(str(path), encoding).codec
    except BulkmeetError as exc:
        raise ConfigError(f"{key}: {exc}") from None
    try:
        with path.open(encoding=codec, newline="") as f:
            rows = [(i, row) for i, row in enumerate(csv.reader(f), 1)
                    if any(c.strip() for c in row)]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ConfigError(f"{key}: cannot read {path}: {exc}") from None
    entries = []
    extra: list[tuple[str, int]] = []  # (API key, cell index) of the header's name columns
    names: dict[str, dict[str, str]] = {}
    for i, row in rows:
        if len(row) < 2:
            raise ConfigError(f"{key}: {path} line {i}: expected two columns, name and email")
        name, email = row[0].strip(), row[1].strip()
        if i == rows[0][0] and not _EMAIL.fullmatch(email):
            extra = _name_columns(row)  # a header row
            continue
        entries.append((name, email, f"{path} line {i}"))
        person = {k: row[j].strip() for k, j in extra if j < len(row) and row[j].strip()}
        if person:
            names[email.lower()] = person
    return _Directory(key, entries, names)


_NAME_HEADERS: Final = {"firstname": "firstName", "givenname": "firstName",
                        "lastname": "lastName", "surname": "lastName", "familyname": "lastName",
                        "displayname": "displayName", "fullname": "displayName"}


def _name_columns(header: list[str]) -> list[tuple[str, int]]:
    """The header's columns after name and email that hold a person's names (firstName,
    first_name, First Name, given name; lastName, surname; displayName, full name)."""
    found: list[tuple[str, int]] = []
    for j, cell in enumerate(header[2:], start=2):
        api = _NAME_HEADERS.get(re.sub(r"[\s_-]+", "", cell).casefold())
        if api is not None and all(k != api for k, _ in found):
            found.append((api, j))
    return found


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


def _person(src: _Source, directory: _Directory | None, fields: Mapping[str, Any],
            where: str, errors: list[str]) -> str | None:
    """The organizer: an email, `Name <email>`, or a name (or id) in `directory`; None with the
    reason appended."""
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
                  "mapping.organizerEmail: {const: you@example.com} or pass "
                  "--organizer you@example.com")
    return None


class _Invitees:
    """The compiled `invitees` entry: its sources, the separators between items in a cell, the
    directory for bare names, and what to do with unresolved names and with the organizer."""

    __slots__ = ("sources", "separators", "directory", "unresolved", "org_in_invitees")

    def __init__(self, sources: tuple[_Source, ...], separators: re.Pattern[str],
                 directory: _Directory | None, unresolved: str, org_in_invitees: str) -> None:
        self.sources = sources
        self.separators = separators
        self.directory = directory
        self.unresolved = unresolved
        self.org_in_invitees = org_in_invitees

    def _split(self, cell: str) -> list[str]:
        if '"' not in cell:
            return self.separators.split(cell)
        items = [""]
        for i, segment in enumerate(_QUOTED.split(cell)):
            if i % 2:  # a quoted display name: separators inside do not count
                items[-1] += segment
            else:
                pieces = self.separators.split(segment)
                items[-1] += pieces[0]
                items.extend(pieces[1:])
        return items

    def read(self, fields: Mapping[str, Any], where: str, errors: list[str],
             warnings: list[str], *, organizer: str | None = None,
             only: _Source | None = None) -> list[dict[str, str]]:
        found: dict[str, dict[str, str]] = {}  # lower-cased email -> invitee, first one wins
        labels: dict[str, str] = {}
        for src in (only,) if only is not None else self.sources:
            value = src.get(fields)
            if value is None:
                continue
            here = f"{where}, {src.label} (invitees)"
            if isinstance(value, str):
                for item in self._split(value):
                    item = item.strip()
                    if item:
                        self._add(found, labels, self._invitee(item, here, errors, warnings), here)
            elif isinstance(value, list):
                for item in value:
                    if isinstance(item, str):
                        if item.strip():
                            invitee = self._invitee(item.strip(), here, errors, warnings)
                            self._add(found, labels, invitee, here)
                    elif isinstance(item, Mapping):
                        self._add(found, labels, _invitee_object(item, here, errors), here)
                    elif item is not None:
                        errors.append(f"{here}: {_show(item)} is not an email address")
            else:
                errors.append(f"{here}: {_show(value)} is not a list of email addresses")
        if organizer is not None:
            lower = organizer.lower()
            if lower in found:
                if self.org_in_invitees == "drop":
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

    def _invitee(self, item: str, here: str, errors: list[str],
                 warnings: list[str]) -> dict[str, str] | None:
        name, address = _split_person(item)
        if name is not None or "@" in address:
            if _EMAIL.fullmatch(address):
                return {"email": address, "displayName": name} if name else {"email": address}
            errors.append(f"{here}: {_show(item)} is not a valid email address")
            return None
        directory = self.directory
        email = directory.get(address) if directory is not None else None
        if email is not None:
            assert directory is not None
            invitee = {"email": email, **directory.names.get(email.lower(), {})}
            # A record id (0035e00000Xy1abAAA) is not a name to show.
            if "displayName" not in invitee and not any(c.isdigit() for c in address):
                invitee["displayName"] = address
            return invitee
        if directory is None:
            errors.append(f"{here}: {_show(item)} is not an email address (names need "
                          "mapping.invitee_directory, a CSV of name,email)")
        elif self.unresolved == "drop":
            warnings.append(f"{here}: {_show(item)} is not in {directory.key}; dropped")
        else:
            errors.append(f"{here}: {_show(item)} is not in {directory.key} (add the person, or "
                          "set mapping.unresolved_invitees: drop)")
        return None
