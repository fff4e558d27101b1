"""Where a field's value comes from: a column, a constant or a template; and how a value is
shown in an error message."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date, datetime, time
from typing import Any, Final

from ..errors import ConfigError

_TEMPLATE_TOKEN: Final = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|[^{}]+|[{}]")


def _show(value: Any) -> str:
    """A value as it appears in an error message: repr, cut short. A date or time (an xlsx
    cell) shows as the sheet shows it, '2027-02-01 09:00:00', not as datetime.datetime(...)."""
    if isinstance(value, datetime | date | time):
        value = str(value)
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


class _PersonColumns(_Source):
    """One invitee from a row's columns: an email column, and the columns of the person's
    first, last and display name (a CRM export's contact). `get` gives [invitee] (its names
    where the cells have them), or None when the email cell is empty."""

    __slots__ = ("email", "names")

    def __init__(self, email: str, names: tuple[tuple[str, str], ...]) -> None:
        columns = (email, *(column for _, column in names))
        super().__init__("columns " + ", ".join(map(repr, columns)), columns)
        self.email = email
        self.names = names  # (API key, column)

    def get(self, fields: Mapping[str, Any]) -> Any:
        email = fields.get(self.email)
        if isinstance(email, str):
            email = email.strip()
        if email is None or email == "":
            return None
        person: dict[str, Any] = {"email": email}
        for key, column in self.names:
            value = fields.get(column)
            if isinstance(value, int | float) and not isinstance(value, bool):
                value = str(value)  # a spreadsheet's number in a name column: its text
            if isinstance(value, str):
                value = value.strip()
            if value is not None and value != "":
                person[key] = value
        return [person]


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
