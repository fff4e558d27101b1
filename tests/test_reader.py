"""The reader: sample files as parametrised cases, stdin, streaming, xlsx, Hypothesis properties."""

from __future__ import annotations

import csv
import io
import os
import queue
import re
import sys
import threading
import time as time_module
import tracemalloc
from collections.abc import Callable, Iterator
from datetime import date, datetime, time
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bulkmeet.errors import InputError
from bulkmeet.models import RawRow
from bulkmeet.reader import MAX_JSON_DEPTH, MAX_RECORD_CHARS, detect_format, read_rows

DATA = Path(__file__).parent / "data" / "reader"
EXCEL_HINT = ("; if the file was saved by Excel on Windows, try encoding: cp1252 (or --encoding "
              "cp1252)")
PROPERTY = settings(max_examples=60, deadline=None)


def rows_of(source: str | Path, **options: Any) -> list[RawRow]:
    """The rows of `source`; [] for an input without rows (which raises only at its end)."""
    with read_rows(str(source), **options) as rows:
        got: list[RawRow] = []
        try:
            got.extend(rows)
        except InputError as exc:
            assert not got and ": no data rows: " in str(exc)
        return got


def from_bytes(data: bytes, fmt: str, **options: Any) -> list[RawRow]:
    return rows_of("-", fmt=fmt, stdin=io.BytesIO(data), **options)


# --- sample files --------------------------------------------------------------------------

SAMPLES: list[Any] = [
    pytest.param(
        "bom_crlf.csv",
        {},
        ("title", "start", "duration"),
        [
            RawRow(2, {"title": "Kickoff", "start": "2024-05-01T09:30", "duration": "30"}),
            RawRow(3, {"title": "  Weekly sync ", "start": "2024-05-02T10:00", "duration": "45"}),
        ],
        id="bom-crlf-header-stripped-values-kept",
    ),
    pytest.param(
        "quoted.csv",
        {},
        ("title", "notes", "owner"),
        [
            RawRow(
                2,
                {
                    "title": "Plan, then act",
                    "notes": "line one\nline two",
                    "owner": "ann@example.com",
                },
            ),
            RawRow(4, {"title": 'She said "hi"', "notes": "", "owner": "bob@example.com"}),
            RawRow(5, {"title": "Multi\n\nparagraph", "notes": "x", "owner": "cy@example.com"}),
            RawRow(8, {"title": "last", "notes": 'a "quoted", comma', "owner": "dee@example.com"}),
        ],
        id="quoted-newlines-commas-doubled-quotes",
    ),
    pytest.param(
        "semicolon.csv",
        {},
        ("title", "duration", "price"),
        [
            RawRow(2, {"title": "Review", "duration": "30", "price": "1,5"}),
            RawRow(3, {"title": "Budget; Q3", "duration": "60", "price": "2,25"}),
        ],
        id="semicolon-sniffed-despite-decimal-commas",
    ),
    pytest.param(
        "tabbed.tsv",
        {},
        ("title", "start", "owner"),
        [
            RawRow(2, {"title": "Kickoff", "start": "2024-05-01", "owner": "ann@example.com"}),
            RawRow(
                3, {"title": "Notes, etc; more", "start": "2024-05-02", "owner": "bob@example.com"}
            ),
        ],
        id="tsv-implies-tab",
    ),
    pytest.param(
        "field_counts.csv",
        {},
        ("a", "b", "c"),
        [
            RawRow(2, {"a": "1", "b": "2", "c": "3"}),
            RawRow(4, {"a": "4", "b": "5", "c": "6"}),
            RawRow(5, None, "line 5: expected 3 fields as in the header, found 4"),
            RawRow(6, None, "line 6: expected 3 fields as in the header, found 2"),
            RawRow(
                9,
                None,
                "line 9: expected 3 fields as in the header, found 4"
                " (the record runs over lines 9-10: is a quote left open?)",
            ),
            RawRow(11, {"a": "18", "b": "19", "c": "20"}),
        ],
        id="field-counts-blank-lines-trailing-empties",
    ),
    pytest.param(
        "cp1252.csv",
        {},
        ("title", "organizer"),
        [
            RawRow(
                2,
                None,
                "line 2, column 'title': bytes not valid utf-8 (0xE9 at position 4)" + EXCEL_HINT,
            ),
            RawRow(3, {"title": "Plain", "organizer": "bob@example.com"}),
            RawRow(
                4,
                None,
                "line 4, column 'title': bytes not valid utf-8 (0xE9 at position 2)" + EXCEL_HINT,
            ),
        ],
        id="cp1252-bytes-read-as-utf8",
    ),
    pytest.param(
        "cp1252.csv",
        {"encoding": "cp1252"},
        ("title", "organizer"),
        [
            RawRow(2, {"title": "Café meeting", "organizer": "ann@example.com"}),
            RawRow(3, {"title": "Plain", "organizer": "bob@example.com"}),
            RawRow(4, {"title": "Résumé \u2013 review", "organizer": "cy@example.com"}),
        ],
        id="cp1252-bytes-read-as-cp1252",
    ),
    pytest.param(
        "mixed.jsonl",
        {},
        None,
        [
            RawRow(1, {"title": "Kickoff", "duration": 30}),
            RawRow(3, {"title": "Sync", "tags": ["a", "b"], "remote": True, "room": None}),
            RawRow(5, None, "line 5: expected a JSON object, found array"),
            RawRow(6, None, "line 6: not valid JSON: trailing comma is not allowed at column 19"),
            RawRow(7, None, "line 7: expected a JSON object, found string"),
            RawRow(8, None, "line 8: bytes not valid utf-8 (0xE9 at byte 15)"),
            RawRow(9, None, "line 9: expected a JSON object, found number"),
            RawRow(10, {"title": "Last"}),
        ],
        id="jsonl-bom-crlf-blank-bad-and-non-object-lines",
    ),
]


