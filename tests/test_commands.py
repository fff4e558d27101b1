"""Every command maps and sends the same way: one config loader, one set of shared options, one
engine (issue 13). Commands run in-process against the sandbox on a loopback port."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import CliRunner, Result

from bulkmeet.cli import main
from bulkmeet.sandbox import SandboxSettings, SandboxThread

from .helpers import CREDS, SANDBOX, entries, finals

# A sheet whose times have no zone and whose guests are names: it maps only with the
# directory (a path relative to the config file) and a zone (--timezone).
SHEET = """Subject,Start,End,Owner,Guests,Id
Kick-off,2026-12-14 09:00,2026-12-14 09:30,ana@seller.example,Raj Patel,k1
Review,2026-12-15 14:00,2026-12-15 15:00,ana@seller.example,Raj Patel; Lena Ford,k2
"""
CONFIG = """mapping:
  title: Subject
  startTime: Start
  endTime: End
  organizerEmail: Owner
  invitees: Guests
  externalId: Id
  invitee_directory: people.csv
"""
PEOPLE = "name,email\nRaj Patel,raj@client.example\nLena Ford,lena@client.example\n"


@pytest.fixture
def layout(tmp_path: Path) -> tuple[Path, Path]:
    """The sheet in the working folder; the config and its directory in conf/."""
    conf = tmp_path / "conf"
    conf.mkdir()
    (conf / "cfg.yaml").write_text(CONFIG)
    (conf / "people.csv").write_text(PEOPLE)
    sheet = tmp_path / "sheet.csv"
    sheet.write_text(SHEET)
    return sheet, conf / "cfg.yaml"


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    for k, v in CREDS.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    yield


def invoke(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


def sent_payloads(results: Path) -> dict[str, dict[str, Any]]:
    """The payload of each key's request, from the `sending` entries of a results file."""
    return {e["key"]: e["payload"] for e in entries(results) if e["status"] == "sending"}


def test_run_retry_and_sync_map_a_config_the_same_way(layout: tuple[Path, Path], env: None,
                                                      tmp_path: Path) -> None:
    """The same config and flags give the same payloads under run, retry --input and sync,
    with the directory read from the config's folder and the zone from --timezone."""
    sheet, cfg = layout
    flags = ["--config", str(cfg), "--timezone", "Europe/Berlin", *SANDBOX]
    res = invoke("run", str(sheet), "--out", str(tmp_path / "run.jsonl"), *flags)
    assert res.exit_code == 0, res.output
    by_run = sent_payloads(tmp_path / "run.jsonl")
    assert by_run["k1"]["startTime"] == "2026-12-14T09:00:00+01:00"
    assert by_run["k2"]["invitees"] == [
        {"email": "raj@client.example", "displayName": "Raj Patel"},
        {"email": "lena@client.example", "displayName": "Lena Ford"}]

    # retry --input: an earlier results file with the rows failed, then the sheet again
    failed = tmp_path / "retry.jsonl"
    failed.write_bytes(b"".join(orjson.dumps({
        "line": n, "key": k, "status": "not_sent", "errors": ["stopped"]}) + b"\n"
        for n, k in ((2, "k1"), (3, "k2"))))
    res = invoke("retry", str(failed), "--input", str(sheet), *flags)
    assert res.exit_code == 0, res.output
    assert sent_payloads(failed) == by_run

    res = invoke("sync", str(sheet), "--ledger", str(tmp_path / "ledger.jsonl"),
                 "--out", str(tmp_path / "sync.jsonl"), *flags)
    assert res.exit_code == 0, res.output
    assert sent_payloads(tmp_path / "sync.jsonl") == by_run


def test_plan_takes_the_input_options(layout: tuple[Path, Path], env: None,
                                      tmp_path: Path) -> None:
    """plan reads the config's directory from its folder and accepts --timezone: both rows are
    creates, none invalid; without the zone plan stops on the file (exit 2) and the error
    names the flag, which plan accepts."""
    sheet, cfg = layout
    ledger = str(tmp_path / "ledger.jsonl")
    res = invoke("plan", str(sheet), "--config", str(cfg), "--ledger", ledger,
                 "--timezone", "Europe/Berlin")
    assert res.exit_code == 1, res.output  # 1: a sync would send something
    assert "2 to create" in res.stdout and "invalid" not in res.stdout.split("\n")[0]
    res = invoke("plan", str(sheet), "--config", str(cfg), "--ledger", ledger)
    assert res.exit_code == 2 and "has no UTC offset" in res.stderr
    assert "--timezone" in res.stderr


