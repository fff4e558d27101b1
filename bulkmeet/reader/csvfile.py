"""Rows from CSV / JSONL / XLSX: sniff, decode, stream; each row keeps its line number.

`read_rows` opens the source and reads its header at call time, so every problem with the
source as a whole (missing file, unknown format or encoding, bad header, an .xlsx that is not
a zip) raises InputError there. After that a malformed record never raises: it becomes a
RawRow with `fields=None` and an `error` naming its line, and reading goes on; so does a record
longer than MAX_RECORD_CHARS (its text never becomes rows) and a JSONL object nested deeper than
MAX_JSON_DEPTH. The mid-stream InputErrors left: an input with no data row at all (a header-only
CSV or sheet, an empty JSONL), raised when reading reaches its end, and a multi-byte codec such
as utf-16 meeting a cut-off character.

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

from ..errors import InputError
from ..models import RawRow

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
# One record (a CSV row with all its cells, a JSONL line) holds at most this many characters;
# a longer one is one invalid row, and reading goes on after it. csv's own field limit is
# raised to it, so no cell under the cap is cut (csv's default, 131,072, is not enough for long
# notes) and none over it ever reaches the csv module.
MAX_RECORD_CHARS = 4 * 1024 * 1024
# A JSONL object nested deeper than this (the top-level object is level 1) is an invalid row:
# no real export nests so deep, and the mapping's messages and keys walk the value.
MAX_JSON_DEPTH = 32

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
        if csv.field_size_limit() < MAX_RECORD_CHARS:
            csv.field_size_limit(MAX_RECORD_CHARS)  # _Lines keeps every record within it
        lines = _Lines(head, text, delimiter)
        # strict: a stray quote is an error row rather than a silently mangled value
        reader = csv.reader(lines, delimiter=delimiter, strict=True)
        columns = _csv_header(reader, lines, name, codec)
        opened.columns, opened.delimiter = columns, delimiter
        yield _READY
        try:
            yield from _not_empty(_csv_records(reader, lines, columns, codec),
                                  f"{name}: no data rows: the file has a header and nothing else")
        except UnicodeError as exc:  # only codecs like utf-16 can fail past surrogateescape
            raise InputError(f"{name}: cannot decode as {_shown(codec)}: {exc}") from None


def _not_empty(rows: Iterator[RawRow], message: str) -> Iterator[RawRow]:
    """`rows`, then InputError(message) at the end if there were none: an input without a
    row is a mistake (the wrong file, an export cut short), said once like an empty file.
    Raised at the end, not up front, so that read_rows returns on a pipe with just the header.
    """
    for row in rows:
        yield row
        break
    else:
        raise InputError(message)
    yield from rows


class _TooLong(Exception):
    """Raised by _Lines, through the csv reader, for a record over MAX_RECORD_CHARS: the record
    has been read to its end already; `field` is the 0-based field where the cap was crossed."""

    def __init__(self, field: int) -> None:
        super().__init__(field)
        self.field = field


class _Lines:
    """The csv reader's source of lines: counts physical lines, and keeps records bounded.

    The csv reader asks for the next line only while its record goes on, and never reads past
    a record's last line, so what this hands out between two `start_record` calls is one
    record. When that passes MAX_RECORD_CHARS, the record is read to its end here (_Scan
    follows its quotes) without building it, and _TooLong stops the csv reader, whose next
    call starts afresh on the line after the record: the text of an over-long cell never
    becomes rows of its own.
    """

    __slots__ = ("_head", "_text", "_delimiter", "_pieces", "_size", "_at_line_start",
                 "line_num")

    def __init__(self, head: list[str], text: TextIO, delimiter: str) -> None:
        self._head = iter(head)
        self._text = text
        self._delimiter = delimiter
        self._pieces: list[str] = []  # the current record's lines (at most the cap in all)
        self._size = 0
        self._at_line_start = True
        self.line_num = 0  # the physical line last read from

    def __iter__(self) -> _Lines:
        return self

    def _read(self) -> str:
        piece = next(self._head, None)
        if piece is None:
            piece = self._text.readline(MAX_RECORD_CHARS + 1)  # a longer line comes in parts
        if piece:
            self.line_num += self._at_line_start
            self._at_line_start = piece[-1] in "\r\n"
        return piece

    def __next__(self) -> str:
        piece = self._read()
        if not piece:
            raise StopIteration
        self._size += len(piece)
        self._pieces.append(piece)
        if self._size > MAX_RECORD_CHARS:
            raise self._skip_record()
        return piece

    def start_record(self) -> None:
        self._pieces.clear()
        self._size = 0

    def _skip_record(self) -> _TooLong:
        scan = _Scan(self._delimiter)
        budget = MAX_RECORD_CHARS
        field = 0
        for piece in self._pieces:
            if 0 <= budget < len(piece):
                scan.feed(piece[:budget])
                field = scan.field
                scan.feed(piece[budget:])
            else:
                scan.feed(piece)
            budget -= len(piece)
        piece = self._pieces[-1]
        self.start_record()
        while piece[-1] not in "\r\n" or scan.state == _Scan.QUOTED:
            piece = self._read()
            if not piece:
                break
            scan.feed(piece)
        return _TooLong(field)


class _Scan:
    """Follows a CSV record's fields and quotes as the csv module would (strict dialect, `"`
    quoting), without keeping the text: str.find does the scanning, so it stays fast."""

    START, UNQUOTED, QUOTED, AFTER_QUOTE = range(4)
    __slots__ = ("delimiter", "state", "field")

    def __init__(self, delimiter: str) -> None:
        self.delimiter = delimiter
        self.state = _Scan.START
        self.field = 0  # 0-based index of the field being read

    def feed(self, text: str) -> None:
        state, field, delimiter = self.state, self.field, self.delimiter
        i, n = 0, len(text)
        while i < n:
            if state == _Scan.QUOTED:
                j = text.find('"', i)
                if j < 0:
                    break
                state, i = _Scan.AFTER_QUOTE, j + 1
            elif state == _Scan.UNQUOTED:
                j = text.find(delimiter, i)
                if j < 0:
                    break
                state, field, i = _Scan.START, field + 1, j + 1
            else:
                ch = text[i]
                if ch == '"':  # opens a quoted field, or is a doubled quote inside one
                    state, i = _Scan.QUOTED, i + 1
                elif ch == delimiter:
                    state, field, i = _Scan.START, field + 1, i + 1
                else:  # plain text (or a line end: the caller looks at where lines end)
                    state = _Scan.UNQUOTED
        self.state, self.field = state, field


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


def _csv_header(reader: Any, lines: _Lines, name: str, codec: str) -> tuple[str, ...]:
    """The header's column names."""
    line_num = 0
    try:
        for record in reader:
            line = line_num + 1
            line_num = lines.line_num
            lines.start_record()
            if "".join(record).strip():
                break
        else:
            raise InputError(f"{name}: no header row: the file has no data")
    except csv.Error as exc:
        raise InputError(f"{name}: line {line_num + 1}: cannot read the header: {exc}") from None
    except _TooLong:
        raise InputError(f"{name}: line {line_num + 1}: the header is longer than "
                         f"{MAX_RECORD_CHARS:,} characters; is this a CSV file?") from None
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
    return _column_names(record, f"{name}: line {line}")