@pytest.mark.parametrize(("name", "options", "columns", "expected"), SAMPLES)
def test_sample_file(
    name: str, options: dict[str, Any], columns: tuple[str, ...] | None, expected: list[RawRow]
) -> None:
    """Each sample file gives exactly these rows: fields, errors and physical line numbers. A
    file (not stdin) that does not decode is refused whole instead, naming the first bad line
    and what to set: one decision per file, so none of its rows is sent."""
    undecodable = [r for r in expected if r.error is not None and "bytes not valid" in r.error]
    if undecodable:
        with pytest.raises(InputError) as caught:
            read_rows(str(DATA / name), **options)
        line = undecodable[0].line
        assert str(caught.value).startswith(f"{DATA / name}: line {line}: byte 0xE9 is not "
                                            "valid utf-8")
        assert "Nothing was sent" in str(caught.value)
        return
    with read_rows(str(DATA / name), **options) as rows:
        assert rows.columns == columns
        assert list(rows) == expected


@pytest.mark.parametrize(("name", "options", "columns", "expected"), SAMPLES)
def test_sample_from_stdin(
    name: str, options: dict[str, Any], columns: tuple[str, ...] | None, expected: list[RawRow]
) -> None:
    """Read from stdin ("-") with --format, each sample gives the same rows as from its path.

    A tab-delimited body read as plain csv proves the tab is sniffed, not only implied by .tsv.
    """
    fmt = "jsonl" if name.endswith(".jsonl") else "csv"
    stdin = io.BytesIO((DATA / name).read_bytes())
    assert from_bytes(stdin.getvalue(), fmt, **options) == expected
    with read_rows("-", fmt=fmt, stdin=stdin, **options) as rows:
        assert rows.columns == columns
        list(rows)
    assert not stdin.closed, "the caller's stdin must stay open"


@pytest.mark.parametrize(
    ("name", "delimiter"),
    [("bom_crlf.csv", ","), ("semicolon.csv", ";"), ("tabbed.tsv", "\t")],
)
def test_delimiter_is_reported(name: str, delimiter: str) -> None:
    """Rows.delimiter says which delimiter was sniffed (or implied by .tsv)."""
    with read_rows(str(DATA / name)) as rows:
        assert rows.delimiter == delimiter


def test_given_delimiter_wins_over_sniffing() -> None:
    """An explicit delimiter is used even where sniffing would pick another one."""
    data = b"a;b,c\n1;2,3\n"
    assert from_bytes(data, "csv") == [RawRow(2, {"a;b": "1;2", "c": "3"})]
    assert from_bytes(data, "csv", delimiter=";") == [RawRow(2, {"a": "1", "b,c": "2,3"})]


def test_single_column_csv() -> None:
    """A header without any candidate delimiter is one column, read with a comma."""
    assert from_bytes(b"title\nKickoff\n\nSync\n", "csv") == [
        RawRow(2, {"title": "Kickoff"}),
        RawRow(4, {"title": "Sync"}),
    ]


def test_blank_lines_before_the_header_are_skipped() -> None:
    """The header is the first non-blank record; line numbers still count the blank lines."""
    assert from_bytes(b"\r\n  \n,,\na,b\n1,2\n", "csv") == [RawRow(5, {"a": "1", "b": "2"})]


