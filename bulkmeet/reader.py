"""Rows from CSV / JSONL / XLSX: sniff, decode, stream; each row keeps its line number.

`read_rows` opens the source and reads its header at call time, so every problem with the
source as a whole (missing file, unknown format or encoding, bad header, an .xlsx that is not
a zip) raises InputError there. After that a malformed record never raises: it becomes a
RawRow with `fields=None` and an `error` naming its line, and reading goes on. (The one
mid-stream InputError left is a multi-byte codec such as utf-16 meeting a cut-off character.)

Nothing reads the whole file: CSV and JSONL go line by line through the C parsers (csv,
orjson), XLSX through openpyxl's read-only streaming mode.
"""

from __future__ import annotations

import codecs
import csv
import io
import os
import shutil
import sys
import tempfile
import zipfile
from collections.abc import Generator, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import date, datetime, time
from itertools import chain
from types import TracebackType
from typing import Any, BinaryIO, Literal, TextIO

import orjson

from .errors import InputError
from .models import RawRow

__all__ = ["Format", "Rows", "detect_format", "read_rows"]

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
DELIMITERS = (",", ";", "\t")  # sniffing candidates; on a tie the earlier one wins
SNIFF_MAX_LINES = 50
SNIFF_MAX_CHARS = 64 * 1024
STDIN_NAME = "<stdin>"

_EXCEL_HINT = "; if the file was saved by Excel on Windows, try encoding: cp1252"
_JSON_KINDS = {
    list: "array",
    str: "string",
    int: "number",
    float: "number",
    bool: "boolean",
    type(None): "null",
}


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


class Rows(Iterator[RawRow]):
    """What read_rows returns: the source's RawRows, read lazily, one at a time.

    `columns` is the header (None for JSONL, whose objects carry their own keys) and
    `delimiter` the CSV delimiter used (given or sniffed). Reading to the end closes the
    source; close() or leaving a `with` block closes it early. A stdin stream is never closed.
    """

    __slots__ = ("format", "columns", "delimiter", "_rows")

    def __init__(
        self,
        rows: Generator[RawRow, None, None],
        *,
        format: Format,
        columns: tuple[str, ...] | None,
        delimiter: str | None,
    ) -> None:
        self.format = format
        self.columns = columns
        self.delimiter = delimiter
        self._rows = rows

    def __iter__(self) -> Rows:
        return self

    def __next__(self) -> RawRow:
        return next(self._rows)

    def close(self) -> None:
        self._rows.close()

    def __enter__(self) -> Rows:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


@dataclass(slots=True)
class _Opened:
    """What a reader learns while opening its source, handed out before the first row."""

    columns: tuple[str, ...] | None = None
    delimiter: str | None = None


_READY = RawRow(0, None, "source opened")  # the first value every reader generator yields


def read_rows(
    source: str,
    *,
    fmt: str | None = None,
    delimiter: str | None = None,
    encoding: str = "utf-8",
    sheet: str | None = None,
    stdin: BinaryIO | None = None,
) -> Rows:
    """Open `source` (a path, or "-" for `stdin` / sys.stdin.buffer) and stream its rows.

    The source is opened and its header read here, so source-level problems raise InputError
    from this call; the generator behind the result is already started, so dropping the
    result unread still closes the file.
    """
    kind = detect_format(source, fmt)
    name = STDIN_NAME if source == "-" else source
    if sheet is not None and kind != "xlsx":
        raise InputError(f"{name}: a sheet can only be chosen in an .xlsx file")
    if delimiter is not None and len(delimiter) != 1:
        raise InputError(f"the delimiter must be one character, not {delimiter!r}")
    opened = _Opened()
    gen: Generator[RawRow, None, None]
    if kind == "xlsx":
        gen = _xlsx_rows(source, name, sheet, stdin, opened)
    else:
        codec = _text_codec(encoding)
        if kind == "csv":
            if delimiter is None and source.lower().endswith(".tsv"):
                delimiter = "\t"
            gen = _csv_rows(source, name, codec, delimiter, stdin, opened)
        else:
            gen = _jsonl_rows(source, name, codec, stdin, opened)
    first = next(gen)  # opens the source and reads the header: InputError surfaces here
    assert first is _READY
    return Rows(gen, format=kind, columns=opened.columns, delimiter=opened.delimiter)


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


