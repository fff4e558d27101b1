"""Keeping CSV records bounded: the csv reader's line source (_Lines) cuts off a record over
MAX_RECORD_CHARS and skips to its end, following its quotes with _Scan."""

from __future__ import annotations

from typing import TextIO

from .records import MAX_RECORD_CHARS


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
