"""Progress: a live bar on a terminal, plain status lines on a pipe, nothing with --quiet; rows
done / total, created and failed counts, rate, ETA and the 429 countdown."""

from __future__ import annotations

import asyncio
import io
import os
import pty
import re
import select
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from bulkmeet.cli import main
from bulkmeet.engine import RunStats
from bulkmeet.gate import Gate
from bulkmeet.progress import (
    Display,
    LiveBar,
    RateMeter,
    Snapshot,
    StatusLines,
    count_rows,
    duration,
    make_display,
    per_second,
    rows_done,
    snapshot,
    status_line,
)

from .helpers import SANDBOX, meeting_row, write_csv
from .vclock import run_virtual

REPO = Path(__file__).resolve().parents[1]
STATUS = re.compile(r"^bulkmeet: (\d+)/(\d+) rows \(\d+%\) in \d+\S*: (\d+) created · (\d+) "
                    r"failed .*req/s")


def stats_with(**counts: int) -> RunStats:
    s = RunStats()
    for k, v in counts.items():
        s.counts[k] = v
    return s


def test_rows_done_counts_records_and_rows_settled_by_an_earlier_run() -> None:
    """A row is done once it has a record this run, or was settled before (no record now)."""
    s = stats_with(created=3, invalid=1, skipped=2)
    s.settled, s.uncertain_before = 4, 1
    assert rows_done(s) == 3 + 1 + 2 + 4 + 1


def test_rate_meter_measures_the_recent_window_only() -> None:
    """Requests/s and rows/s over the last `window` seconds: an early burst ages out."""
    m = RateMeter(window=10)
    assert m.sample(0, 0, 0) == (0.0, 0.0)
    assert m.sample(5, 100, 50) == (20.0, 10.0)
    for t in range(6, 31):
        m.sample(t, 100 + 2 * (t - 5), 50 + (t - 5))
    req, rows = m.sample(31, 152, 76)
    assert req == pytest.approx(2.0, rel=0.05)
    assert rows == pytest.approx(1.0, rel=0.05)


def test_eta_from_the_recent_pace_plus_the_pause_left() -> None:
    """ETA = rows left / rows per second since the start (or the last RATE_WINDOW seconds),
    plus what remains of a 429 pause; before any pace, rows left at the limit, marked as an
    estimate; unknown without a total."""

    async def go() -> tuple[Snapshot, Snapshot, Snapshot]:
        gate = Gate(3.0)
        meter = RateMeter()
        s = stats_with(created=10)
        first = snapshot(s, gate, 100, meter, now=s.started)
        s.counts["created"] = 20
        s.requests = 20
        gate.pause(12)
        later = snapshot(s, gate, 100, meter, now=s.started + 10)
        no_total = snapshot(s, gate, None, RateMeter(), now=s.started + 10)
        return first, later, no_total

    first, later, no_total = run_virtual(go())
    assert first.rate is None  # no pace yet: the ETA is rows left at the limit
    assert first.eta == pytest.approx(90 / 3.0) and first.eta_estimated
    assert later.paused == pytest.approx(12)
    assert later.rate == pytest.approx(2.0)
    assert later.limit == pytest.approx(3.0)
    assert later.eta == pytest.approx(12 + 80 / 2.0)  # 20 rows in 10 s, 80 left
    assert not later.eta_estimated
    assert no_total.eta is None and no_total.total is None


def test_status_line_shows_counts_rate_eta_and_the_countdown() -> None:
    """The plain line a CI log shows, with and without a total."""
    s = Snapshot(done=120, total=500, created=110, failed=3, invalid=7, uncertain=0, rate=2.94,
                 eta=130, paused=12.2, elapsed=61, limit=2.94)
    assert status_line(s) == ("bulkmeet: 120/500 rows (24%) in 1m01s: 110 created · 3 failed · "
                              "7 invalid · 2.94 req/s (limit 2.94) · paused on 429: 12s left · "
                              "ETA 2m10s")
    s = Snapshot(done=5, total=None, created=5, failed=0, invalid=0, uncertain=2, rate=0.0,
                 eta=None, paused=0.0, elapsed=3)
    assert status_line(s) == ("bulkmeet: 5 rows done in 3s: 5 created · 0 failed · 2 uncertain · "
                              "0.00 req/s")


@pytest.mark.parametrize(("seconds", "text"), [(0, "0s"), (59.4, "59s"), (60, "1m00s"),
                                               (3599, "59m59s"), (3600, "1h00m"),
                                               (90061, "25h01m")])
