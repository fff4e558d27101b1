"""--sandbox for every command that can talk to Gong, and a sandbox that limits like Gong."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import click
import pytest
from click.testing import CliRunner, Result

from bulkmeet.cli import main

from .helpers import CREDS, entries, finals, meeting_row, write_csv

SENDING = ("run", "check", "retry", "sync", "undo")


def _options(command: str) -> set[str]:
    cmd = main.commands[command]
    assert isinstance(cmd, click.Command)
    return {opt for p in cmd.params for opt in getattr(p, "opts", [])}


@pytest.mark.parametrize("command", SENDING)
def test_every_sending_command_accepts_sandbox_and_sandbox_rate(command: str) -> None:
    assert {"--sandbox", "--sandbox-rate"} <= _options(command)


@pytest.mark.parametrize("command", SENDING)
def test_a_missing_credentials_hint_names_only_flags_the_command_takes(
        command: str, tmp_path: Path) -> None:
    """Without credentials every command says so in one line; each flag it suggests exists."""
    src = write_csv(tmp_path / "in.csv", [meeting_row(0)])
    results = tmp_path / "r.jsonl"
    made = CliRunner().invoke(main, ["run", str(src), "--sandbox", "--sandbox-rate", "0",
                                     "--out", str(results)])
    assert made.exit_code == 0, made.output
    argv = {"run": [str(src)], "check": [str(src)], "retry": [str(results), "--input", str(src)],
            "sync": [str(src), "--ledger", str(tmp_path / "l.jsonl")],
            "undo": [str(results), "--yes"]}[command]
    res = CliRunner().invoke(main, [command, *argv])
    assert res.exit_code == 2, res.output
    assert "no credentials" in res.stderr
    suggested = set(re.findall(r"--[a-z][a-z-]+", res.stderr))
    assert suggested and suggested <= _options(command), (suggested, res.stderr)


def test_sync_sandbox_creates_and_leaves_the_real_ledger_alone(tmp_path: Path) -> None:
    src = write_csv(tmp_path / "in.csv", [meeting_row(i) for i in range(3)])
    ledger = tmp_path / "ledger.jsonl"
    out = tmp_path / "out.jsonl"
    res = CliRunner().invoke(main, ["sync", str(src), "--ledger", str(ledger), "--sandbox",
                                    "--sandbox-rate", "0", "--rate", "1000", "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert Counter(r["status"] for r in finals(out)) == {"created": 3}
    assert not ledger.exists()  # a throwaway sandbox's meetings never enter the real ledger


def test_undo_sandbox_deletes_what_a_sandbox_run_created(tmp_path: Path) -> None:
    src = write_csv(tmp_path / "in.csv", [meeting_row(i) for i in range(3)])
    out = tmp_path / "r.jsonl"
    runner = CliRunner()
    res = runner.invoke(main, ["run", str(src), "--sandbox", "--sandbox-rate", "0",
                               "--rate", "1000", "--out", str(out)])
    assert res.exit_code == 0, res.output
    res = runner.invoke(main, ["undo", str(out), "--sandbox", "--sandbox-rate", "0",
                               "--rate", "1000", "--yes"])
    assert res.exit_code == 0, res.output
    assert "3 deleted" in res.stderr
    # The real undo's own file is untouched: a later real undo still sees every meeting.
    assert not (tmp_path / "r.undo.jsonl").exists()
    res = runner.invoke(main, ["undo", str(out), "--dry-run"])
    assert "undo: 3 meetings to delete" in res.output


@pytest.mark.slow
def test_run_sandbox_limits_like_gong_whatever_rate_the_client_is_given(tmp_path: Path) -> None:
    """--rate 100 against the default sandbox: Gong's 3/s answers 429 and the run pauses."""
    src = write_csv(tmp_path / "in.csv", [meeting_row(i) for i in range(8)])
    out = tmp_path / "r.jsonl"
    res = CliRunner().invoke(main, ["run", str(src), "--sandbox", "--rate", "100",
                                    "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert Counter(r["status"] for r in finals(out)) == {"created": 8}
    m = re.search(r"(\d+) answered 429; paused (\d+) time", res.stderr)
    assert m is not None and int(m[1]) > 0 and int(m[2]) > 0, res.stderr
    assert any(e["status"] == "answered" and e.get("httpStatus") == 429 for e in entries(out))
    assert "above Gong's limit" not in res.stderr  # the sandbox is not a real Gong host


def test_sandbox_rate_0_takes_the_limit_off(tmp_path: Path) -> None:
    src = write_csv(tmp_path / "in.csv", [meeting_row(i) for i in range(20)])
    res = CliRunner().invoke(main, ["run", str(src), "--sandbox", "--sandbox-rate", "0",
                                    "--rate", "1000"])
    assert res.exit_code == 0, res.output
    assert "0 answered 429" in res.stderr


def test_a_rate_above_gongs_against_a_real_host_is_warned_once(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing is sent here (the only row is invalid), so no connection is made."""
    for k, v in CREDS.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("GONG_BASE_URL", "https://us-1.api.gong.io")
    src = write_csv(tmp_path / "in.csv", [meeting_row(0, invalid=True)])
    res = CliRunner().invoke(main, ["run", str(src), "--rate", "10", "-q"])
    assert res.exit_code == 1, res.output
    warnings = [ln for ln in res.stderr.splitlines() if "above Gong's limit" in ln]
    assert warnings == ["bulkmeet: warning: --rate 10 is above Gong's limit of 3 calls/s per "
                        "company: expect 429s and pauses"], res.stderr
    res = CliRunner().invoke(main, ["run", str(src), "--rate", "3", "-q", "--fresh"])
    assert "above Gong's limit" not in res.stderr


def test_the_sandbox_server_defaults_to_gongs_limits() -> None:
    cmd = main.commands["sandbox"]
    defaults = {p.name: p.default for p in cmd.params}
    assert defaults["rate"] == 3.0 and defaults["window"] == "sliding"
    assert defaults["daily"] == 10_000


def _no_gong_credentials(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A user with no Gong account (no credentials), state kept in the test's folder."""
    for name in ("GONG_ACCESS_KEY", "GONG_ACCESS_KEY_SECRET", "GONG_BEARER_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))


def _sandbox_sync(tmp_path: Path, rows: int, out_name: str) -> tuple[Path, Path, Result]:
    """`sync --sandbox` of `rows` made-up rows into `out_name`: (input, results file, result)."""
    src = write_csv(tmp_path / "in.csv", [meeting_row(i) for i in range(rows)])
    out = tmp_path / out_name
    res = CliRunner().invoke(main, ["sync", str(src), "--sandbox", "--sandbox-rate", "0",
                                    "--rate", "1000", "--out", str(out)])
    return src, out, res


def test_sync_sandbox_without_gong_credentials_plans_from_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A first try of sync with no Gong account: no credentials to find the real state store,
    so the sandbox trial says so and plans every row as a create (it asked for --sandbox)."""
    _no_gong_credentials(tmp_path, monkeypatch)
    src, out, res = _sandbox_sync(tmp_path, 3, "r.jsonl")
    assert res.exit_code == 0, res.output
    assert "plans as if nothing had been made yet" in res.stderr
    assert Counter(r["status"] for r in finals(out)) == {"created": 3}


def test_sandbox_meetings_never_stand_for_real_ones(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """A sandbox run given the (deprecated) ledger does not write it; the sandbox's results file
    is refused by a real undo (its ids are not there: no DELETE goes out) and by `state
    import` (they would make a real run skip the rows)."""
    from bulkmeet.sandbox import SandboxSettings, SandboxThread

    src = write_csv(tmp_path / "in.csv", [meeting_row(i) for i in range(3)])
    ledger = tmp_path / "ledger.jsonl"
    out = tmp_path / "sb.jsonl"
    res = CliRunner().invoke(main, ["run", str(src), "--sandbox", "--sandbox-rate", "0",
                                    "--rate", "1000", "--ledger", str(ledger), "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert not ledger.exists() or ledger.read_text() == ""
    for k, v in CREDS.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    with SandboxThread(SandboxSettings(rate=None)) as real:
        monkeypatch.setenv("GONG_BASE_URL", real.url)
        res = CliRunner().invoke(main, ["undo", str(out), "--yes", "--rate", "1000"])
        assert res.exit_code == 2, res.output
        assert "sent to sandbox" in res.stderr and "nothing was sent" in res.stderr
        res = CliRunner().invoke(main, ["state", "import", "--results", str(out), "--state",
                                        f"sqlite:///{tmp_path / 's.sqlite3'}"])
        assert res.exit_code == 2, res.output
        assert "nothing was imported" in res.stderr
        assert real.state.requests == 0


def test_a_sandbox_syncs_results_are_refused_by_a_real_undo(tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """sync writes where it sent on its `sending` entries, as run does: a real undo of a
    sandbox sync's results sends nothing."""
    from bulkmeet.sandbox import SandboxSettings, SandboxThread

    _no_gong_credentials(tmp_path, monkeypatch)
    src, out, res = _sandbox_sync(tmp_path, 2, "sync.jsonl")
    assert res.exit_code == 0, res.output
    assert {e.get("target") for e in entries(out) if e["status"] == "sending"} == {"sandbox"}
    for k, v in CREDS.items():
        monkeypatch.setenv(k, v)
    with SandboxThread(SandboxSettings(rate=None)) as real:
        monkeypatch.setenv("GONG_BASE_URL", real.url)
        res = CliRunner().invoke(main, ["undo", str(out), "--yes", "--rate", "1000"])
        assert res.exit_code == 2, res.output
        assert real.state.requests == 0


def test_another_credential_of_the_same_host_is_warned_not_refused(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A rotated access key (or a refreshed token) names another target: resume, undo and
    import go on with a warning (refusing would lose the file's meetings from view and let a
    later run make them again); only the sandbox and a real company never mix."""
    from bulkmeet.sandbox import SandboxSettings, SandboxThread

    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    for k, v in CREDS.items():
        monkeypatch.setenv(k, v)
    src = write_csv(tmp_path / "in.csv", [meeting_row(i) for i in range(2)])
    out = tmp_path / "r.jsonl"
    with SandboxThread(SandboxSettings(rate=None)) as real:
        monkeypatch.setenv("GONG_BASE_URL", real.url)
        res = CliRunner().invoke(main, ["run", str(src), "--rate", "1000", "--out", str(out)])
        assert res.exit_code == 0, res.output
        monkeypatch.setenv("GONG_ACCESS_KEY", "rotated-key")
        res = CliRunner().invoke(main, ["run", str(src), "--rate", "1000", "--out", str(out)])
        assert res.exit_code == 0, res.output
        assert "another credential or host name of the same company?" in res.stderr
        assert real.state.creates == 2  # resumed: nothing made again
        res = CliRunner().invoke(main, ["state", "import", "--results", str(out), "--state",
                                        f"sqlite:///{tmp_path / 's.sqlite3'}"])
        assert res.exit_code == 0, res.output
        assert "2 created" in res.stdout
        res = CliRunner().invoke(main, ["undo", str(out), "--yes", "--rate", "1000"])
        assert res.exit_code == 0, res.output
        assert real.state.meetings == {}


def test_a_real_sync_does_not_append_to_a_sandbox_syncs_results(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Mixing both in one file would leave a file no undo can take (each refuses the other's
    rows): refused, as a run refuses to resume it; nothing sent."""
    from bulkmeet.sandbox import SandboxSettings, SandboxThread

    _no_gong_credentials(tmp_path, monkeypatch)
    src, out, res = _sandbox_sync(tmp_path, 2, "sync.jsonl")
    assert res.exit_code == 0, res.output
    for k, v in CREDS.items():
        monkeypatch.setenv(k, v)
    with SandboxThread(SandboxSettings(rate=None)) as real:
        monkeypatch.setenv("GONG_BASE_URL", real.url)
        res = CliRunner().invoke(main, ["sync", str(src), "--rate", "1000", "--out", str(out),
                                        "--state", f"sqlite:///{tmp_path / 's.sqlite3'}"])
        assert res.exit_code == 2, res.output
        assert "sent to sandbox" in res.stderr
        assert real.state.requests == 0
