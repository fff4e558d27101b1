"""The run's lifecycle under faults, as a real subprocess against servers on loopback: a full disk,
a graceful stop with requests in flight, a host that cannot be reached or never answers or answers
429 forever, and output files that cannot be written. Each ends promptly, with one clear line and
its own exit code, and never creates a meeting twice."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from bulkmeet.policy import BREAKER_429_PAUSES, BREAKER_429_SECONDS, BREAKER_TRANSPORT
from bulkmeet.sandbox import SandboxSettings, SandboxThread

from .helpers import CREDS, entries, finals, last_by_key, meeting_row, write_csv

pytestmark = pytest.mark.slow

EXIT_JOURNAL = 74
EXIT_UNREACHABLE = 69


def _env(url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GONG_")}
    env.update(CREDS)
    env["GONG_BASE_URL"] = url
    env.update(extra)
    return env


def _bulkmeet(args: list[str], url: str, **extra: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "bulkmeet", *args], env=_env(url, **extra),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _finish(proc: subprocess.Popen[bytes], timeout: float) -> tuple[int, str]:
    """Wait for the process (killing it if it hangs, which fails the test)."""
    try:
        _, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
        raise AssertionError(f"bulkmeet hung for {timeout}s; stderr:\n{err.decode()}") from None
    return proc.returncode, err.decode()


def _wait_for(pred: object, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():  # type: ignore[operator]
            return
        time.sleep(0.02)
    raise AssertionError("condition not reached in time")


def _config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "bulkmeet.yaml"
    path.write_text(text, encoding="utf-8")
    return path


# -- a full disk ---------------------------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 200 KB tmpfs, unmounted afterwards; skipped where mounting is not allowed."""
    if os.geteuid() != 0:
        pytest.skip("the disk-full test mounts a small tmpfs, which needs root")
    where = tmp_path / "small"
    where.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=200k", "tmpfs", str(where)],
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs: {done.stderr.strip() or done.returncode}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def test_full_disk_stops_cleanly_and_the_resume_creates_nothing_twice(
        tmp_path: Path, small_disk: Path) -> None:
    """400 rows, the results file on a 200 KB tmpfs: the run ends (no hang) with one line naming
    the file and the OS error and exit 74; no torn line is left; after moving the file to a
    roomy disk the resume finishes every row, and no key was created twice."""
    rows = 400
    src = write_csv(tmp_path / "in.csv", [meeting_row(i) for i in range(rows)])
    out = small_disk / "out.jsonl"
    with SandboxThread(SandboxSettings(rate=None)) as sb:
        code, err = _finish(_bulkmeet(["run", str(src), "--out", str(out), "--rate", "1000"],
                                      sb.url), timeout=60)
        assert code == EXIT_JOURNAL, err
        assert f"cannot write the results file {out}" in err
        assert "No space left on device" in err
        assert "Traceback" not in err
        data = out.read_bytes()
        assert data.endswith(b"\n"), "a torn line was left"
        assert len(entries(out)) == data.count(b"\n")
        first_created = sb.state.creates
        assert 0 < first_created < rows

        roomy = tmp_path / "out.jsonl"
        shutil.copyfile(out, roomy)
        code, err = _finish(_bulkmeet(["run", str(src), "--out", str(roomy), "--rate", "1000"],
                                      sb.url), timeout=60)
        assert code in (0, 1), err
        made = sb.state.created_by_external_id
        assert all(n == 1 for n in made.values()), {k: n for k, n in made.items() if n > 1}
        last = last_by_key(roomy)
        assert sorted(last) == sorted(f"ext-{i}" for i in range(rows))
        assert {v["status"] for v in last.values()} <= {"created", "uncertain", "not_sent"}
        created = {k for k, v in last.items() if v["status"] == "created"}
        assert created <= set(made)
        # A creation the file does not record as created is one it calls uncertain.
        assert set(made) - created <= {k for k, v in last.items() if v["status"] == "uncertain"}
        assert len(created) >= rows - 16


