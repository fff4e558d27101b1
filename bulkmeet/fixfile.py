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
    """Write every input row whose last outcome needs attention; returns how many."""
    if input_path == "-":
        raise InputError("--errors-out needs the input as a file, not stdin (it is read again)")
    state = read_results(results_path)
    mapper = Mapper.from_config(cfg)
    rows = read_rows(input_path, fmt=cfg.format, delimiter=cfg.delimiter, encoding=cfg.encoding,
                     sheet=sheet)
    as_csv = rows.format != "jsonl" or out_path.lower().endswith(".csv")
    written = 0
    with open(out_path, "w", encoding="utf-8", newline="") as f, rows:
        writer: Any = None
        if as_csv:
            columns = [*(rows.columns or ()), "error"]
            writer = csv.writer(f, delimiter=rows.delimiter or ",", lineterminator="\r\n")
            writer.writerow(columns)
        for raw in rows:
            row = mapper.map(raw)
            ks = state.keys.get(row.key)
            last = ks.last if ks is not None else None
            if last is None or last.status not in NEEDS_FIXING:
                continue
            if last.status is Status.DUPLICATE and last.line != row.line:
                continue  # only the duplicate row itself, not the first of the pair
            error = " | ".join(last.errors) or last.status.value
            fields = raw.fields or {}
            if writer is not None:
                cells = [_cell(fields.get(c)) for c in rows.columns or ()]
                writer.writerow([neutralise(c) for c in [*cells, error]])
            else:
                f.write(orjson.dumps({**fields, "error": error}, default=str).decode() + "\n")
            written += 1
    return written


def _cell(value: Any) -> str:
    return "" if value is None else str(value)


def default_errors_path(input_path: str) -> str:
    p = Path(input_path)
    return str(p.with_name(p.stem + ".errors" + (p.suffix if p.suffix != ".xlsx" else ".csv")))
