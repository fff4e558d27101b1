"""Row keys: a row's identity across runs (`row_key`), and the keys of rows that could not be
read or were skipped ("r:" + a hash of the raw fields, or "line:N")."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

import orjson

from ..models import Row


def _canonical_utc(utc: datetime) -> str:
    return utc.isoformat()[:19] + "Z"


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


def _valid_row(line: int, fields: dict[str, Any], start: str, end: str, start_utc: datetime,
               end_utc: datetime, title: str | None, invitees: list[dict[str, str]],
               external: str | None, organizer: str) -> Row:
    """A valid row: its payload (fields in the API's order) and its key."""
    payload: dict[str, Any] = {"startTime": start, "endTime": end}
    if title is not None:
        payload["title"] = title
    payload["invitees"] = invitees
    if external is not None:
        payload["externalId"] = external
    payload["organizerEmail"] = organizer
    key = external or _content_key(_canonical_utc(start_utc), _canonical_utc(end_utc),
                                   organizer, (i["email"] for i in invitees), title)
    return Row(line, key, payload, (), fields)
