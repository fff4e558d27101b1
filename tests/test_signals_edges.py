"""Ctrl-C and SIGTERM outside the run's own handlers (start-up, preflight, after the summary):
one line and exit 130 or 143, never a traceback or a death by signal."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .helpers import CREDS, SANDBOX, meeting_row, write_csv

pytestmark = pytest.mark.slow


def _start(args: list[str], cwd: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GONG_")}
    env.update(CREDS)
    return subprocess.Popen([sys.executable, "-m", "bulkmeet", *args], env=env, cwd=cwd,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _writer_once_read(fifo: Path, proc: subprocess.Popen[bytes]) -> int:
    """Open `fifo` for writing as soon as the process has opened it for reading."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            return os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        except OSError as exc:
            if exc.errno != errno.ENXIO or proc.poll() is not None:
                raise
            time.sleep(0.02)
    raise AssertionError("the process never opened the config")


@pytest.mark.parametrize(("sig", "code", "word"), [
    (signal.SIGINT, 130, "interrupted"), (signal.SIGTERM, 143, "stopped by SIGTERM")])
def test_a_signal_during_start_up_is_one_line(tmp_path: Path, sig: signal.Signals, code: int,
                                              word: str) -> None:
    """The process waits on its config (a FIFO that gives nothing yet) when the signal comes."""
    src = write_csv(tmp_path / "in.csv", [meeting_row(0)])
    fifo = tmp_path / "config.yaml"
    os.mkfifo(fifo)
    proc = _start(["run", str(src), *SANDBOX, "--config", str(fifo)], tmp_path)
    fd = _writer_once_read(fifo, proc)
    try:
        time.sleep(0.1)
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=30)
    finally:
        os.close(fd)
    text = err.decode()
    assert "Traceback" not in text, text
    assert proc.returncode == code, text
    assert text.strip().splitlines() == [f"bulkmeet: {word}: nothing was sent"], text
    assert not (tmp_path / "in.results.jsonl").exists()


def test_sigterm_after_the_run_handlers_are_gone_is_143(tmp_path: Path) -> None:
    """The run is over and its summary printed; writing --errors-out (a FIFO nobody reads)
    blocks. SIGTERM then: one line, exit 143, not a death by signal (-15)."""
    src = write_csv(tmp_path / "in.csv", [meeting_row(0), meeting_row(1, invalid=True)])
    fix = tmp_path / "fix.csv"
    os.mkfifo(fix)
    proc = _start(["run", str(src), *SANDBOX, "--rate", "1000", "--errors-out", str(fix)],
                  tmp_path)
    assert proc.stderr is not None
    seen = []
    for raw in proc.stderr:
        seen.append(raw.decode())
        if raw.decode().lstrip().startswith("results:"):
            break
    time.sleep(0.3)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    text = "".join(seen) + err.decode()
    assert "Traceback" not in text, text
    assert proc.returncode == 143, text
    assert text.strip().splitlines()[-1] == "bulkmeet: stopped by SIGTERM", text