def _csv_records(
    reader: Any, lines: _Lines, columns: tuple[str, ...], codec: str
) -> Iterator[RawRow]:
    width = len(columns)
    line_num = lines.line_num
    while True:
        try:
            for record in reader:
                line = line_num + 1
                line_num = lines.line_num
                lines.start_record()
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
            line_num = lines.line_num
            lines.start_record()
            yield RawRow(line, None, _syntax_error(line, line_num, exc))
        except _TooLong as exc:
            line = line_num + 1
            line_num = lines.line_num
            yield RawRow(line, None, _too_long_error(line, line_num, columns, exc.field))


def _too_long_error(line: int, last: int, columns: tuple[str, ...], field: int) -> str:
    where = f"column {columns[field]!r}" if field < len(columns) else f"field {field + 1}"
    span = f" (it runs over lines {line}-{last})" if last > line else ""
    return (f"line {line}, {where}: the record is longer than {MAX_RECORD_CHARS:,} characters, "
            f"the most bulkmeet reads in one row{span}; is a quote left open?")


def _syntax_error(line: int, last: int, exc: csv.Error) -> str:
    text = str(exc)
    if "expected after" in text:
        text = "text follows a closing quote; a quote inside a quoted value must be doubled"
    elif text == "unexpected end of data":
        text = "the file ends inside a quoted value: is a quote left open?"
    span = f" (the record runs over lines {line}-{last})" if last > line else ""
    return f"line {line}: {text}{span}"


def _count_error(line: int, last: int, width: int, record: list[str]) -> str:
    message = f"line {line}: expected {_fields(width)} as in the header, found {len(record)}"
    if last > line:
        message += f" (the record runs over lines {line}-{last}: is a quote left open?)"
    return message


def _fields(n: int) -> str:
    return "1 field" if n == 1 else f"{n} fields"


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
        yield from _not_empty(_xlsx_records(numbered, columns),
                              f"{name}, sheet {ws.title!r}: no data rows: the sheet has a header "
                              "and nothing else")


def _xlsx_records(numbered: Iterator[tuple[int, tuple[Any, ...]]],
                  columns: tuple[str, ...]) -> Iterator[RawRow]:
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
                message = f"expected {_fields(width)} as in the header, found {found}"
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