def test_trailing_empty_header_cells_are_dropped() -> None:
    """Excel's trailing empty header cells are not columns; rows may carry matching empties."""
    with read_rows("-", fmt="csv", stdin=io.BytesIO(b"a,b,,\n1,2,,\n3,4\n")) as rows:
        assert rows.columns == ("a", "b")
        assert list(rows) == [RawRow(2, {"a": "1", "b": "2"}), RawRow(3, {"a": "3", "b": "4"})]


def test_mixed_line_endings_keep_line_numbers() -> None:
    """LF, CRLF and a lone CR each end one physical line; quoted CRLF stays in the value."""
    data = b'a,b\r\n1,"x\r\ny"\n2,z\r3,w\r\n'
    assert from_bytes(data, "csv") == [
        RawRow(2, {"a": "1", "b": "x\r\ny"}),
        RawRow(4, {"a": "2", "b": "z"}),
        RawRow(5, {"a": "3", "b": "w"}),
    ]


def test_unclosed_quote_is_one_error_row() -> None:
    """A quote left open to the end of the file is one error row naming the lines it spans."""
    assert from_bytes(b'a,b\n1,"oops\n2,x\n3,y\n', "csv") == [
        RawRow(
            2,
            None,
            "line 2: the file ends inside a quoted value: is a quote left open?"
            " (the record runs over lines 2-4)",
        )
    ]


def test_text_after_a_closing_quote_is_an_error_row() -> None:
    """A malformed quote is an error row for its record (not a guessed value); reading goes on."""
    assert from_bytes(b'a,b\n"x"y,1\n1,"p\nq"r,s\n2,3\n', "csv") == [
        RawRow(
            2,
            None,
            "line 2: text follows a closing quote; a quote inside a quoted value must be doubled",
        ),
        RawRow(
            3,
            None,
            "line 3: text follows a closing quote; a quote inside a quoted value must be doubled"
            " (the record runs over lines 3-4)",
        ),
        RawRow(5, {"a": "2", "b": "3"}),
    ]


def test_quote_inside_an_unquoted_value_is_kept() -> None:
    """A quote in the middle of an unquoted value is an ordinary character (5" screen)."""
    assert from_bytes(b'a,b\n5" screen,x\n', "csv") == [RawRow(2, {"a": '5" screen', "b": "x"})]


def test_a_cell_past_the_old_csv_limit_is_read_whole() -> None:
    """A 300,000-character quoted cell with newlines (csv's default limit is 131,072) is one
    value, and the rows after it keep their line numbers."""
    cell = ("note line\r\n" * 30_000).encode()
    data = b'a,b\n1,"' + cell + b'"\n2,ok\n'
    rows = from_bytes(data, "csv")
    assert rows == [
        RawRow(2, {"a": "1", "b": cell.decode()}), RawRow(30_003, {"a": "2", "b": "ok"})
    ]


