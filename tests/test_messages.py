"""Messages a user reads: hints name the flag they would type (on the commands that take it)
next to the config key, and counts agree with their nouns (issue 11, item 9)."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from bulkmeet.cli import main
from bulkmeet.cli.common import summary_lines
from bulkmeet.engine import RunStats
from bulkmeet.words import agree, plural

from .helpers import SANDBOX, meeting_row, write_csv


def _csv(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "in.csv"
    path.write_text(text, encoding="utf-8")
    return path


def test_plural_and_agree() -> None:
    assert [plural(n, "row") for n in (0, 1, 2)] == ["0 rows", "1 row", "2 rows"]
    assert plural(1, "entry", "entries") == "1 entry" and plural(3, "entry", "entries") == (
        "3 entries")
    assert agree(1, "is", "are") == "is" and agree(0, "is", "are") == "are"


# --- hints name the flag ---------------------------------------------------------------------


def test_a_row_without_an_organizer_email_names_organizer_flag(tmp_path: Path) -> None:
    src = _csv(tmp_path, "startTime,endTime,title,organizerEmail,externalId,invitees\n"
                         "2026-12-01T09:00:00Z,2026-12-01T10:00:00Z,t,Ana,e1,b@x.example\n")
    res = CliRunner().invoke(main, ["validate", str(src)])
    assert res.exit_code == 1
    assert "set mapping.organizerEmail: {const: you@example.com} or pass --organizer " \
        "you@example.com" in res.stdout


def test_a_time_without_a_zone_names_timezone_flag(tmp_path: Path) -> None:
    src = _csv(tmp_path, "startTime,endTime,title,organizerEmail,externalId,invitees\n"
                         "2026-12-01 09:00,2026-12-01 10:00,t,a@x.example,e1,b@x.example\n")
    res = CliRunner().invoke(main, ["validate", str(src)])
    assert res.exit_code == 2
    assert "or set `timezone: " in res.stderr
    assert "--timezone " in res.stderr


def test_a_preset_without_an_organizer_names_organizer_flag_on_run_and_check(
        tmp_path: Path) -> None:
    """The google preset has no organizer column: run, check and validate say so, naming the
    flag and the config key."""
    cfg = tmp_path / "c.yaml"
    cfg.write_text("mapping:\n  preset: google\n")
    src = Path(__file__).resolve().parents[1] / "samples" / "google.csv"
    for command in (["run", *SANDBOX], ["check", *SANDBOX], ["validate"]):
        res = CliRunner().invoke(main, [command[0], str(src), "--config", str(cfg),
                                        *command[1:]])
        assert res.exit_code == 2, res.output
        assert "pass --organizer you@example.com, or set mapping.organizerEmail: " \
               "{const: you@example.com}" in res.stderr, res.stderr


def test_an_unknown_preset_in_the_config_names_preset_flag(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("mapping:\n  preset: gmail\n")
    src = write_csv(tmp_path / "in.csv", [meeting_row(0)])
    res = CliRunner().invoke(main, ["validate", str(src), "--config", str(cfg)])
    assert res.exit_code == 2
    assert res.stderr.rstrip().endswith("(or --preset NAME)")


def test_the_zone_error_suggests_this_computers_zone_as_the_flag(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Never applied, only suggested: the flag with this computer's zone as its value."""
    monkeypatch.setenv("TZ", "Europe/Berlin")
    src = Path(__file__).resolve().parents[1] / "samples" / "google.csv"
    res = CliRunner().invoke(main, ["validate", str(src), "--preset", "google",
                                    "--organizer", "ana@seller.example"])
    assert res.exit_code == 2
    assert "(this computer's zone is Europe/Berlin: --timezone Europe/Berlin)" in res.stderr
    assert "note:" not in res.stderr


# --- plurals -----------------------------------------------------------------------------------


def test_run_summary_counts_agree() -> None:
    s = RunStats()
    s.rows_read = s.requests = 1
    s.pauses, s.unrecorded = 1, 1
    lines = summary_lines(s, "r.jsonl")
    assert "paused 1 time for 0.0s" in lines[1]
    assert lines[2].startswith("  1 outcome could not be written to the results file;")
    s.pauses, s.unrecorded = 2, 2
    lines = summary_lines(s, "r.jsonl")
    assert "paused 2 times for 0.0s" in lines[1]
    assert lines[2].startswith("  2 outcomes could not be written")


def test_no_message_says_s_in_parentheses() -> None:
    """The `(s)` wordings are gone from every message of the package."""
    root = Path(__file__).resolve().parents[1] / "bulkmeet"
    found = [f"{p.relative_to(root)}:{n}" for p in root.rglob("*.py")
             for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1)
             if any(w in line for w in ("row(s)", "meeting(s)", "time(s)", "organizer(s)",
                                        "outcome(s)", "delete(s)"))]
    assert found == []