# --- CSV -----------------------------------------------------------------------------------


def _csv_rows(
    source: str,
    name: str,
    codec: str,
    delimiter: str | None,
    stdin: BinaryIO | None,
    opened: _Opened,
) -> Generator[RawRow, None, None]:
    with ExitStack() as stack:
        binary = _open_binary(source, name, stdin, stack)
        # newline="" hands \r\n inside quoted fields to the csv module untouched (its docs ask
        # for it); surrogateescape keeps undecodable bytes so the row, not the run, fails.
        text = io.TextIOWrapper(binary, encoding=codec, errors="surrogateescape", newline="")
        if source == "-":
            stack.callback(text.detach)  # never close the caller's stdin
        else:
            stack.callback(text.close)
        head = _head_lines(text, codec)
        if delimiter is None:
            delimiter = _sniff(head)
        # strict: a stray quote is an error row rather than a silently mangled value
        reader = csv.reader(chain(head, text), delimiter=delimiter, strict=True)
        columns, line_num = _csv_header(reader, name, codec)
        opened.columns, opened.delimiter = columns, delimiter
        yield _READY
        try:
            yield from _csv_records(reader, columns, codec, line_num)
        except UnicodeError as exc:  # only codecs like utf-16 can fail past surrogateescape
            raise InputError(f"{name}: cannot decode as {_shown(codec)}: {exc}") from None


def _head_lines(text: TextIO, codec: str) -> list[str]:
    """The first lines, up to the end of the first non-blank record (bounded): enough to sniff.

    They are returned to be parsed again, so nothing is lost on a stream that cannot seek.
    """
    lines: list[str] = []
    size = 0
    quoted = False
    while len(lines) < SNIFF_MAX_LINES and size < SNIFF_MAX_CHARS:
        line = text.readline()
        if not line:
            break
        if not lines:
            line = _strip_bom(line, codec)
        lines.append(line)
        size += len(line)
        if not quoted and line.isspace():
            continue
        if line.count('"') % 2:  # doubled quotes leave the parity alone
            quoted = not quoted
        if not quoted:
            break
    return lines


def _strip_bom(line: str, codec: str) -> str:
    """Drop a UTF-8 BOM whatever the encoding (utf-8-sig drops it already)."""
    try:
        bom = codecs.BOM_UTF8.decode(codec, "surrogateescape")
    except UnicodeError:
        return line
    return line[len(bom) :] if bom and line.startswith(bom) else line


def _sniff(lines: list[str]) -> str:
    """The candidate delimiter seen most often outside quotes in the header record.

    Only the header is looked at: data rows hold decimal commas, free text and quotes,
    which is where csv.Sniffer goes wrong; a header is short and plain.
    """
    counts = dict.fromkeys(DELIMITERS, 0)
    quoted = False
    for ch in "".join(lines):
        if ch == '"':
            quoted = not quoted
        elif not quoted and ch in counts:
            counts[ch] += 1
    return max(DELIMITERS, key=counts.__getitem__)


def _csv_header(reader: Any, name: str, codec: str) -> tuple[tuple[str, ...], int]:
    """The header's column names and the line number it ends on."""
    line_num = 0
    try:
        for record in reader:
            line = line_num + 1
            line_num = reader.line_num
            if "".join(record).strip():
                break
        else:
            raise InputError(f"{name}: no header row: the file has no data")
    except csv.Error as exc:
        raise InputError(f"{name}: line {line_num + 1}: cannot read the header: {exc}") from None
    except UnicodeError as exc:
        raise InputError(f"{name}: cannot decode as {_shown(codec)}: {exc}") from None
    for number, cell in enumerate(record, 1):
        bad = _first_escaped(cell)
        if bad is not None:
            byte, pos = bad
            hint = _EXCEL_HINT if codec == "utf-8-sig" else ""
            raise InputError(
                f"{name}: line {line}: header column {number}: bytes not valid {_shown(codec)} "
                f"(0x{byte:02X} at position {pos}){hint}"
            )
    return _column_names(record, f"{name}: line {line}"), line_num