def test_text_inside_an_over_long_cell_never_becomes_rows() -> None:
    """A record past MAX_RECORD_CHARS is one invalid row naming its line and column; the CSV
    rows hidden in its cell are skipped with it, and reading goes on after it."""
    smuggled = b"\nsmuggled-1,Smuggled,2026-12-01T09:00:00Z\n"
    cell = (b"x" * 1000 + smuggled) * (MAX_RECORD_CHARS // 1000 + 10)
    data = b"id,title,start\nreal-1,\"" + cell + b"\",2026-12-01T10:00:00Z\nreal-2,ok,z\n"
    rows = from_bytes(data, "csv")
    last = 2 + cell.count(b"\n")
    assert rows == [
        RawRow(2, None, f"line 2, column 'title': the record is longer than "
               f"{MAX_RECORD_CHARS:,} characters, the most bulkmeet reads in one row (it runs "
               f"over lines 2-{last}); is a quote left open?"),
        RawRow(last + 1, {"id": "real-2", "title": "ok", "start": "z"}),
    ]


def test_an_over_long_line_without_quotes_is_one_row() -> None:
    """A single line past the cap (no quotes, no newlines) is one invalid row too."""
    data = b"a,b\n1," + b"y" * (MAX_RECORD_CHARS + 5) + b"\n2,ok\n"
    rows = from_bytes(data, "csv")
    assert len(rows) == 2 and rows[0].fields is None
    assert rows[0].error is not None and rows[0].error.startswith("line 2, column 'b': the record")
    assert rows[1] == RawRow(3, {"a": "2", "b": "ok"})


def test_five_megabyte_cell_with_newlines_is_one_row_and_fast() -> None:
    """Issue 12: a 5 MB quoted cell with newlines gave a million records and ran past 20 s."""
    cell = b'a,b,""c""\n' * (5 * 1024 * 1024 // 10)
    data = b'a,b\n1,"' + cell + b'"\n2,ok\n'
    started = time_module.perf_counter()
    rows = from_bytes(data, "csv")
    elapsed = time_module.perf_counter() - started
    assert [(r.line, r.fields is None) for r in rows] == [(2, True), (3 + cell.count(b"\n"), False)]
    assert elapsed < 5, elapsed


def test_bom_is_stripped_whatever_the_encoding() -> None:
    """A UTF-8 BOM is not part of the first column name, even when reading as cp1252."""
    with read_rows("-", fmt="csv", encoding="cp1252", stdin=io.BytesIO(b"\xef\xbb\xbfa\n1\n")) as r:
        assert r.columns == ("a",)
        assert list(r) == [RawRow(2, {"a": "1"})]


def test_other_encodings_name_themselves_without_the_excel_hint() -> None:
    """An undecodable byte in a non-UTF-8 read names that codec and gives no cp1252 advice."""
    rows = from_bytes(b"a\nx\x81y\n", "csv", encoding="cp1252")
    assert rows == [
        RawRow(2, None, "line 2, column 'a': bytes not valid cp1252 (0x81 at position 2)")
    ]


def test_jsonl_in_another_encoding() -> None:
    """JSONL read with encoding cp1252 decodes each line before parsing it."""
    assert from_bytes(b'{"t": "Caf\xe9"}\n', "jsonl", encoding="cp1252") == [
        RawRow(1, {"t": "Café"})
    ]


@pytest.mark.parametrize(
    ("data", "fmt", "message"),
    [
        (b"", "jsonl", "<stdin>: no data rows: the file is empty"),
        (b"\n \r\n\r", "jsonl", "<stdin>: no data rows: the file is empty"),
        (b"a,b\n", "csv", "<stdin>: no data rows: the file has a header and nothing else"),
        (b"a,b\r\n\r\n,\n", "csv", "<stdin>: no data rows: the file has a header and nothing else"),
    ],
)
def test_an_input_without_rows_is_one_clear_error(data: bytes, fmt: str, message: str) -> None:
    """An empty JSONL and a header-only CSV are refused like an empty CSV (issue 11 item 3):
    read_rows still returns on the header, and reading to the end raises InputError."""
    with read_rows("-", fmt=fmt, stdin=io.BytesIO(data)) as rows:
        with pytest.raises(InputError) as err:
            list(rows)
    assert str(err.value) == message


def test_jsonl_lines_end_at_cr_crlf_and_lf() -> None:
    """CR-only line ends split JSONL records as they split CSV rows (issue 12 item 9)."""
    data = b'{"n": 1}\r{"n": 2}\r\n{"n": 3}\n\r{"n": 4}\r'
    assert from_bytes(data, "jsonl") == [
        RawRow(1, {"n": 1}), RawRow(2, {"n": 2}), RawRow(3, {"n": 3}), RawRow(5, {"n": 4})
    ]


def test_deep_jsonl_nesting_is_an_invalid_row() -> None:
    """An object nested ~1000 deep is one invalid row saying why; the next rows read."""
    deep = b'{"a": ' + b"[" * 1000 + b"]" * 1000 + b"}\n"
    ok = b'{"a": ' + b"[" * (MAX_JSON_DEPTH - 1) + b"]" * (MAX_JSON_DEPTH - 1) + b"}\n"
    over = b'{"a": ' + b"[" * MAX_JSON_DEPTH + b"]" * MAX_JSON_DEPTH + b"}\n"
    rows = from_bytes(deep + ok + over + b'{"n": 1}\n', "jsonl")
    reason = f"the object is nested more than {MAX_JSON_DEPTH} levels deep, the most bulkmeet reads"
    assert [r.error for r in rows] == [f"line 1: {reason}", None, f"line 3: {reason}", None]
    assert rows[3] == RawRow(4, {"n": 1})


def test_an_over_long_jsonl_line_is_one_row() -> None:
    """A JSONL line past the cap is one invalid row, and the next line keeps its number."""
    data = b'{"t": "' + b"x" * (2 * MAX_RECORD_CHARS + 7) + b'"}\n{"n": 1}\n'
    rows = from_bytes(data, "jsonl")
    assert rows == [
        RawRow(1, None, f"line 1: the record is longer than {MAX_RECORD_CHARS:,} characters, "
               "the most bulkmeet reads in one row"),
        RawRow(2, {"n": 1}),
    ]


# --- format detection and source errors ----------------------------------------------------


@pytest.mark.parametrize(
    ("source", "fmt", "expected"),
    [
        ("rows.csv", None, "csv"),
        ("ROWS.TSV", None, "csv"),
        ("rows.txt", None, "csv"),
        ("rows.jsonl", None, "jsonl"),
        ("rows.ndjson", None, "jsonl"),
        ("rows.json", None, "jsonl"),
        ("rows.xlsx", None, "xlsx"),
        ("rows.data", "jsonl", "jsonl"),
        ("-", "xlsx", "xlsx"),
    ],
)
def test_detect_format(source: str, fmt: str | None, expected: str) -> None:
    """The format comes from --format when given, else from the extension, case-insensitively."""
    assert detect_format(source, fmt) == expected


@pytest.mark.parametrize(
    ("source", "fmt", "message"),
    [
        ("-", None, "reading from stdin (-) needs --format csv, jsonl or xlsx"),
        ("rows.csv", "parquet", "unknown input format 'parquet': use csv, jsonl or xlsx"),
        (
            "rows.dat",
            None,
            "rows.dat: cannot tell the format from the extension '.dat'; "
            "pass --format csv, jsonl or xlsx",
        ),
        ("rows.xls", None, "rows.xls: old .xls workbooks cannot be read; save it as .xlsx or CSV"),
    ],
)
def test_detect_format_refuses(source: str, fmt: str | None, message: str) -> None:
    """An unknown or missing format is an InputError telling the user what to pass."""
    with pytest.raises(InputError) as caught:
        detect_format(source, fmt)
    assert str(caught.value) == message


def test_source_errors_raise_at_call_time(tmp_path: Path) -> None:
    """Missing file, directory, unknown or non-text encoding: InputError from read_rows itself."""
    missing = tmp_path / "nope.csv"
    cases: list[tuple[Callable[[], object], str]] = [
        (lambda: read_rows(str(missing)), f"input file not found: {missing}"),
        (
            lambda: read_rows(str(tmp_path), fmt="csv"),
            f"input is a directory, not a file: {tmp_path}",
        ),
        (
            lambda: read_rows(str(DATA / "quoted.csv"), encoding="klingon"),
            "unknown encoding 'klingon': use a Python codec name such as utf-8 or cp1252",
        ),
        (
            lambda: read_rows(str(DATA / "quoted.csv"), encoding="rot13"),
            "unknown encoding 'rot13': use a Python codec name such as utf-8 or cp1252",
        ),
        (
            lambda: read_rows(str(DATA / "quoted.csv"), sheet="Sheet1"),
            f"{DATA / 'quoted.csv'}: a sheet can only be chosen in an .xlsx file",
        ),
        (
            lambda: read_rows(str(DATA / "quoted.csv"), delimiter="\\t"),
            "the delimiter must be one character, not '\\\\t'",
        ),
    ]
    for call, message in cases:
        with pytest.raises(InputError) as caught:
            call()
        assert str(caught.value) == message


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "<stdin>: no header row: the file has no data"),
        (b"\n \r\n,,\n", "<stdin>: no header row: the file has no data"),
        (b"a,,c\n1,2,3\n", "<stdin>: line 1: header column 2 is empty; every column needs a name"),
        (
            b"\na, b ,b\n",
            "<stdin>: line 2: header column 3 'b' repeats column 2; names must be unique",
        ),
        (
            b"id,caf\xe9\n",
            "<stdin>: line 1: header column 2: bytes not valid utf-8 (0xE9 at position 4)"
            + EXCEL_HINT,
        ),
    ],
)
def test_bad_header_raises(data: bytes, message: str) -> None:
    """An empty, unnamed, duplicated or undecodable header stops the run with one clear line."""
    with pytest.raises(InputError) as caught:
        read_rows("-", fmt="csv", stdin=io.BytesIO(data))
    assert str(caught.value) == message