def test_duration(seconds: float, text: str) -> None:
    """Durations stay short: seconds, then minutes, then hours."""
    assert duration(seconds) == text


def test_count_rows_counts_records_not_lines(tmp_path: Path) -> None:
    """A quoted newline does not make two rows: the total is what the run will read."""
    src = write_csv(tmp_path / "in.csv", [meeting_row(i) for i in range(3)])
    with open(src, "a", encoding="utf-8") as f:
        f.write('2026-12-01T09:00:00Z,2026-12-01T10:00:00Z,"two\nlines",a@b.example,x,\n')
    assert count_rows(str(src)) == 4


def test_count_rows_does_not_read_stdin_or_pipes(tmp_path: Path) -> None:
    """Stdin and a FIFO cannot be read twice: no total (and no blocking open of the FIFO)."""
    fifo = tmp_path / "fifo.csv"
    os.mkfifo(fifo)
    assert count_rows("-", fmt="csv") is None
    assert count_rows(str(fifo)) is None
    assert count_rows(str(tmp_path / "missing.csv")) is None


def test_count_rows_stops_when_cancelled(tmp_path: Path) -> None:
    """The count runs in a thread; once the run ends it gives up instead of reading on."""
    src = write_csv(tmp_path / "in.csv", [meeting_row(i) for i in range(3000)])
    cancel = threading.Event()
    cancel.set()
    assert count_rows(str(src), cancel=cancel) is None
    assert count_rows(str(src)) == 3000


class FakeTTY(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_make_display_picks_bar_lines_or_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    """A terminal gets the bar, anything else status lines, --quiet nothing; TERM=dumb, which
    cannot move the cursor, gets status lines."""
    monkeypatch.setenv("TERM", "xterm")
    assert isinstance(make_display(FakeTTY()), LiveBar)
    assert type(make_display(io.StringIO(), interval=2)) is StatusLines
    assert type(make_display(FakeTTY(), quiet=True)) is Display
    monkeypatch.setenv("TERM", "dumb")
    assert type(make_display(FakeTTY())) is StatusLines


def test_live_bar_draws_counts_and_the_429_countdown() -> None:
    """The rich bar shows done/total, counts and, while paused, the seconds left."""
    out = FakeTTY()
    bar = LiveBar(out, width=120)
    bar.open()
    bar.draw(Snapshot(done=3, total=10, created=2, failed=1, invalid=0, uncertain=0, rate=2.5,
                      eta=9, paused=14.4, elapsed=2))
    bar.close()
    text = out.getvalue()
    assert "3/10" in text
    assert "2 created · 1 failed · 2.50 req/s · paused on 429: 14s left · ETA 9s" in text
    assert "━" in text  # rich's bar glyph
    assert "\x1b[?25l" in text and "\x1b[?25h" in text  # cursor hidden, then shown again


def test_display_start_and_stop_on_a_run() -> None:
    """Started from the run's on_start, the display ticks on the loop, learns the total from
    the counter thread, and stop() ends both tasks."""

    out = io.StringIO()
    lines = StatusLines(out, interval=0.01, counter=lambda cancel: 7)

    async def go() -> None:
        lines.start(stats_with(created=1), None)
        await asyncio.sleep(0.1)
        await lines.stop()

    asyncio.run(go())
    shown = out.getvalue().splitlines()
    assert shown and shown[-1].startswith("bulkmeet: 1/7 rows (14%)")
    assert lines._tasks == []


def _cli_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)