# -- a graceful stop -----------------------------------------------------------------------


def test_sigterm_lets_requests_in_flight_finish(tmp_path: Path) -> None:
    """SIGTERM while 8 requests are in flight on a server that answers in 2 s: the run waits
    for them (grace period), records them created, the queued rows not_sent, none uncertain."""
    with SandboxThread(SandboxSettings(rate=None, latency=2.0)) as sb:
        # More rows than the queue holds: the reader is still waiting to queue one. An organizer
        # a row, as an organizer's first create goes out alone (engine/organizers.py).
        src = write_csv(tmp_path / "in.csv", [meeting_row(i, organizer=f"o{i}@seller.example")
                                              for i in range(200)])
        out = tmp_path / "out.jsonl"
        proc = _bulkmeet(["run", str(src), "--out", str(out), "--rate", "1000",
                          "--concurrency", "8"], sb.url)
        _wait_for(lambda: out.exists() and sum(
            1 for e in entries(out) if e["status"] == "sending") >= 8)
        time.sleep(0.5)
        start = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        code, err = _finish(proc, timeout=30)
        took = time.monotonic() - start
        assert code == 143, err
        assert 0.8 < took < 6, took
        counts = Counter(e["status"] for e in finals(out))
        assert counts["created"] == 8 == sb.state.creates, counts
        assert set(counts) == {"created", "not_sent"}, counts  # none uncertain
        assert counts["not_sent"] >= 64  # the queue; rows never read get no record
        assert "stopped: interrupted" in err


# -- the breaker ---------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def test_unreachable_host_stops_after_a_few_attempts(tmp_path: Path) -> None:
    """Nothing listens on the port: 200 rows make at most N (+ the workers already started)
    connection attempts, the rest are not_sent with the reason, and the run ends fast with
    exit 69 and one line naming the URL."""
    src = write_csv(tmp_path / "in.csv", [meeting_row(i) for i in range(200)])
    out = tmp_path / "out.jsonl"
    url = f"http://127.0.0.1:{_free_port()}"
    start = time.monotonic()
    code, err = _finish(_bulkmeet(["run", str(src), "--out", str(out), "--rate", "1000",
                                   "--concurrency", "2"], url), timeout=30)
    took = time.monotonic() - start
    assert code == EXIT_UNREACHABLE, err
    assert f"cannot reach {url}" in err
    assert "Traceback" not in err
    recs = finals(out)
    assert len(recs) == 200
    assert Counter(r["status"] for r in recs) == {"not_sent": 200}
    attempts = sum(r["attempts"] for r in recs)
    assert attempts <= BREAKER_TRANSPORT + 1, attempts
    assert all(url in r["errors"][0] for r in recs)
    assert took < 15, took


