"""Fuzz (issue 12): reader + mapping + journal over hostile CSV and JSONL.

Cells hold newlines, CRs, quotes, delimiters and whole CSV-looking rows carrying marker
externalIds. Whatever the input, no exception escapes, every non-blank record gets exactly one
final record in the results file (bulkmeet/results.py's writer, as run uses it), and no record
carries a marker that appeared only inside a cell.
"""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bulkmeet.errors import InputError
from bulkmeet.mapping import Mapper
from bulkmeet.models import Record, Status
from bulkmeet.reader import read_rows
from bulkmeet.results import ResultsWriter
from bulkmeet.triage import Triage

from .helpers import HEADER, finals

_NEWLINE = re.compile(r"\r\n|\r|\n")
MAPPER = Mapper(timezone="Europe/Berlin")


def smuggled(n: int, delimiter: str) -> str:
    """A row that would be valid if it escaped its cell, with a marker externalId."""
    cells = ["2026-12-01T09:00:00Z", "2026-12-01T09:30:00Z", "Smuggled", "ceo@example.com",
             f"marker-{n}", "victim@example.com"]
    return delimiter.join(cells)


pieces = st.sampled_from(["\n", "\r\n", "\r", '"', '""', ",", ";", "\t", " ", "x", "Zoë",
                          "2026-12-01T09:00:00Z", "a@b.example"])


@st.composite
def cell_text(draw: st.DrawFn, delimiter: str) -> str:
    parts = draw(st.lists(st.one_of(
        pieces,
        st.integers(0, 9).map(lambda n: f"\n{smuggled(n, delimiter)}\n"),
        st.just("y" * 140_000),  # past csv's default field limit, where the reader lost its place
    ), max_size=6))
    return "".join(parts)


@st.composite
def csv_inputs(draw: st.DrawFn) -> tuple[bytes, int]:
    """A CSV with the API-field header and rows whose title (or any cell) holds hostile text;
    the count of non-blank records."""
    delimiter = draw(st.sampled_from([",", ";", "\t"]))
    ending = draw(st.sampled_from(["\r\n", "\n", "\r"]))
    n = draw(st.integers(1, 6))
    out = io.StringIO(newline="")
    writer = csv.writer(out, delimiter=delimiter, lineterminator=ending,
                        quoting=csv.QUOTE_ALL if draw(st.booleans()) else csv.QUOTE_MINIMAL)
    writer.writerow(HEADER)
    rows = 0
    for i in range(n):
        cells = [draw(cell_text(delimiter)) for _ in HEADER]
        cells[4] = f"real-{i}"  # the real externalId is never blank, so no record is blank
        if ending == "\r" or "\r" in "".join(cells):
            writer = csv.writer(out, delimiter=delimiter, lineterminator=ending,
                                quoting=csv.QUOTE_ALL)  # a bare CR must be quoted
        writer.writerow(cells)
        rows += 1
    return out.getvalue().encode("utf-8"), rows


def journal(data: bytes, fmt: str, tmp: Path) -> tuple[list[dict[str, Any]], str | None]:
    """Read, map and record every row as run's reader stage does; the results file's final
    records, and the InputError text if the input as a whole was refused."""
    out = tmp / "r.jsonl"
    writer = ResultsWriter(str(out), fresh=True)
    triage = Triage(MAPPER)
    refused = None
    try:
        with read_rows("-", fmt=fmt, stdin=io.BytesIO(data)) as raws:
            MAPPER.check_header(raws.columns, "-")
            for raw in raws:
                verdict = triage(raw)
                if verdict.record is not None:
                    writer.record(verdict.record)
                else:  # would be sent: run journals `sending`, then the outcome
                    row = verdict.row
                    writer.sending(row, 1, "h")
                    writer.record(Record(row.line, row.key, Status.CREATED, meeting_id="m-1",
                                         attempts=1), row.payload)
    except InputError as exc:
        refused = str(exc)
    finally:
        writer.close()
        triage.close()
    return (finals(out) if out.exists() else []), refused


FUZZ = settings(max_examples=60, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])


@FUZZ
@given(data=csv_inputs())
def test_csv_one_record_per_row_and_nothing_from_inside_a_cell(
        tmp_path: Path, data: tuple[bytes, int]) -> None:
    blob, rows = data
    records, refused = journal(blob, "csv", tmp_path)
    assert refused is None, refused
    assert len(records) == rows
    assert len({r["line"] for r in records}) == rows
    for record in records:
        assert not str(record["key"]).startswith("marker-"), record
        payload = record.get("payload") or {}
        assert not str(payload.get("externalId", "")).startswith("marker-"), record


json_cells = st.one_of(st.text(max_size=8), pieces, st.integers(-(2**63), 2**63 - 1),
                       st.recursive(st.none() | st.booleans(), lambda inner: st.lists(inner,
                                    max_size=2) | st.dictionaries(st.text(max_size=3), inner,
                                                                  max_size=2), max_leaves=4))


@FUZZ
@given(objects=st.lists(st.dictionaries(st.sampled_from(HEADER), json_cells, max_size=6),
                        min_size=1, max_size=6),
       endings=st.lists(st.sampled_from([b"\n", b"\r\n", b"\r"]), min_size=6, max_size=6),
       depth=st.integers(0, 40))
def test_jsonl_one_record_per_line_whatever_it_holds(
        tmp_path: Path, objects: list[dict[str, object]], endings: list[bytes],
        depth: int) -> None:
    lines = [orjson.dumps({**o, "externalId": f"real-{i}"}) for i, o in enumerate(objects)]
    lines[0] = lines[0][:-1] + b', "deep": ' + b"[" * depth + b"]" * depth + b"}"
    blob = b"".join(line + ending for line, ending in zip(lines, endings, strict=False))
    records, refused = journal(blob, "jsonl", tmp_path)
    assert refused is None, refused
    assert sorted(r["line"] for r in records) == list(range(1, len(objects) + 1))
    assert all(not str(r["key"]).startswith("marker-") for r in records)
