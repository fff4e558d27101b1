"""The errors file: the rows that did not make it, in the input's own format and columns plus an
`error` column, ready to fix in a spreadsheet and feed back in (`bulkmeet retry --input`)."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import orjson

from .config import Config
from .errors import InputError
from .mapping import Mapper
from .models import Status
from .reader import read_rows
from .results import neutralise, read_results

NEEDS_FIXING = frozenset({
    Status.INVALID, Status.FAILED, Status.NOT_SENT, Status.DEFERRED, Status.UNCERTAIN,
    Status.DUPLICATE,
})


def write_errors_file(cfg: Config, input_path: str, results_path: str, out_path: str, *,
                      sheet: str | None = None) -> int:
    """Write every input row whose last outcome needs attention; returns how many.

    The file's format is its extension's: .xlsx a workbook, .csv CSV, .jsonl JSON lines; any
    other name takes the input's format (an XLSX input: a workbook). With no row to fix no file
    is written (an empty one would look like a run that left work to do)."""
    if input_path == "-":
        raise InputError("--errors-out needs the input as a file, not stdin (it is read again)")
    state = read_results(results_path)
    mapper = Mapper.from_config(cfg)
    rows = read_rows(input_path, fmt=cfg.format, delimiter=cfg.delimiter, encoding=cfg.encoding,
                     sheet=sheet)
    suffix = Path(out_path).suffix.lower()
    kind = {".xlsx": "xlsx", ".csv": "csv", ".jsonl": "jsonl"}.get(suffix, rows.format)
    sink: _Sink | None = None
    written = 0
    try:
        with rows:
            for raw in rows:
                row = mapper.map(raw)
                ks = state.keys.get(row.key)
                last = ks.last if ks is not None else None
                if last is None or last.status not in NEEDS_FIXING:
                    continue
                if ks is not None and ks.exists:
                    continue  # its meeting exists (a corrected copy was sent): nothing to fix
                if last.status is Status.DUPLICATE and last.line != row.line:
                    continue  # only the duplicate row itself, not the first of the pair
                if sink is None:
                    sink = _Sink(out_path, kind, [*(rows.columns or ()), "error"],
                                 rows.delimiter or ",")
                fields = raw.fields or {}
                sink.add(fields, " | ".join(last.errors) or last.status.value)
                written += 1
    finally:
        if sink is not None:
            sink.close()
    return written


class _Sink:
    """The errors file, opened at its first row."""

    def __init__(self, path: str, kind: str, columns: list[str], delimiter: str) -> None:
        self.path, self.kind, self.columns = path, kind, columns
        self._book: Any = None
        self._file: Any = None
        if kind == "xlsx":
            from openpyxl import Workbook

            self._book = Workbook(write_only=True)
            self._sheet = self._book.create_sheet("to fix")
            self._sheet.append(columns)
            return
        self._file = open(path, "w", encoding="utf-8", newline="")  # noqa: SIM115
        if kind != "jsonl":
            self._csv = csv.writer(self._file, delimiter=delimiter, lineterminator="\r\n")
            self._csv.writerow(columns)

    def add(self, fields: dict[str, Any], error: str) -> None:
        if self.kind == "xlsx":
            from openpyxl.cell import WriteOnlyCell

            cells = []
            for value in [*(fields.get(c) for c in self.columns[:-1]), error]:
                cell = WriteOnlyCell(self._sheet, value)
                if isinstance(value, str):
                    cell.data_type = "s"  # text stays text: "=1+1" is never a formula
                cells.append(cell)
            self._sheet.append(cells)
        elif self.kind == "jsonl":
            self._file.write(orjson.dumps({**fields, "error": error}, default=str).decode() + "\n")
        else:
            cells = [_cell(fields.get(c)) for c in self.columns[:-1]]
            self._csv.writerow([neutralise(c) for c in [*cells, error]])

    def close(self) -> None:
        if self._book is not None:
            self._book.save(self.path)
        if self._file is not None:
            self._file.close()


def _cell(value: Any) -> str:
    return "" if value is None else str(value)


def default_errors_path(input_path: str) -> str:
    p = Path(input_path)
    return str(p.with_name(p.stem + ".errors" + p.suffix))
