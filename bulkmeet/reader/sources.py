"""Which format a source is, and opening it: a path or stdin, and the text codec to decode
it with."""

from __future__ import annotations

import codecs
import io
import os
import sys
from contextlib import ExitStack
from typing import BinaryIO, Literal

from ..errors import InputError

Format = Literal["csv", "jsonl", "xlsx"]

EXTENSIONS: dict[str, Format] = {
    ".csv": "csv",
    ".tsv": "csv",
    ".txt": "csv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
    ".xlsx": "xlsx",
}
STDIN_NAME = "<stdin>"


def detect_format(source: str, fmt: str | None) -> Format:
    """`fmt` if given, else the format its extension names; stdin ("-") needs `fmt`."""
    if fmt is not None:
        if fmt in ("csv", "jsonl", "xlsx"):
            return fmt  # type: ignore[return-value]  # narrowed by the test just above
        raise InputError(f"unknown input format {fmt!r}: use csv, jsonl or xlsx")
    if source == "-":
        raise InputError("reading from stdin (-) needs --format csv, jsonl or xlsx")
    ext = os.path.splitext(source)[1].lower()
    if ext in EXTENSIONS:
        return EXTENSIONS[ext]
    if ext == ".xls":
        raise InputError(f"{source}: old .xls workbooks cannot be read; save it as .xlsx or CSV")
    raise InputError(
        f"{source}: cannot tell the format from the extension {ext or '(none)'!r}; "
        "pass --format csv, jsonl or xlsx"
    )


def _text_codec(encoding: str) -> str:
    """The codec's canonical name; utf-8 becomes utf-8-sig so a BOM is dropped."""
    try:
        name = codecs.lookup(encoding).name
        # what open() does: reject bytes-to-bytes codecs such as base64 or rot13
        io.TextIOWrapper(io.BytesIO(), encoding=name)
    except LookupError:
        raise InputError(
            f"unknown encoding {encoding!r}: use a Python codec name such as utf-8 or cp1252"
        ) from None
    return "utf-8-sig" if name == "utf-8" else name


def _shown(codec: str) -> str:
    return "utf-8" if codec == "utf-8-sig" else codec


def _open_binary(source: str, name: str, stdin: BinaryIO | None, stack: ExitStack) -> BinaryIO:
    if source == "-":
        return stdin if stdin is not None else sys.stdin.buffer
    try:
        return stack.enter_context(open(source, "rb"))
    except FileNotFoundError:
        raise InputError(f"input file not found: {name}") from None
    except IsADirectoryError:
        raise InputError(f"input is a directory, not a file: {name}") from None
    except OSError as exc:
        raise InputError(f"cannot read input file {name}: {exc.strerror or exc}") from None