def _csv_records(
    reader: Any, columns: tuple[str, ...], codec: str, line_num: int
) -> Iterator[RawRow]:
    width = len(columns)
    while True:
        try:
            for record in reader:
                line = line_num + 1
                line_num = reader.line_num
                joined = "".join(record)
                if not joined or joined.isspace():
                    continue  # blank line, or a row of empty cells
                if len(record) != width:
                    if len(record) > width and not any(record[width:]):
                        record = record[:width]  # trailing empty fields: tolerated
                    else:
                        yield RawRow(line, None, _count_error(line, line_num, width, record))
                        continue
                if not joined.isascii():  # O(1): CPython stores the flag
                    try:
                        joined.encode("utf-8")  # fails only on an escaped (undecodable) byte
                    except UnicodeEncodeError:
                        yield RawRow(line, None, _decode_error(line, columns, record, codec))
                        continue
                yield RawRow(line, dict(zip(columns, record, strict=True)))
            return
        except csv.Error as exc:
            line = line_num + 1
            line_num = reader.line_num
            yield RawRow(line, None, _syntax_error(line, line_num, exc))


def _syntax_error(line: int, last: int, exc: csv.Error) -> str:
    text = str(exc)
    if "expected after" in text:
        text = "text follows a closing quote; a quote inside a quoted value must be doubled"
    elif text == "unexpected end of data":
        text = "the file ends inside a quoted value: is a quote left open?"
    span = f" (the record runs over lines {line}-{last})" if last > line else ""
    return f"line {line}: {text}{span}"


def _count_error(line: int, last: int, width: int, record: list[str]) -> str:
    message = f"line {line}: expected {width} fields as in the header, found {len(record)}"
    if last > line:
        message += f" (the record runs over lines {line}-{last}: is a quote left open?)"
    return message


def _first_escaped(value: str) -> tuple[int, int] | None:
    """(byte, 1-based position) of the first undecodable byte kept by surrogateescape."""
    for pos, ch in enumerate(value, 1):
        if "\udc80" <= ch <= "\udcff":
            return ord(ch) - 0xDC00, pos
    return None


def _decode_error(line: int, columns: tuple[str, ...], record: list[str], codec: str) -> str:
    for index, value in enumerate(record):
        bad = _first_escaped(value)
        if bad is not None:
            byte, pos = bad
            hint = _EXCEL_HINT if codec == "utf-8-sig" else ""
            return (
                f"line {line}, column {columns[index]!r}: bytes not valid {_shown(codec)} "
                f"(0x{byte:02X} at position {pos}){hint}"
            )
    return f"line {line}: bytes not valid {_shown(codec)}"  # pragma: no cover - caller checked


# --- JSONL ---------------------------------------------------------------------------------


def _jsonl_rows(
    source: str, name: str, codec: str, stdin: BinaryIO | None, opened: _Opened
) -> Generator[RawRow, None, None]:
    """One JSON object per physical line (split on \\n: JSON text never holds a raw newline).

    UTF-8 bytes go straight to orjson; another encoding must be ASCII-compatible (the file is
    split into lines as bytes) and each line is decoded before parsing.
    """
    with ExitStack() as stack:
        binary = _open_binary(source, name, stdin, stack)
        yield _READY
        lines = iter(binary)
        first = next(lines, None)
        if first is None:
            return
        if first.startswith(codecs.BOM_UTF8):
            first = first[len(codecs.BOM_UTF8) :]
        utf8 = codec == "utf-8-sig"
        for number, raw in enumerate(chain((first,), lines), 1):
            try:
                value = orjson.loads(raw if utf8 else raw.decode(codec))
            except (orjson.JSONDecodeError, UnicodeDecodeError) as exc:
                if raw.strip():
                    yield RawRow(number, None, _json_error(number, raw, codec, exc))
                continue
            if type(value) is dict:
                yield RawRow(number, value)
            else:
                kind = _JSON_KINDS.get(type(value), type(value).__name__)
                yield RawRow(number, None, f"line {number}: expected a JSON object, found {kind}")


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