def test_pipe_gets_status_lines_without_escape_codes(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Not a terminal: a plain status line every --status-interval seconds, no escape codes."""
    _cli_env(monkeypatch)
    src = write_csv(tmp_path / "in.csv", [meeting_row(i) for i in range(8)])
    res = CliRunner().invoke(main, ["run", str(src), *SANDBOX, "--rate", "20",
                                    "--status-interval", "0.05"])
    assert res.exit_code == 0, res.output
    status = [m for m in map(STATUS.match, res.stderr.splitlines()) if m]
    assert status, res.stderr
    assert all(m.group(2) == "8" for m in status[-1:])  # the total was counted
    # The lines follow the run: rows done and created grow (they once stayed at 0, the display
    # holding a stats object the run had replaced).
    assert max(int(m.group(1)) for m in status) > 0
    assert max(int(m.group(3)) for m in status) > 0
    assert "\x1b" not in res.stderr
    assert "8 created" in res.stderr


def test_quiet_shows_only_errors_and_the_summary(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """--quiet: no status lines, no preflight, no warnings; the error and the summary stay."""
    _cli_env(monkeypatch)
    rows = [meeting_row(0), meeting_row(1, organizer="ghost@unknown.example")]
    src = write_csv(tmp_path / "in.csv", rows)
    res = CliRunner().invoke(main, ["run", str(src), *SANDBOX, "--rate", "20", "--quiet",
                                    "--status-interval", "0.01"])
    assert res.exit_code == 1, res.output
    lines = res.stderr.splitlines()
    assert lines[0] == ("bulkmeet: ERROR: line 3: Gong answered 404: No Gong user found "
                        "corresponding to the provided organizer email [line 3, key 'ext-1']")
    assert lines[1].startswith("bulkmeet: 2 rows read in ")
    assert lines[1].endswith(": 1 created, 1 failed")
    assert lines[-1] == f"  results: {tmp_path / 'in.sandbox.results.jsonl'}"
    assert not any(STATUS.match(line) for line in lines)


def _read_all(fd: int, proc: subprocess.Popen[bytes], timeout: float = 30) -> bytes:
    out = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.1)
        if ready:
            try:
                chunk = os.read(fd, 65536)
            except OSError:  # the pty's other side closed
                break
            if not chunk:
                break
            out += chunk
        elif proc.poll() is not None:
            break
    return out


@pytest.mark.slow
@pytest.mark.parametrize("where", ["pty", "pipe"])
def test_bulkmeet_as_a_process_on_a_terminal_and_on_a_pipe(tmp_path: Path, where: str) -> None:
    """The real process: on a pseudo-terminal rich draws the bar (cursor codes, glyphs, n/total)
    and removes it before the summary; on a pipe the same run prints plain status lines."""
    src = write_csv(tmp_path / "in.csv", [meeting_row(i) for i in range(6)])
    env = {k: v for k, v in os.environ.items() if k not in ("GITHUB_STEP_SUMMARY", "FORCE_COLOR",
                                                            "TTY_COMPATIBLE", "NO_COLOR")}
    env["TERM"] = "xterm-256color"
    argv = [sys.executable, "-m", "bulkmeet", "run", str(src), *SANDBOX, "--rate", "5",
            "--status-interval", "0.2"]
    if where == "pty":
        master, slave = pty.openpty()
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=slave, env=env, cwd=tmp_path)
        os.close(slave)
        try:
            raw = _read_all(master, proc)
        finally:
            os.close(master)
    else:
        with subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, env=env, cwd=tmp_path) as proc:
            assert proc.stderr is not None
            raw = _read_all(proc.stderr.fileno(), proc)
    assert proc.wait(timeout=30) == 0
    text = raw.decode()
    assert "bulkmeet: 6 rows read in" in text
    if where == "pty":
        assert "━" in text and "\x1b[?25l" in text and "\x1b[2K" in text
        assert re.search(r"\d/6", text)  # the total, counted from the file
        # The bar is erased: after the last cursor move only the summary follows.
        tail = text.rsplit("\x1b[2K", 1)[1]
        assert tail.startswith("bulkmeet: 6 rows read in")
    else:
        assert "\x1b" not in text
        assert any(STATUS.match(line) for line in text.splitlines()), text


@pytest.mark.parametrize(("args", "yaml", "message"), [
    (["--status-interval", "0"], None, "Invalid value for '--status-interval'"),
    ([], "status_interval: 0\n", "status_interval must be greater than 0, not 0"),
    ([], "status_interval: soon\n", "status_interval must be int or float, not 'soon'"),
])
def test_status_interval_must_be_positive(tmp_path: Path, args: list[str], yaml: str | None,
                                          message: str) -> None:
    """The interval is a positive number of seconds, from the flag or the config key."""
    src = write_csv(tmp_path / "in.csv", [meeting_row(0)])
    if yaml is not None:
        (tmp_path / "c.yaml").write_text(yaml)
        args = [*args, "--config", str(tmp_path / "c.yaml")]
    res = CliRunner().invoke(main, ["run", str(src), *SANDBOX, *args])
    assert res.exit_code == 2
    assert message in res.stderr


# --- status lines right from the first one (issue 11, item 8) ----------------------------------


def _first_lines(interval: float, lines: int = 1, total: int = 100) -> list[str]:
    """A run paced at 3/s with the default 2% margin (2.94/s), each request settling one row,
    watched by StatusLines on the virtual clock; the first `lines` lines it prints."""

    async def go() -> list[str]:
        loop = asyncio.get_running_loop()
        gate = Gate(3.0, margin=0.02)
        stats = RunStats(started=loop.time())
        out = io.StringIO()
        display = StatusLines(out, interval=interval, counter=lambda cancel: total,
                              clock=loop.time)
        display.start(stats, gate)

        async def send() -> None:
            while True:
                await gate.acquire()
                stats.requests += 1
                stats.counts["created"] += 1

        sender = asyncio.create_task(send())
        await asyncio.sleep(interval * (lines + 0.5))  # the virtual clock: no real wait
        sender.cancel()
        await display.stop()
        return out.getvalue().splitlines()[:lines]

    return run_virtual(go())


def test_the_first_status_line_measures_from_the_start_of_the_run() -> None:
    """The first line of a CI log (15 s in) shows the rate since the start and an ETA from it;
    45 requests in 15 s at a 2.94/s pace is the pace (one request at each end of the window),
    shown as the limit, not above it."""
    assert _first_lines(15.0) == [
        "bulkmeet: 45/100 rows (45%) in 15s: 45 created · 0 failed · 2.94 req/s (limit 2.94) · "
        "ETA 18s"]


def test_before_the_rate_can_be_measured_it_says_so_and_the_eta_is_an_estimate() -> None:
    """Half a second in, there is no rate to show yet: `rate: measuring…`, and the ETA is rows
    left at the limit, marked `~` and said to be at the limit."""
    first, second = _first_lines(0.5, lines=2)
    assert first == ("bulkmeet: 2/100 rows (2%) in 1s: 2 created · 0 failed · "
                     "rate: measuring… (limit 2.94 req/s) · ETA ~33s at the limit")
    assert second == ("bulkmeet: 3/100 rows (3%) in 1s: 3 created · 0 failed · "
                      "2.94 req/s (limit 2.94) · ETA 32s")  # a second in: measured


def test_rows_settled_by_an_earlier_run_do_not_make_the_eta_optimistic() -> None:
    """A resume counts rows settled before at reading speed: they are done, but not the pace
    of the rows still to send, so the ETA comes from this run's own records."""

    async def go() -> Snapshot:
        loop = asyncio.get_running_loop()
        stats = RunStats(started=loop.time())
        stats.settled = 900
        stats.requests = stats.counts["created"] = 30
        return snapshot(stats, Gate(3.0), 1000, RateMeter(), now=stats.started + 10)

    s = run_virtual(go())
    assert s.done == 930
    assert s.eta == pytest.approx(70 / 3.0)
    assert not s.eta_estimated


def test_no_rate_and_no_estimate_without_a_limit_or_a_total() -> None:
    """Unlimited and not yet measured: no rate, no ETA (nothing honest to estimate from)."""
    s = Snapshot(done=0, total=None, created=0, failed=0, invalid=0, uncertain=0, rate=None,
                 eta=None, paused=0.0, elapsed=0.2)
    assert status_line(s) == "bulkmeet: 0 rows done in 0s: 0 created · 0 failed · rate: measuring…"


# --- the displayed rate never above the displayed limit (issue 11, item 8) ---------------------


@pytest.mark.parametrize(("requests", "span", "limit", "shown"), [
    (45, 15.0, 2.94, "2.94 req/s (limit 2.94)"),  # 3.00/s measured: one request at each end
    (3, 1.0, 2.94, "2.94 req/s (limit 2.94)"),  # the shortest window that counts
    (46, 15.0, 2.94, "3.07 req/s (limit 2.94)"),  # one more than the pace allows: shown
    (44, 15.0, 2.94, "2.93 req/s (limit 2.94)"),  # below: as measured
    (150, 15.0, 9.995, "9.99 req/s (limit 9.99)"),  # 10.00 vs 9.99 by rounding: clamped
    (1500, 15.0, 99.95, "100.0 req/s (limit 100.0)"),
])
def test_the_shown_rate_is_never_above_the_shown_limit_by_rounding_or_window_edges(
        requests: int, span: float, limit: float, shown: str) -> None:
    """Both numbers go through one format; a measured excess that one request at the window's
    edge explains is the pace itself and shows as the limit."""

    async def go() -> Snapshot:
        loop = asyncio.get_running_loop()
        stats = RunStats(started=loop.time())
        stats.requests = requests
        gate = Gate(limit)
        return snapshot(stats, gate, None, RateMeter(), now=stats.started + span)

    assert shown in status_line(run_virtual(go()))


@pytest.mark.parametrize(("value", "text"), [(0.0, "0.00"), (2.944, "2.94"), (2.996, "3.00"),
                                             (9.994, "9.99"), (9.996, "10.00"), (12.34, "12.3"),
                                             (99.96, "100.0"), (1234.5, "1234")])
def test_per_second_keeps_three_significant_digits_without_exponents(value: float,
                                                                     text: str) -> None:
    assert per_second(value) == text
# --- the bar keeps the count on a narrow terminal (issue 11, item 8) ---------------------------


BUSY = Snapshot(done=1234, total=10000, created=1200, failed=30, invalid=4, uncertain=0,
                rate=2.94, eta=3000, paused=14.4, elapsed=420, limit=2.94)


def _bar_line(s: Snapshot, width: int) -> str:
    out = FakeTTY()
    bar = LiveBar(out, width=width)
    bar.open()
    bar.draw(s)
    bar.close()
    frames = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", out.getvalue()).split("\r")
    return [f for f in frames if "1234" in f][-1].rstrip("\n")


CALM = Snapshot(done=1234, total=10000, created=1200, failed=30, invalid=0, uncertain=0,
                rate=2.94, eta=3000, paused=0.0, elapsed=420, limit=2.94)


@pytest.mark.parametrize(("snap", "width", "detail"), [
    (CALM, 120, "1200 created · 30 failed · 2.94 req/s (limit 2.94) · ETA 50m00s"),
    (CALM, 80, "1200 created · 30 failed · ETA 50m00s"),
    (CALM, 60, "1200 created · 30 failed · ETA 50m00s"),
    (BUSY, 120, "1200 created · 30 failed · 4 invalid · paused on 429: 14s left · ETA 50m00s"),
    (BUSY, 80, "30 failed · paused on 429: 14s left · ETA 50m00s"),
    (BUSY, 60, "30 failed · paused on 429: 14s left"),
])
def test_the_bar_keeps_the_count_and_drops_the_least_important_details(
        snap: Snapshot, width: int, detail: str) -> None:
    """On any width the count stays whole, with a bar beside it; the details that do not fit
    go whole, least important first (rate, invalid, uncertain, created, ETA), never cut
    mid-word. (rich alone squeezed the count to `12…` even on 120 columns.)"""
    line = _bar_line(snap, width)
    assert " 1234/10000 " in line
    assert "━" in line
    assert line.endswith(" 1234/10000 " + detail)
    assert len(line) <= width


def test_the_bar_without_a_total_on_a_narrow_terminal() -> None:
    """Stdin: `done/?` stays visible too."""
    s = Snapshot(done=1234, total=None, created=1234, failed=0, invalid=0, uncertain=0,
                 rate=2.9, eta=None, paused=0.0, elapsed=420, limit=2.94)
    line = _bar_line(s, 60)
    assert "1234/?" in line and len(line) <= 60



@pytest.mark.parametrize(("left", "shown"), [(0.2, False), (0.5, False), (1.0, True),
                                             (12.0, True)])
def test_a_pause_about_to_end_is_not_shown_as_0s_left(left: float, shown: bool) -> None:
    from bulkmeet.progress import Snapshot, status_line

    line = status_line(Snapshot(done=3, total=10, created=3, failed=0, invalid=0, uncertain=0,
                                rate=2.9, eta=5.0, paused=left, elapsed=2.0, limit=2.94))
    assert ("paused on 429" in line) is shown, line
    assert "0s left" not in line


def test_skipped_rows_are_in_the_status_line() -> None:
    """Rows done with no request (an earlier run's, the store's) are counted in the line, so
    the parts add up to the rows done."""
    from bulkmeet.progress import Snapshot, status_line

    line = status_line(Snapshot(done=7, total=40, created=1, failed=0, invalid=0, uncertain=0,
                                rate=None, eta=None, paused=0.0, elapsed=1.0, skipped=6))
    assert "7/40 rows" in line and "1 created" in line and "6 skipped" in line
    line = status_line(Snapshot(done=1, total=40, created=1, failed=0, invalid=0, uncertain=0,
                                rate=None, eta=None, paused=0.0, elapsed=1.0))
    assert "skipped" not in line


def test_eta_with_a_slow_server_follows_the_requests_not_the_lagging_records() -> None:
    """A server that takes 2 s to answer: 4 s in, 12 requests have left at 3/s but only 6 rows
    have their record. The rows will finish at the requests' pace; the ETA says so (34 rows at
    ~3/s: about 11 s), not 34 rows at the records' 1.5/s (23 s and growing)."""

    async def go() -> Snapshot:
        gate = Gate(3.0)
        meter = RateMeter()
        s = stats_with(created=0)
        snapshot(s, gate, 40, meter, now=s.started)
        s.counts["created"] = 6
        s.requests = 12
        return snapshot(s, gate, 40, meter, now=s.started + 4)

    snap = run_virtual(go())
    assert snap.eta is not None and 9 <= snap.eta <= 13, snap.eta
