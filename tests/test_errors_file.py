"""--errors-out writes the format it promises: a real workbook for .xlsx, which retry reads back;
nothing to fix writes no file."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner
from openpyxl import Workbook, load_workbook

from bulkmeet.cli import main

from .helpers import HEADER, SANDBOX, last_by_key, meeting_row


def _xlsx(path: Path, rows: list[list[str]]) -> Path:
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(HEADER)
    for row in rows:
        sheet.append(row)
    for cells in sheet.iter_rows(min_row=2):
        for cell in cells:
            cell.data_type = "s"  # text as typed, even "=1+1"
    book.save(path)
    return path


def test_errors_out_xlsx_is_a_workbook_that_retry_reads_back(tmp_path: Path) -> None:
    rows = [meeting_row(0), meeting_row(1, invalid=True),
            meeting_row(2, organizer="x@unknown.example")]
    rows[0][2] = "=HYPERLINK(\"http://evil.example\")"  # a title that looks like a formula
    rows[1][2] = "=1+1"
    src = _xlsx(tmp_path / "in.xlsx", rows)
    out = tmp_path / "r.jsonl"
    fix = tmp_path / "fix.xlsx"
    runner = CliRunner()
    res = runner.invoke(main, ["run", str(src), *SANDBOX, "--out", str(out),
                               "--errors-out", str(fix)])
    assert res.exit_code == 1, res.output
    assert f"  2 rows to fix written to {fix}" in res.stderr
    book = load_workbook(fix)
    sheet = book.active
    assert sheet is not None
    got = [list(r) for r in sheet.iter_rows(values_only=True)]
    assert got[0] == [*HEADER, "error"]
    assert [r[4] for r in got[1:]] == ["ext-1", "ext-2"]
    assert got[1][2] == "=1+1"  # kept as text, never a formula
    assert sheet.cell(2, 3).data_type == "s"
    assert "endTime" in str(got[1][-1]) and "No Gong user" in str(got[2][-1])
    # Fix both rows in the workbook and feed it back in.
    sheet.cell(2, 2).value = str(got[1][0]).replace(":00:00Z", ":45:00Z")
    sheet.cell(3, 4).value = "ana@seller.example"
    book.save(fix)
    res = runner.invoke(main, ["retry", str(out), "--input", str(fix), *SANDBOX])
    assert res.exit_code == 0, res.output
    assert {k: v["status"] for k, v in last_by_key(out).items()} == {
        "ext-0": "created", "ext-1": "created", "ext-2": "created"}


def test_nothing_to_fix_says_so_and_writes_no_file(tmp_path: Path) -> None:
    src = _xlsx(tmp_path / "in.xlsx", [meeting_row(0)])
    fix = tmp_path / "fix.xlsx"
    res = CliRunner().invoke(main, ["run", str(src), *SANDBOX, "--errors-out", str(fix)])
    assert res.exit_code == 0, res.output
    assert f"  no row to fix: {fix} not written" in res.stderr
    assert not fix.exists()


def test_one_row_to_fix_is_singular(tmp_path: Path) -> None:
    src = _xlsx(tmp_path / "in.xlsx", [meeting_row(0, invalid=True)])
    fix = tmp_path / "fix.csv"
    res = CliRunner().invoke(main, ["run", str(src), *SANDBOX, "--errors-out", str(fix)])
    assert res.exit_code == 1, res.output
    assert f"  1 row to fix written to {fix}" in res.stderr
    assert fix.read_text(encoding="utf-8").startswith(",".join(HEADER) + ",error")
