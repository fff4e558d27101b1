"""A user's mistake is one line on stderr and exit 2, never a traceback: for every command, with a
folder, a missing file, a file nobody can read, and a sandbox port already taken."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from bulkmeet.cli import main

from .helpers import CREDS, meeting_row, write_csv

# Every command that takes a path, with the flags that get it past option parsing.
COMMANDS = {
    "run": ["--sandbox"],
    "validate": [],
    "check": ["--sandbox"],
    "retry": ["--sandbox"],
    "plan": ["--ledger", "{ledger}"],
    "sync": ["--ledger", "{ledger}", "--sandbox"],
    "undo": ["--sandbox"],
}


@pytest.fixture
def unix_socket(tmp_path: Path) -> Iterator[Path]:
    """A path that exists and that no one, root included, can open for reading."""
    path = tmp_path / "sock.csv"
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(path))
    try:
        yield path
    finally:
        s.close()


def _argv(command: str, target: str, tmp_path: Path) -> list[str]:
    extra = [a.format(ledger=tmp_path / "ledger.jsonl") for a in COMMANDS[command]]
    return [command, target, *extra]


@pytest.mark.parametrize("command", sorted(COMMANDS))
@pytest.mark.parametrize(("target", "message"), [
    (".", "is a directory, not a file"),
    ("folder.csv", "is a directory, not a file"),
    ("missing.csv", "does not exist"),
    ("sock.csv", "cannot read"),
])
def test_every_command_says_what_is_wrong_with_the_path_in_one_line(
        command: str, target: str, message: str, tmp_path: Path, unix_socket: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "folder.csv").mkdir()
    res = CliRunner().invoke(main, _argv(command, target, tmp_path))
    assert "Traceback" not in res.stderr
    assert isinstance(res.exception, SystemExit), res.exception
    assert res.exit_code == 2, res.output
    lines = res.stderr.splitlines()
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith("bulkmeet: error: ") and message in lines[0], lines[0]
    assert target in lines[0]


def test_retry_input_that_is_a_folder_is_one_line(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    results = tmp_path / "r.jsonl"
    results.write_text('{"line":2,"key":"k","status":"not_sent"}\n')
    res = CliRunner().invoke(main, ["retry", str(results), "--input", ".", "--sandbox"])
    assert res.exit_code == 2, res.output
    assert res.stderr.strip() == "bulkmeet: error: input file . is a directory, not a file"


def _drop_read_override() -> list[str] | None:
    """A command prefix under which a mode-000 file really is unreadable, or None."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        return None
    # root reads anything through CAP_DAC_OVERRIDE / CAP_DAC_READ_SEARCH: take both away.
    return [setpriv, "--inh-caps=-all",
            "--bounding-set=-dac_override,-dac_read_search", "--"]


@pytest.mark.slow
def test_a_file_without_read_permission_is_one_line_for_every_command(tmp_path: Path) -> None:
    """chmod 000, run as a real process (as root: without the capabilities that bypass it)."""
    prefix = _drop_read_override()
    if prefix is None:
        pytest.skip("running as root without setpriv: a mode-000 file stays readable")
    locked = write_csv(tmp_path / "locked.csv", [meeting_row(0)])
    locked.chmod(0)
    env = {k: v for k, v in os.environ.items() if not k.startswith("GONG_")}
    env.update(CREDS)
    for command in sorted(COMMANDS):
        proc = subprocess.run([*prefix, sys.executable, "-m", "bulkmeet",
                               *_argv(command, str(locked), tmp_path)],
                              capture_output=True, text=True, env=env, cwd=tmp_path,
                              timeout=60)
        assert "Traceback" not in proc.stderr, (command, proc.stderr)
        assert proc.returncode == 2, (command, proc.stderr)
        assert proc.stderr.strip() == (
            f"bulkmeet: error: cannot read {'results' if command in ('retry', 'undo') else 'input'}"
            f" file {locked}: Permission denied"), (command, proc.stderr)


def test_sandbox_on_a_port_in_use_says_so_and_suggests_port_0() -> None:
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]
    try:
        res = CliRunner().invoke(main, ["sandbox", "--port", str(port)])
    finally:
        taken.close()
    assert "Traceback" not in res.stderr
    assert res.exit_code == 2, (res.exception, res.output)
    assert res.stderr.strip() == (
        f"bulkmeet: error: port {port} on 127.0.0.1 is already in use; choose another with "
        "--port, or --port 0 for any free one")


@pytest.mark.parametrize("argv", [
    ["sandbox", "--host", "0.0.0.0"],
    ["sandbox", "--port", "70000"],
])
def test_sandbox_bad_address_is_one_line(argv: list[str]) -> None:
    res = CliRunner().invoke(main, argv)
    assert "Traceback" not in res.stderr
    assert res.exit_code == 2, (res.exception, res.output)
    assert "loopback only" in res.stderr or "not in the range" in res.stderr, res.stderr


@pytest.mark.parametrize("command", ["state show", "run", "plan"])
def test_a_state_store_that_cannot_be_reached_is_one_line_without_its_password(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: str) -> None:
    """A PostgreSQL URL whose server refuses (nothing listens on port 1): one line naming the
    store with its password masked, exit 2, no traceback, nothing sent."""
    pytest.importorskip("psycopg")
    for k, v in CREDS.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    src = write_csv(tmp_path / "in.csv", [meeting_row(0)])
    argv = [*command.split(), *([] if command == "state show" else [str(src)]),
            "--state", "postgresql://team:s3cr3t-pw@127.0.0.1:1/bulkmeet"]
    res = CliRunner().invoke(main, argv)
    assert res.exit_code == 2, res.output
    assert "s3cr3t-pw" not in res.output and "Traceback" not in res.output
    assert "cannot open the state store postgresql://team:***@127.0.0.1:1/bulkmeet" in \
        res.stderr


@pytest.mark.parametrize(("url", "said"), [("sqlite://x", "write sqlite:///relative/path"),
                                           ("redis://x", "expected sqlite:///path")])
def test_state_show_of_a_malformed_state_url_is_an_error(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, url: str, said: str) -> None:
    for k, v in CREDS.items():
        monkeypatch.setenv(k, v)
    monkeypatch.chdir(tmp_path)
    res = CliRunner().invoke(main, ["state", "show", "--state", url])
    assert res.exit_code == 2 and said in res.stderr, res.output
    assert list(tmp_path.iterdir()) == []  # nothing created
