"""Small things users expect: a fast --help, shell completion, help that names what it takes,
the credentials check before the preflight lines."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from bulkmeet.cli import main

from .helpers import meeting_row, write_csv

REPO = Path(__file__).resolve().parents[1]


def test_importing_the_cli_loads_no_network_or_display_library() -> None:
    """`bulkmeet --help` starts fast: aiohttp, rich, openpyxl come in only when a command
    needs them."""
    code = ("import sys, bulkmeet.cli; "
            "print(','.join(m for m in ('aiohttp', 'aiolimiter', 'rich', 'openpyxl') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=REPO, check=True)
    assert out.stdout.strip() == ""


def test_bash_completion_script_generates() -> None:
    env = {**os.environ, "_BULKMEET_COMPLETE": "bash_source"}
    out = subprocess.run([sys.executable, "-c", "from bulkmeet.cli import main; "
                          "main(prog_name='bulkmeet')"], capture_output=True, text=True,
                         cwd=REPO, env=env)
    assert out.returncode == 0, out.stderr
    assert "_bulkmeet_completion()" in out.stdout
    assert "complete " in out.stdout and " bulkmeet" in out.stdout


def test_top_level_help_names_xlsx_and_completion() -> None:
    res = CliRunner().invoke(main, ["--help"])
    assert res.exit_code == 0
    assert "CSV, JSONL or XLSX" in res.output
    assert "_BULKMEET_COMPLETE=bash_source bulkmeet" in res.output


def test_run_help_names_the_results_file_for_stdin() -> None:
    res = CliRunner().invoke(main, ["run", "--help"], terminal_width=200)
    assert "bulkmeet-results.jsonl in the working folder for stdin" in res.output


def test_missing_credentials_come_before_any_preflight_line(tmp_path: Path) -> None:
    src = write_csv(tmp_path / "in.csv", [meeting_row(0)])
    res = CliRunner().invoke(main, ["run", str(src)])
    assert res.exit_code == 2
    assert "preflight" not in res.stderr
    assert res.stderr.startswith("bulkmeet: error: no credentials"), res.stderr


@pytest.mark.parametrize("command", ["run", "validate", "check", "retry", "plan", "sync",
                                     "undo", "sandbox"])
def test_every_command_help_is_fast_to_reach(command: str) -> None:
    res = CliRunner().invoke(main, [command, "--help"])
    assert res.exit_code == 0, res.output


def test_counts_of_one_are_singular(tmp_path: Path) -> None:
    from .helpers import SANDBOX

    src = write_csv(tmp_path / "in.csv", [meeting_row(0)])
    res = CliRunner().invoke(main, ["run", str(src), *SANDBOX])
    assert res.exit_code == 0, res.output
    assert "preflight: 1 row; 1 to send" in res.stderr
    assert "bulkmeet: 1 row read in " in res.stderr
    assert "  1 request; " in res.stderr  # no rate from one request
    res = CliRunner().invoke(main, ["validate", str(src)])
    assert "bulkmeet: 1 row read: 1 valid" in res.output


def test_the_summary_says_skipped_only_for_rows_done_before() -> None:
    """Rows an earlier run created and rows Gong refused before are both settled with no new
    record; the summary's 'skipped: already done' counts the first only (the refused have a
    line of their own)."""
    from bulkmeet.cli.common import summary_lines
    from bulkmeet.engine import RunStats

    stats = RunStats(rows_read=5, settled=5, refused_before=2, skipped=3)
    lines = summary_lines(stats, "out.jsonl")
    assert "  3 skipped: already done in an earlier run, nothing sent" in lines
    assert any(line.startswith("  2 refused by Gong in an earlier run") for line in lines)