# --- streaming and resources ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "head", "lines", "expected"),
    [
        (
            "csv",
            b"title,n\n",
            [b"first,1\n", b"second,2\n"],
            [RawRow(2, {"title": "first", "n": "1"}), RawRow(3, {"title": "second", "n": "2"})],
        ),
        (
            "jsonl",
            b"",
            [b'{"n": 1}\n', b'{"n": 2}\n'],
            [RawRow(1, {"n": 1}), RawRow(2, {"n": 2})],
        ),
    ],
)
def test_rows_come_out_before_the_input_ends(
    fmt: str, head: bytes, lines: list[bytes], expected: list[RawRow]
) -> None:
    """Each row is yielded as soon as its line arrives on a pipe, while the pipe is still open."""
    read_fd, write_fd = os.pipe()
    with os.fdopen(read_fd, "rb") as pipe_in, os.fdopen(write_fd, "wb", buffering=0) as pipe_out:
        pipe_out.write(head)
        rows = read_rows("-", fmt=fmt, stdin=pipe_in)  # needs only the header to return
        out: queue.Queue[RawRow | None] = queue.Queue()

        def consume() -> None:
            for row in rows:
                out.put(row)
            out.put(None)

        consumer = threading.Thread(target=consume, daemon=True)
        consumer.start()
        try:
            for line, row in zip(lines, expected, strict=True):
                pipe_out.write(line)
                assert out.get(timeout=5) == row
        finally:
            pipe_out.close()
        assert out.get(timeout=5) is None
        consumer.join(timeout=5)


