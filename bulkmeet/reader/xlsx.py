"""XLSX through openpyxl's read-only streaming mode; openpyxl is imported only here, when a
workbook is read."""

from __future__ import annotations

import shutil
import tempfile
import zipfile
from collections.abc import Generator, Iterator
from contextlib import ExitStack
from datetime import date, datetime, time
from itertools import chain
from typing import Any, BinaryIO

from ..errors import InputError
from ..models import RawRow
from .records import _READY, _column_names, _fields, _not_empty, _Opened
from .sources import _open_binary


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


def _header_text(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    return str(value)
