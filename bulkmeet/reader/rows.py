"""The Rows handle, and read_rows: open a source in its format and hand out its rows."""

from __future__ import annotations

import logging
from collections.abc import Generator, Iterator
from types import TracebackType
from typing import BinaryIO

from ..errors import InputError
from ..models import RawRow
from .csvfile import _csv_rows
from .encoding import decide_encoding
from .jsonl import _jsonl_rows
from .records import _READY, _Opened
from .sources import STDIN_NAME, Format, _text_codec, detect_format
from .xlsx import _xlsx_rows

log = logging.getLogger("bulkmeet")


class Rows(Iterator[RawRow]):
    """What read_rows returns: the source's RawRows, read lazily, one at a time.

    `columns` is the header (None for JSONL, whose objects carry their own keys) and
    `delimiter` the CSV delimiter used (given or sniffed). Reading to the end closes the
    source; close() or leaving a `with` block closes it early. A stdin stream is never closed.
    """

    __slots__ = ("format", "columns", "delimiter", "_rows", "_ahead")

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
        self._ahead: list[RawRow] = []  # rows peeked at, handed out first

    def peek(self, count: int) -> list[RawRow]:
        """Up to `count` rows from the start, read now and handed out again by iteration: a
        look at the first rows (their times, say) before any is acted on."""
        while len(self._ahead) < count:
            row = next(self._rows, None)
            if row is None:
                break
            self._ahead.append(row)
        return self._ahead[:count]

    def __iter__(self) -> Rows:
        return self

    def __next__(self) -> RawRow:
        if self._ahead:
            return self._ahead.pop(0)
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
        if source != "-":  # one decision for the whole file, before its first row
            decision = decide_encoding(source, encoding, name=name)
            codec = decision.codec
            if decision.warning is not None:
                log.warning(decision.warning, extra={"event": "encoding"})
        if kind == "csv":
            if delimiter is None and source.lower().endswith(".tsv"):
                delimiter = "\t"
            gen = _csv_rows(source, name, codec, delimiter, stdin, opened)
        else:
            gen = _jsonl_rows(source, name, codec, stdin, opened)
    first = next(gen)  # opens the source and reads the header: InputError surfaces here
    assert first is _READY
    return Rows(gen, format=kind, columns=opened.columns, delimiter=opened.delimiter)