class GeneratedStream(io.RawIOBase):
    """A binary stream whose bytes are made on demand: the whole input never exists at once."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._pending = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._pending:
            chunk = next(self._chunks, None)
            if chunk is None:
                return 0
            self._pending = chunk
        size = min(len(buffer), len(self._pending))
        buffer[:size] = self._pending[:size]
        self._pending = self._pending[size:]
        return size


@pytest.mark.parametrize(
    ("fmt", "head", "row"),
    [
        (
            "csv",
            b"title,start,organizer\n",
            b"Meeting %d,2024-05-01T09:30:00Z,user%d@example.com\n",
        ),
        ("jsonl", b"", b'{"title": "Meeting %d", "organizer": "user%d@example.com"}\n'),
    ],
    ids=["csv", "jsonl"],
)
def test_memory_stays_flat(fmt: str, head: bytes, row: bytes) -> None:
    """Reading ~1.5 MB of rows never holds more than a small, fixed amount at once."""
    count, batch = 20_000, 100

    def chunks() -> Iterator[bytes]:
        yield head
        for start in range(0, count, batch):
            yield b"".join(row % (i, i) for i in range(start, start + batch))

    stream = io.BufferedReader(GeneratedStream(chunks()))
    tracemalloc.start()
    try:
        seen = 0
        for raw_row in read_rows("-", fmt=fmt, stdin=stream):
            assert raw_row.fields is not None
            seen += 1
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert seen == count
    assert peak < 256 * 1024, f"peak {peak} bytes while reading {count} rows"


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc/self/fd")
@pytest.mark.parametrize("name", ["quoted.csv", "mixed.jsonl"])
def test_file_is_closed_however_reading_ends(name: str, tmp_path: Path) -> None:
    """The file is released after reading to the end, after close(), and when dropped unread
    (and after the encoding check refuses it)."""
    before = open_fds()
    with pytest.raises(InputError):
        read_rows(str(DATA / "cp1252.csv"))
    assert open_fds() == before
    if name == "mixed.jsonl":  # its line 8 is not UTF-8: the file is refused whole
        data = (DATA / name).read_bytes().replace(b"\xe9", b"e")
        (tmp_path / name).write_bytes(data)
        name = str(tmp_path / name)
    path = str(DATA / name)
    list(read_rows(path))
    assert open_fds() == before
    rows = read_rows(path)
    next(rows)
    assert open_fds() == before + 1
    rows.close()
    assert open_fds() == before
    rows = read_rows(path)
    del rows
    assert open_fds() == before


# --- xlsx ----------------------------------------------------------------------------------


@pytest.fixture
def workbook(tmp_path: Path) -> Path:
    """A workbook with a blank first row, typed cells, gaps, and a second named sheet."""
    from openpyxl import Workbook

    book = Workbook()
    first = book.active
    first.title = "Meetings"
    first.append([])
    first.append([" title ", "start", "duration", "day", "at", "note"])
    first.append(
        ["Kickoff", datetime(2024, 5, 1, 9, 30), 30.0, date(2024, 5, 2), time(10, 15), None]
    )
    first.append([None, None, None])
    first.append(["Review", "2024-05-03", 2.5, None, None, "  spaced  "])
    first.append(["   "])
    first.append(["Too wide", None, None, None, None, None, None, "extra"])
    first.append([None, 7])
    second = book.create_sheet("Invitees")
    second.append(["email", "count"])
    second.append(["ann@example.com", 2])
    path = tmp_path / "meetings.xlsx"
    book.save(path)
    return path


XLSX_FIRST_SHEET = [
    RawRow(
        3,
        {
            "title": "Kickoff",
            "start": datetime(2024, 5, 1, 9, 30),
            "duration": 30,
            "day": datetime(2024, 5, 2, 0, 0),  # Excel stores dates as date-times
            "at": time(10, 15),
            "note": "",
        },
    ),
    RawRow(
        5,
        {
            "title": "Review",
            "start": "2024-05-03",
            "duration": 2.5,
            "day": "",
            "at": "",
            "note": "  spaced  ",
        },
    ),
    RawRow(7, None, "line 7: expected 6 fields as in the header, found 8"),
    RawRow(8, {"title": "", "start": 7, "duration": "", "day": "", "at": "", "note": ""}),
]


def test_xlsx_first_sheet(workbook: Path) -> None:
    """The first sheet is read by default, its cells typed and its rows numbered as in Excel.

    The header is the first non-empty row; empty rows are skipped; integral floats become int,
    dates stay objects, empty cells are "", and a value beyond the header is an error row.
    """
    with read_rows(str(workbook)) as rows:
        assert rows.columns == ("title", "start", "duration", "day", "at", "note")
        got = list(rows)
    assert got == XLSX_FIRST_SHEET
    assert type(got[0].fields["duration"]) is int  # type: ignore[index]


def test_xlsx_named_sheet(workbook: Path) -> None:
    """sheet= picks a sheet by its name."""
    assert rows_of(workbook, sheet="Invitees") == [
        RawRow(2, {"email": "ann@example.com", "count": 2})
    ]


def test_xlsx_from_stdin_and_without_the_extension(workbook: Path, tmp_path: Path) -> None:
    """An xlsx on stdin, or in a file not named .xlsx, reads with --format xlsx."""
    data = workbook.read_bytes()
    assert from_bytes(data, "xlsx") == XLSX_FIRST_SHEET
    renamed = tmp_path / "export.bin"
    renamed.write_bytes(data)
    assert rows_of(renamed, fmt="xlsx") == XLSX_FIRST_SHEET


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc/self/fd")
def test_xlsx_workbook_is_closed(workbook: Path) -> None:
    """The workbook's file is released after reading to the end and after an early close()."""
    before = open_fds()
    list(read_rows(str(workbook)))
    assert open_fds() == before
    rows = read_rows(str(workbook))
    next(rows)
    rows.close()
    assert open_fds() == before