class _Silent:
    """A loopback server that accepts connections, reads, and never answers."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.accepted = 0
        self._conns: list[socket.socket] = []
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            self._conns.append(conn)

    def close(self) -> None:
        self.sock.close()
        for c in self._conns:
            c.close()


def test_a_server_that_never_answers_stops_the_run(tmp_path: Path) -> None:
    """Every request times out: after N in a row the run stops; those rows are uncertain (the
    request went out), the rest not_sent, exit 69; the server saw at most N + 1 requests."""
    src = write_csv(tmp_path / "in.csv", [meeting_row(i) for i in range(100)])
    out = tmp_path / "out.jsonl"
    cfg = _config(tmp_path, "request_timeout: 0.3\n")
    server = _Silent()
    try:
        start = time.monotonic()
        code, err = _finish(_bulkmeet(["run", str(src), "--out", str(out), "--rate", "1000",
                                       "--concurrency", "2", "--config", str(cfg)],
                                      server.url), timeout=30)
        took = time.monotonic() - start
    finally:
        server.close()
    assert code == EXIT_UNREACHABLE, err
    assert server.url in err and "did not answer" in err
    counts = Counter(r["status"] for r in finals(out))
    assert counts["uncertain"] == server.accepted
    assert BREAKER_TRANSPORT <= server.accepted <= BREAKER_TRANSPORT + 1
    assert counts["not_sent"] == 100 - server.accepted
    assert took < 15, took


def test_a_constant_429_defers_the_rest(tmp_path: Path) -> None:
    """A server answering 429 to everything (Retry-After 1): after N pauses without a success
    (each costing at most one request per worker) lasting a few seconds, the run stops; every
    row is deferred with the reason, exit 75, and only a handful of requests went out (not the
    day's budget, as before)."""
    src = write_csv(tmp_path / "in.csv", [meeting_row(i) for i in range(50)])
    out = tmp_path / "out.jsonl"
    with SandboxThread(SandboxSettings(rate=None, daily=0, retry_after_fixed=1)) as sb:
        start = time.monotonic()
        code, err = _finish(_bulkmeet(["run", str(src), "--out", str(out), "--rate", "1000",
                                       "--concurrency", "2"], sb.url), timeout=60)
        took = time.monotonic() - start
        requests = sb.state.requests
    assert code == 75, err
    assert "429" in err
    counts = Counter(r["status"] for r in finals(out))
    assert counts == {"deferred": 50}, counts
    assert requests <= 2 * BREAKER_429_PAUSES, requests  # two workers
    assert took < BREAKER_429_SECONDS + BREAKER_429_PAUSES + 10, took


# -- files that cannot be written after the run ---------------------------------------------


def test_errors_out_that_cannot_be_written_is_one_line(tmp_path: Path) -> None:
    src = write_csv(tmp_path / "in.csv", [meeting_row(i, invalid=i == 1) for i in range(3)])
    out = tmp_path / "out.jsonl"
    blocker = tmp_path / "file"
    blocker.write_text("x")
    bad = blocker / "fix.csv"  # its folder is a file: cannot be created, even as root
    with SandboxThread(SandboxSettings(rate=None)) as sb:
        code, err = _finish(_bulkmeet(["run", str(src), "--out", str(out), "--rate", "1000",
                                       "--errors-out", str(bad)], sb.url), timeout=30)
    assert "Traceback" not in err, err
    assert f"cannot write the errors file {bad}" in err
    assert code == 1  # the run's own outcome: a row is invalid
    assert Counter(r["status"] for r in finals(out)) == {"created": 2, "invalid": 1}


def test_quota_state_that_cannot_be_saved_is_one_line(tmp_path: Path) -> None:
    src = write_csv(tmp_path / "in.csv", [meeting_row(i) for i in range(3)])
    out = tmp_path / "out.jsonl"
    blocker = tmp_path / "state"
    blocker.write_text("x")  # XDG_STATE_HOME is a file: the quota folder cannot be made
    with SandboxThread(SandboxSettings(rate=None)) as sb:
        code, err = _finish(_bulkmeet(["run", str(src), "--out", str(out), "--rate", "1000"],
                                      sb.url, XDG_STATE_HOME=str(blocker)), timeout=30)
    assert "Traceback" not in err, err
    assert "cannot save the daily quota" in err
    assert err.count("cannot save the daily quota") == 1
    assert code == 2
    assert Counter(r["status"] for r in finals(out)) == {"created": 3}


def test_a_full_disk_leaves_no_torn_ledger_entry(small_disk: Path) -> None:
    """The ledger on a full disk: each entry is written whole or not at all, so every line a
    later run reads is one it can use (a torn `sending` line would be dropped, and with it the
    knowledge that a request may have gone out)."""
    from bulkmeet.ledger import Ledger, read_ledger

    ledger = Ledger.open(small_disk / "ledger.jsonl")
    written = 0
    with pytest.raises(OSError):
        for i in range(100_000):
            ledger.write(f"key-{i:06d}", "sending", payload_hash="0" * 16, intent="create")
            written += 1
    ledger.close()
    entries, warnings = read_ledger(small_disk / "ledger.jsonl")
    assert warnings == [] and len(entries) == written > 0