# --- XLSX ----------------------------------------------------------------------------------


def _xlsx_rows(
    source: str, name: str, sheet: str | None, stdin: BinaryIO | None, opened: _Opened
) -> Generator[RawRow, None, None]:
    try:
        from openpyxl import load_workbook
    except ImportError:
        raise InputError("reading .xlsx needs openpyxl: pip install openpyxl") from None
    with ExitStack() as stack:
        binary = _open_binary(source, name, stdin, stack)
        if source == "-":  # a zip is read from its end: spool stdin to a seekable file
            spool = stack.enter_context(tempfile.TemporaryFile())
            shutil.copyfileobj(binary, spool)
            spool.seek(0)
            binary = spool
        try:
            # A file object, not the path: openpyxl would refuse a path without .xlsx.
            book = load_workbook(binary, read_only=True, data_only=True)
        except zipfile.BadZipFile:
            raise InputError(f"{name}: not an .xlsx workbook (it is not a zip archive)") from None
        except Exception as exc:  # openpyxl fails in many ways on a damaged workbook
            raise InputError(f"{name}: cannot read the workbook: {exc}") from None
        stack.callback(book.close)
        sheets = {ws.title: ws for ws in book.worksheets}
        if sheet is None:
            ws = book.worksheets[0]
        elif sheet in sheets:
            ws = sheets[sheet]
        else:
            known = ", ".join(repr(title) for title in sheets)
            raise InputError(f"{name}: no sheet named {sheet!r} (sheets: {known})")
        ws.reset_dimensions()  # the stored size may be wrong; read what is there
        # Rows missing from the file come back as empty tuples, so counting gives row numbers.
        numbered = enumerate(ws.iter_rows(min_row=1, values_only=True), 1)
        columns = _xlsx_header(numbered, f"{name}, sheet {ws.title!r}")
        opened.columns = columns
        yield _READY
        width = len(columns)
        padding = ("",) * width
        for number, cells in numbered:
            values = [_cell(v) for v in cells]
            if not any(_filled(v) for v in values):
                continue
            if len(values) > width:
                extra = values[width:]
                if any(_filled(v) for v in extra):
                    found = width + max(i for i, v in enumerate(extra, 1) if _filled(v))
                    message = f"expected {width} fields as in the header, found {found}"
                    yield RawRow(number, None, f"line {number}: {message}")
                    continue
                values = values[:width]
            yield RawRow(number, dict(zip(columns, chain(values, padding), strict=False)))


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if type(value) is float and value.is_integer():
        return int(value)
    return value


def _filled(value: Any) -> bool:
    return not isinstance(value, str) or bool(value.strip())


def _xlsx_header(numbered: Iterator[tuple[int, tuple[Any, ...]]], where: str) -> tuple[str, ...]:
    for number, cells in numbered:
        names = ["" if v is None else _header_text(v) for v in cells]
        if "".join(names).strip():
            return _column_names(names, f"{where}: row {number}")
    raise InputError(f"{where}: no header row: the sheet is empty")


def _column_names(cells: list[str], where: str) -> tuple[str, ...]:
    """Header cells stripped; trailing empty ones dropped (Excel writes them), no other gaps."""
    names = [cell.strip() for cell in cells]
    while names and not names[-1]:
        names.pop()
    seen: dict[str, int] = {}
    for number, cell in enumerate(names, 1):
        if not cell:
            raise InputError(f"{where}: header column {number} is empty; every column needs a name")
        if cell in seen:
            raise InputError(
                f"{where}: header column {number} {cell!r} repeats column {seen[cell]}; "
                "names must be unique"
            )
        seen[cell] = number
    return tuple(names)


def _header_text(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    return str(value)
