"""bulkmeet as a real subprocess against the sandbox: killed, interrupted and resumed, it never
loses a finished row and never creates a meeting twice."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from bulkmeet.sandbox import SandboxSettings, SandboxThread

from .helpers import CREDS, entries, finals, last_by_key, meeting_row, write_csv

pytestmark = pytest.mark.slow

ROWS = 40


@pytest.fixture
def sandbox() -> Iterator[SandboxThread]:
    with SandboxThread(SandboxSettings(rate=None, latency=0.05)) as sb:
        yield sb


def _env(url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GONG_")}
    env.update(CREDS)
    env["GONG_BASE_URL"] = url
    return env


def _bulkmeet(args: list[str], url: str, *, stdin: int | None = None
              ) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "bulkmeet", *args], env=_env(url),
                            stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _wait_for(pred: object, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():  # type: ignore[operator]
            return
        time.sleep(0.02)
    raise AssertionError("condition not reached in time")


def _created_count(out: Path) -> int:
    return sum(1 for e in entries(out) if e["status"] == "created") if out.exists() else 0


def _check_final_state(out: Path, sandbox: SandboxThread) -> None:
    """After the resume: each input row's latest record is final; the sandbox created each key
    at most once; every created key in the file exists in the sandbox, and any creation the file
    does not record as created is one the file calls uncertain."""
    last = last_by_key(out)
    assert sorted(last) == sorted(f"ext-{i}" for i in range(ROWS))
    assert {v["status"] for v in last.values()} <= {"created", "uncertain"}
    made = sandbox.state.created_by_external_id
    assert all(n == 1 for n in made.values()), made
    created = {k for k, v in last.items() if v["status"] == "created"}
    uncertain = {k for k, v in last.items() if v["status"] == "uncertain"}
    assert created <= set(made)
    assert set(made) - created <= uncertain
    # At most two final records per row across the two runs (not_sent, then its outcome), and
    # a row created in the first run got no record in the second.
    by_line = Counter(e["line"] for e in finals(out))
    assert all(n <= 2 for n in by_line.values())
    created_lines = Counter(e["line"] for e in finals(out) if e["status"] == "created")
    assert all(n == 1 for n in created_lines.values())


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM, signal.SIGINT])
def test_stop_mid_run_then_resume(tmp_path: Path, sandbox: SandboxThread,
                                  sig: signal.Signals) -> None:
    """Stop the run after a few rows with kill -9, SIGTERM or SIGINT; run the same command
    again; every row ends created (or uncertain if a request was cut mid-flight by kill -9) and
    no key is created twice."""
    src = write_csv(tmp_path / "in.csv", [meeting_row(i) for i in range(ROWS)])
    out = tmp_path / "out.jsonl"
    args = ["run", str(src), "--out", str(out), "--rate", "15", "--concurrency", "4"]
    proc = _bulkmeet(args, sandbox.url)
    _wait_for(lambda: _created_count(out) >= 5)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=30)
    expected = {signal.SIGKILL: -9, signal.SIGTERM: 143, signal.SIGINT: 130}[sig]
    assert proc.returncode == expected, err.decode()
    first = finals(out)
    if sig != signal.SIGKILL:
        # Graceful: requests in flight were let finish, so nothing is left uncertain, and the
        # summary was printed.
        assert "stopped: interrupted" in err.decode()
        assert not any(e["status"] == "uncertain" for e in first)
        assert not any(e["status"] == "sending" for e in _dangling(out))
    sent_before = sandbox.state.requests
    proc = _bulkmeet([*args[:-4], "--rate", "1000"], sandbox.url)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode in (0, 1), err.decode()
    _check_final_state(out, sandbox)
    # The resume sent only rows not created before.
    assert sandbox.state.requests - sent_before == ROWS - sum(
        1 for e in first if e["status"] == "created") - sum(
        1 for e in finals(out)[len(first):] if e["status"] == "uncertain")
    # And a third run sends nothing at all.
    before = sandbox.state.requests
    proc = _bulkmeet([*args[:-4], "--rate", "1000"], sandbox.url)
    proc.communicate(timeout=60)
    assert sandbox.state.requests == before


def _dangling(out: Path) -> list[dict[str, object]]:
    """`sending` entries with no final record after them for the same key."""
    open_: dict[str, dict[str, object]] = {}
    for e in entries(out):
        if e["status"] == "sending":
            open_[e["key"]] = e
        else:  # a final record, or `answered` (Gong answered and made nothing)
            open_.pop(e["key"], None)
    return list(open_.values())


def test_a_second_signal_stops_at_once_without_losing_records(tmp_path: Path) -> None:
    """SIGTERM then SIGTERM again while slow requests are in flight: the run ends well before
    the grace period, and the requests cut off are recorded uncertain, not lost."""
    with SandboxThread(SandboxSettings(rate=None, latency=3.0)) as sb:
        # An organizer a row: an organizer's first create goes out alone (engine/organizers.py)
        src = write_csv(tmp_path / "in.csv", [meeting_row(i, organizer=f"o{i}@seller.example")
                                              for i in range(10)])
        out = tmp_path / "out.jsonl"
        proc = _bulkmeet(["run", str(src), "--out", str(out), "--rate", "1000",
                          "--concurrency", "3"], sb.url)
        _wait_for(lambda: out.exists() and sum(
            1 for e in entries(out) if e["status"] == "sending") >= 3)
        start = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
        assert time.monotonic() - start < 2.5
        assert proc.returncode == 143
        # The 3 in flight are uncertain; the 7 read but never sent are not_sent.
        assert Counter(e["status"] for e in finals(out)) == {"uncertain": 3, "not_sent": 7}
        assert not _dangling(out)


def _piped_run(out: Path, url: str) -> subprocess.Popen[bytes]:
    """`bulkmeet run -` fed one row on a pipe left open; returns once that row is created."""
    proc = _bulkmeet(["run", "-", "--format", "csv", "--out", str(out), "--rate", "1000"],
                     url, stdin=subprocess.PIPE)
    assert proc.stdin is not None
    header = "startTime,endTime,title,organizerEmail,externalId,invitees\n"
    proc.stdin.write((header + ",".join(meeting_row(0)) + "\n").encode())
    proc.stdin.flush()
    _wait_for(lambda: _created_count(out) == 1)
    return proc


def test_rows_stream_results_appear_before_stdin_ends(tmp_path: Path,
                                                      sandbox: SandboxThread) -> None:
    """Rows piped on stdin are sent as they arrive: the first row's record is on disk while the
    input is still open."""
    out = tmp_path / "out.jsonl"
    proc = _piped_run(out, sandbox.url)
    assert proc.stdin is not None
    proc.stdin.write((",".join(meeting_row(1)) + "\n").encode())
    proc.stdin.close()
    proc.stdin = None  # closed above; communicate must not flush it
    proc.communicate(timeout=30)
    assert proc.returncode == 0
    assert _created_count(out) == 2


def test_ctrl_c_while_stdin_stays_open_exits_at_once(tmp_path: Path,
                                                     sandbox: SandboxThread) -> None:
    """A pipe that never closes (`tail -f | bulkmeet run -`): SIGINT ends the run promptly with
    130, the rows already read recorded, instead of waiting for input that never comes."""
    out = tmp_path / "out.jsonl"
    proc = _piped_run(out, sandbox.url)
    assert proc.stdin is not None
    start = time.monotonic()
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=5)
    finally:
        proc.stdin.close()
        proc.stdin = None
        proc.communicate(timeout=30)
    assert proc.returncode == 130
    assert time.monotonic() - start < 3
