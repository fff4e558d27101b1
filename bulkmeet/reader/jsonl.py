"""JSONL: one JSON object per line, parsed by orjson; long lines and deep nesting are
invalid rows."""

from __future__ import annotations

import io
from collections.abc import Generator, Iterator
from contextlib import ExitStack
from typing import Any, BinaryIO

import orjson

from ..models import RawRow
from .records import _READY, MAX_RECORD_CHARS, _not_empty, _Opened
from .sources import _open_binary, _shown

# A JSONL object nested deeper than this (the top-level object is level 1) is an invalid row:
# no real export nests so deep, and the mapping's messages and keys walk the value.
MAX_JSON_DEPTH = 32

_JSON_KINDS = {
    list: "array",
    str: "string",
    int: "number",
    float: "number",
    bool: "boolean",
    type(None): "null",
}


def _jsonl_rows(
    source: str, name: str, codec: str, stdin: BinaryIO | None, opened: _Opened
) -> Generator[RawRow, None, None]:
    """One JSON object per physical line. Lines end at \\n, \\r\\n or a lone \\r, as in CSV
    (JSON text never holds a raw line break, so no record is split by this).

    UTF-8 bytes go straight to orjson; another encoding must be ASCII-compatible (the file is
    split into lines as bytes) and each line is decoded before parsing.
    """
    with ExitStack() as stack:
        binary = _open_binary(source, name, stdin, stack)
        yield _READY
        yield from _not_empty(_jsonl_records(_jsonl_lines(binary, source == "-", stack), codec),
                              f"{name}: no data rows: the file is empty")


def _jsonl_lines(binary: BinaryIO, is_stdin: bool, stack: ExitStack) -> Iterator[bytes | None]:
    """Each physical line's bytes, split on \\n, \\r\\n and \\r; None for one past the cap.

    latin-1 maps each byte to one character and back, so splitting in text mode (the C code of
    TextIOWrapper, which knows all three line ends) hands back the bytes as they were.
    """
    text = io.TextIOWrapper(binary, encoding="latin-1", newline="")
    stack.callback(text.detach if is_stdin else text.close)
    readline = text.readline
    limit = MAX_RECORD_CHARS + 1
    first = True
    while line := readline(limit):
        if first and line.startswith("\xef\xbb\xbf"):
            line = line[3:]
        first = False
        if len(line) == limit and line[-1] not in "\r\n":  # over the cap: skip to its end
            while (rest := readline(limit)) and len(rest) == limit and rest[-1] not in "\r\n":
                pass
            yield None
            continue
        yield line.encode("latin-1")


def _jsonl_records(lines: Iterator[bytes | None], codec: str) -> Iterator[RawRow]:
    utf8 = codec == "utf-8-sig"
    for number, raw in enumerate(lines, 1):
        if raw is None:
            yield RawRow(number, None, f"line {number}: the record is longer than "
                         f"{MAX_RECORD_CHARS:,} characters, the most bulkmeet reads in one row")
            continue
        try:
            value = orjson.loads(raw if utf8 else raw.decode(codec))
        except (orjson.JSONDecodeError, UnicodeDecodeError) as exc:
            if raw.strip():
                yield RawRow(number, None, _json_error(number, raw, codec, exc))
            continue
        if type(value) is dict:
            if _too_deep(value):
                yield RawRow(number, None, f"line {number}: the object is nested more than "
                             f"{MAX_JSON_DEPTH} levels deep, the most bulkmeet reads")
            else:
                yield RawRow(number, value)
        else:
            kind = _JSON_KINDS.get(type(value), type(value).__name__)
            yield RawRow(number, None, f"line {number}: expected a JSON object, found {kind}")


def _too_deep(value: dict[str, Any]) -> bool:
    """Whether objects and arrays nest past MAX_JSON_DEPTH (the top object is level 1); walked
    with a list, not recursion, so any depth orjson accepts is measured safely."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        for child in item.values() if type(item) is dict else item:
            if type(child) is dict or type(child) is list:
                if depth >= MAX_JSON_DEPTH:
                    return True
                stack.append((child, depth + 1))
    return False


def _json_error(number: int, raw: bytes, codec: str, exc: ValueError) -> str:
    try:
        raw.decode(codec)
    except UnicodeDecodeError as bad:
        return (
            f"line {number}: bytes not valid {_shown(codec)} "
            f"(0x{raw[bad.start]:02X} at byte {bad.start + 1})"
        )
    if isinstance(exc, orjson.JSONDecodeError):
        return f"line {number}: not valid JSON: {exc.msg} at column {exc.colno}"
    return f"line {number}: not valid JSON: {exc}"  # pragma: no cover - decode just succeeded