@pytest.mark.parametrize("command, shared", [
    ("run", ("input", "sending", "output")),
    ("retry", ("input", "sending", "output")),
    ("sync", ("input", "sending", "output")),
    ("undo", ("config", "sending", "output")),
    ("plan", ("input", "log")),
    ("validate", ("input", "log")),
    ("check", ("input", "sending", "log")),
])
def test_every_command_accepts_the_shared_options(command: str, shared: tuple[str, ...]) -> None:
    """Each command takes the option groups that make sense for it, spelled the same way."""
    groups = {
        "config": ["--config"],
        "input": ["--config", "--preset", "--organizer", "--timezone", "--format", "--sheet"],
        "sending": ["--rate", "--concurrency", "--insecure", "--sandbox", "--sandbox-rate"],
        "output": ["--quiet", "--status-interval", "--junit", "--summary", "--log-level",
                   "--log-format"],
        "log": ["--log-level", "--log-format"],
    }
    res = invoke(command, "--help")
    assert res.exit_code == 0
    for group in shared:
        for option in groups[group]:
            assert option in res.stdout, f"{command} lacks {option}"


def test_sync_and_undo_write_the_reports_run_writes(layout: tuple[Path, Path], env: None,
                                                    tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """--summary and --junit on sync and undo, as on run: counts and one testcase per row."""
    sheet, cfg = layout
    with SandboxThread(SandboxSettings(rate=None)) as sb:
        monkeypatch.setenv("GONG_BASE_URL", sb.url)
        base = ["--config", str(cfg), "--timezone", "Europe/Berlin", "--rate", "1000"]
        ledger = str(tmp_path / "ledger.jsonl")
        res = invoke("sync", str(sheet), "--ledger", ledger, "--out",
                     str(tmp_path / "sync.jsonl"), "--summary", str(tmp_path / "s.json"),
                     "--junit", str(tmp_path / "s.xml"), *base)
        assert res.exit_code == 0, res.output
        summary = orjson.loads((tmp_path / "s.json").read_bytes())
        assert summary["counts"]["created"] == 2 and summary["exitCode"] == 0
        assert (tmp_path / "s.xml").read_text().count("<testcase") == 2

        res = invoke("undo", str(tmp_path / "sync.jsonl"), "--ledger", ledger, "--yes",
                     "--summary", str(tmp_path / "u.json"), "--rate", "1000")
        assert res.exit_code == 0, res.output
        summary = orjson.loads((tmp_path / "u.json").read_bytes())
        assert summary["counts"]["deleted"] == 2
    assert [r["status"] for r in finals(tmp_path / "sync.undo.jsonl")] == ["deleted", "deleted"]


def test_a_sandbox_run_never_stands_for_a_real_one(tmp_path: Path, env: None,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """`run --sandbox` first, then the real run on the same file: the sandbox's results are
    its own file, so the real run sends every row; pointing the real run at the sandbox's
    results file is refused, naming whom that file's runs sent to."""
    src = tmp_path / "in.csv"
    from .helpers import meeting_row, write_csv

    write_csv(src, [meeting_row(i) for i in range(3)])
    res = invoke("run", str(src), *SANDBOX)
    assert res.exit_code == 0, res.output
    assert (tmp_path / "in.sandbox.results.jsonl").exists()
    with SandboxThread(SandboxSettings(rate=None)) as gong:  # Gong itself, for this test
        monkeypatch.setenv("GONG_BASE_URL", gong.url)
        res = invoke("run", str(src), "--out", str(tmp_path / "in.sandbox.results.jsonl"),
                     "--rate", "1000")
        assert res.exit_code == 2
        assert "holds the results of runs that sent to sandbox" in res.stderr
        assert gong.state.requests == 0
        res = invoke("run", str(src), "--rate", "1000")
        assert res.exit_code == 0, res.output
        assert gong.state.creates == 3