def test_xlsx_source_errors(workbook: Path, tmp_path: Path) -> None:
    """Unknown sheet (listing the names), not a zip, empty sheet: InputError naming the file."""
    with pytest.raises(InputError) as caught:
        read_rows(str(workbook), sheet="Calls")
    assert (
        str(caught.value) == f"{workbook}: no sheet named 'Calls' (sheets: 'Meetings', 'Invitees')"
    )

    text = tmp_path / "fake.xlsx"
    text.write_text("title,start\n")
    with pytest.raises(InputError) as caught:
        read_rows(str(text))
    assert str(caught.value) == f"{text}: not an .xlsx workbook (it is not a zip archive)"

    from openpyxl import Workbook

    empty = tmp_path / "empty.xlsx"
    Workbook().save(empty)
    with pytest.raises(InputError) as caught:
        read_rows(str(empty))
    assert str(caught.value) == f"{empty}, sheet 'Sheet': no header row: the sheet is empty"


def test_xlsx_without_openpyxl(workbook: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without openpyxl installed, an xlsx source says what to install."""
    monkeypatch.setitem(sys.modules, "openpyxl", None)
    with pytest.raises(InputError) as caught:
        read_rows(str(workbook))
    assert str(caught.value) == "reading .xlsx needs openpyxl: pip install openpyxl"


# --- properties ----------------------------------------------------------------------------

_NEWLINE = re.compile(r"\r\n|\r|\n")
header_names = st.lists(
    st.text(min_size=1, max_size=8)
    .map(str.strip)
    .filter(lambda name: bool(name) and not name.startswith("\ufeff")),
    min_size=1,
    max_size=5,
    unique=True,
)


@st.composite
def tables(draw: st.DrawFn) -> tuple[list[str], list[list[str]]]:
    header = draw(header_names)
    row = st.lists(st.text(max_size=10), min_size=len(header), max_size=len(header))
    filled = row.filter(lambda cells: bool("".join(cells).strip()))
    body = draw(st.lists(filled, min_size=1, max_size=8))  # no row at all: an InputError
    return header, body


@PROPERTY
@given(table=tables(), delimiter=st.sampled_from([",", ";", "\t"]))
def test_csv_round_trip(table: tuple[list[str], list[list[str]]], delimiter: str) -> None:
    """Whatever csv.writer writes, read_rows gives back: same fields, one row each, right lines."""
    header, body = table
    out = io.StringIO(newline="")
    writer = csv.writer(out, delimiter=delimiter)
    writer.writerow(header)
    expected = []
    for cells in body:
        line = len(_NEWLINE.findall(out.getvalue())) + 1
        writer.writerow(cells)
        expected.append(RawRow(line, dict(zip(header, cells, strict=True))))
    data = out.getvalue().encode("utf-8")
    assert from_bytes(data, "csv", delimiter=delimiter) == expected


@PROPERTY
@given(
    names=st.lists(
        st.from_regex(r"[A-Za-z]([A-Za-z0-9 _.-]{0,6}[A-Za-z0-9])?", fullmatch=True),
        min_size=2,
        max_size=6,
        unique=True,
    ),
    delimiter=st.sampled_from([",", ";", "\t"]),
    body=st.text(max_size=200),
)
def test_delimiter_is_sniffed_from_the_header(names: list[str], delimiter: str, body: str) -> None:
    """With two or more plain column names, the header alone decides the delimiter."""
    data = (delimiter.join(names) + "\n" + body).encode("utf-8")
    with read_rows("-", fmt="csv", stdin=io.BytesIO(data)) as rows:
        assert rows.delimiter == delimiter
        assert rows.columns == tuple(names)


def check_rows(rows: list[RawRow], last_line: int) -> None:
    lines = [row.line for row in rows]
    assert lines == sorted(set(lines))
    for row in rows:
        assert 1 <= row.line <= last_line
        assert (row.fields is None) == (row.error is not None)
        if row.error is not None:
            assert row.error.startswith(f"line {row.line}")


@PROPERTY
@given(body=st.one_of(st.binary(max_size=300), st.text(max_size=300).map(str.encode)))
def test_csv_never_raises_on_any_body(body: bytes) -> None:
    """Any bytes after a valid header give rows or error rows, never an exception."""
    data = b"a,b,c\n" + body
    rows = from_bytes(data, "csv")
    check_rows(rows, last_line=len(_NEWLINE.findall(data.decode("utf-8", "replace"))) + 1)


@PROPERTY
@given(data=st.binary(max_size=300))
def test_csv_any_bytes_raise_only_input_error(data: bytes) -> None:
    """Arbitrary bytes, header included, raise at most InputError (at call), never mid-stream."""
    try:
        rows = read_rows("-", fmt="csv", stdin=io.BytesIO(data))
    except InputError:
        return
    with rows:
        got: list[RawRow] = []
        try:
            got.extend(rows)
        except InputError as exc:  # the one mid-stream error: no row at all
            assert not got and ": no data rows: " in str(exc)
        check_rows(got, last_line=len(_NEWLINE.findall(data.decode("utf-8", "replace"))) + 1)


@PROPERTY
@given(data=st.binary(max_size=300))
def test_jsonl_one_row_per_non_blank_line(data: bytes) -> None:
    """Any bytes as JSONL: exactly one RawRow per non-blank physical line (ended by \\n, \\r\\n
    or \\r, as in CSV), at that line."""
    rows = from_bytes(data, "jsonl")
    body = data[3:] if data.startswith(b"\xef\xbb\xbf") else data
    lines = re.split(rb"\r\n|\r|\n", body)
    expected = [number for number, raw in enumerate(lines, 1) if raw.strip()]
    assert [row.line for row in rows] == expected
    check_rows(rows, last_line=len(lines))


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=10),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)
KINDS = {list: "array", str: "string", int: "number", float: "number", bool: "boolean"}


@PROPERTY
@given(
    values=st.lists(
        st.tuples(json_values, st.sampled_from([b"\n", b"\r\n", b"\n\n", b"\n  \r\n"])),
        max_size=8,
    )
)
def test_jsonl_round_trip(values: list[tuple[Any, bytes]]) -> None:
    """Objects come back as fields, other JSON values as 'expected a JSON object' errors."""
    data = b""
    expected = []
    line = 1
    for value, ending in values:
        data += orjson.dumps(value) + ending
        if type(value) is dict:
            expected.append(RawRow(line, value))
        else:
            kind = "null" if value is None else KINDS[type(value)]
            expected.append(
                RawRow(line, None, f"line {line}: expected a JSON object, found {kind}")
            )
        line += ending.count(b"\n")
    assert from_bytes(data, "jsonl") == expected


def test_field_count_error_says_1_field() -> None:
    """Plurals right: a one-column header expects '1 field', not '1 fields'."""
    assert from_bytes(b"a\nx,y\n", "csv") == [
        RawRow(2, None, "line 2: expected 1 field as in the header, found 2")
    ]
