"""CSV: the delimiter sniffed from the header, the header checked, then each record read by
the csv module (strict quoting) with its line numbers; a bad record is one invalid row."""

from __future__ import annotations

import codecs
import csv
import io
from collections.abc import Generator, Iterator
from contextlib import ExitStack
from typing import Any, BinaryIO, TextIO

from ..errors import InputError
from ..models import RawRow
from .csvlines import _Lines, _TooLong
from .records import _READY, MAX_RECORD_CHARS, _column_names, _fields, _not_empty, _Opened
from .sources import _open_binary, _shown

DELIMITERS = (",", ";", "\t")  # sniffing candidates; on a tie the earlier one wins
SNIFF_MAX_LINES = 50
SNIFF_MAX_CHARS = 64 * 1024

_EXCEL_HINT = ("; if the file was saved by Excel on Windows, try encoding: cp1252 (or --encoding "
               "cp1252)")


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
