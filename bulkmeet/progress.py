"""What a run shows while it runs: a live bar on a terminal, a status line every N seconds
elsewhere (CI logs), nothing with --quiet.

Everything shown is read from the running run: its `RunStats` for counts and
requests, the session's `Gate` for a 429 pause and the rate. A `Snapshot` is computed from them on
each tick; the two displays only differ in how they draw it. The bar is rich's (a well-kept
library: cursor handling, terminal width, redirecting stderr above the bar), not escape codes.

The total is known only for a regular file: `count_rows` reads it once more through the same
reader, in a worker thread, so the run starts at once and the total appears when counted
(one streaming parse, constant memory; it stops early if the run ends first). Stdin and pipes
cannot be read twice, so they show no total and no ETA.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import stat
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, TextIO

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    SpinnerColumn,
    TextColumn,
)
from rich.table import Column

from .config import DEFAULT_STATUS_INTERVAL
from .engine import RunStats
from .errors import BulkmeetError
from .gate import Gate
from .models import Status
from .reader import read_rows

BAR_REFRESH = 0.25  # seconds between redraws of the bar: smooth enough for a 1 s countdown
RATE_WINDOW = 15.0  # seconds of history behind the current rate and the ETA
MIN_SPAN = 1.0  # seconds of history before a rate is shown as measured
_CANCEL_CHECK = 1024  # rows counted between looks at the cancel flag

RowCounter = Callable[[threading.Event], int | None]


def count_rows(path: str, *, fmt: str | None = None, delimiter: str | None = None,
               encoding: str = "utf-8", sheet: str | None = None,
               cancel: threading.Event | None = None) -> int | None:
    """How many records `path` holds, as the run will read them; None when unknown.

    None for stdin and anything but a regular file (reading a pipe would consume it), when the
    file cannot be read (the run reports that itself), or when `cancel` is set first."""
    if path == "-":
        return None
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            return None
        n = 0
        with read_rows(path, fmt=fmt, delimiter=delimiter, encoding=encoding,
                       sheet=sheet) as rows:
            for _ in rows:
                n += 1
                if n % _CANCEL_CHECK == 0 and cancel is not None and cancel.is_set():
                    return None
        return n
    except (OSError, BulkmeetError):
        return None


def rows_done(stats: RunStats) -> int:
    """Rows with their outcome settled: a record written this run, or settled by an earlier one."""
    return sum(stats.counts.values()) + stats.settled + stats.uncertain_before


class RateMeter:
    """Requests/s and rows/s over the last `window` seconds, from samples taken on each tick.

    `span` is the history behind the last sample's figures. `snapshot` seeds a new meter with
    the run's start (nothing sent, nothing done), so the first tick already measures."""

    def __init__(self, window: float = RATE_WINDOW) -> None:
        self.window = window
        self._samples: deque[tuple[float, int, int]] = deque()
        self.span = 0.0

    @property
    def empty(self) -> bool:
        return not self._samples

    def sample(self, now: float, requests: int, done: int) -> tuple[float, float]:
        samples = self._samples
        samples.append((now, requests, done))
        while len(samples) > 2 and now - samples[1][0] >= self.window:
            samples.popleft()
        t0, r0, d0 = samples[0]
        self.span = span = now - t0
        if span <= 0:
            return 0.0, 0.0
        return (requests - r0) / span, (done - d0) / span


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What the display shows at one moment."""

    done: int
    total: int | None
    created: int
    failed: int
    invalid: int
    uncertain: int
    rate: float | None  # requests per second, recently; None until MIN_SPAN of history
    eta: float | None  # seconds to the end; None when the total or the pace is unknown
    paused: float  # seconds left of a 429 pause; 0 when not paused
    elapsed: float
    limit: float | None = None  # the gate's rate now (auto mode moves it); None: unlimited
    eta_estimated: bool = False  # the ETA is rows left at the limit, not a measured pace
    skipped: int = 0  # done already (an earlier run, the store) or left out by the filter


def snapshot(stats: RunStats, gate: Gate | None, total: int | None, meter: RateMeter,
             now: float | None = None) -> Snapshot:
    """What to show now. The rate is measured over the meter's window once it spans MIN_SPAN;
    a measured rate above the limit by no more than one request over the window (a request at
    each end of it) is the limit's own pace and is shown as the limit. The ETA comes from the
    measured pace of this run's own records (rows an earlier run settled are read at once and
    say nothing of the pace); before there is one, from the rows left at the limit, marked as
    an estimate."""
    now = time.monotonic() if now is None else now
    done = rows_done(stats)
    own = sum(stats.counts.values())  # rows with a record written this run
    if meter.empty:
        meter.sample(stats.started, 0, 0)
    measured, throughput = meter.sample(now, stats.requests, own)
    limit = gate.effective_rate if gate is not None else None
    rate: float | None = None
    if meter.span >= MIN_SPAN:
        rate = measured
        if limit is not None and limit < rate <= limit + 1 / meter.span:
            rate = limit
    paused = gate.remaining_pause() if gate is not None else 0.0
    eta: float | None = None
    estimated = False
    if total is not None:
        left = max(0, total - done)
        if left == 0:
            eta = 0.0
        elif rate is not None and throughput > 0:
            # Rows finish at the pace requests leave once the answers come back: early on, or
            # with a slow server, the records lag the requests, and their pace alone would
            # promise minutes for seconds of work.
            eta = paused + left / max(throughput, rate)
        elif limit is not None:
            eta, estimated = paused + left / limit, True
    c = stats.counts
    return Snapshot(
        done=done, total=total,
        created=c[Status.CREATED.value] + c[Status.UPDATED.value] + c[Status.DELETED.value],
        failed=c[Status.FAILED.value], invalid=c[Status.INVALID.value],
        uncertain=c[Status.UNCERTAIN.value] + stats.uncertain_before,
        skipped=c[Status.SKIPPED.value] + stats.settled - stats.refused_before,
        rate=rate, eta=eta, paused=paused, elapsed=now - stats.started, limit=limit,
        eta_estimated=estimated,
    )


def duration(seconds: float) -> str:
    """42s, 2m10s, 1h02m: short enough for a status line."""
    s = max(0, round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def per_second(value: float) -> str:
    """A rate with three significant digits and no exponent: 2.94, 12.3, 250. The rate and its
    limit both go through here, and rounding never reverses an order, so a rate at or below the
    limit never reads above it."""
    if value < 10:
        return f"{value:.2f}"
    if value < 100:
        return f"{value:.1f}"
    return f"{value:.0f}"


# What a narrow bar drops first: the part with the highest number goes first.
_DROP_ORDER: Final = {"skipped": 7, "rate": 6, "invalid": 5, "uncertain": 4, "created": 3, "eta": 2,
                      "failed": 1, "paused": 0}


def _parts(s: Snapshot) -> list[tuple[str, str]]:
    parts = [("created", f"{s.created} created"), ("failed", f"{s.failed} failed")]
    if s.skipped:
        parts.append(("skipped", f"{s.skipped} skipped"))
    if s.invalid:
        parts.append(("invalid", f"{s.invalid} invalid"))
    if s.uncertain:
        parts.append(("uncertain", f"{s.uncertain} uncertain"))
    if s.rate is not None:
        limit = f" (limit {per_second(s.limit)})" if s.limit else ""
        parts.append(("rate", f"{per_second(s.rate)} req/s{limit}"))
    else:
        limit = f" (limit {per_second(s.limit)} req/s)" if s.limit else ""
        parts.append(("rate", f"rate: measuring…{limit}"))
    if s.paused >= 1:  # under a second it would read "0s left"
        parts.append(("paused", f"paused on 429: {duration(s.paused)} left"))
    if s.eta is not None:
        eta = f"ETA ~{duration(s.eta)} at the limit" if s.eta_estimated else (
            f"ETA {duration(s.eta)}")
        parts.append(("eta", eta))
    return parts


def details(s: Snapshot, width: int | None = None) -> str:
    """Counts, rate, pause countdown, ETA: `110 created · 3 failed · 2.94 req/s · ETA 2m10s`.

    With `width`, whole parts are left out, least important first (see _DROP_ORDER), until the
    rest fits; a last part still too long is cut with `…`."""
    parts = _parts(s)
    while width is not None and len(parts) > 1 and len(" · ".join(t for _, t in parts)) > width:
        parts.remove(max(parts, key=lambda p: _DROP_ORDER[p[0]]))
    text = " · ".join(t for _, t in parts)
    if width is not None and len(text) > width:
        text = text[:max(0, width - 1)] + "…" if width > 0 else ""
    return text


def status_line(s: Snapshot) -> str:
    if s.total is None:
        rows = f"{s.done} rows done"
    else:
        pct = 100 * s.done // s.total if s.total else 100
        rows = f"{s.done}/{s.total} rows ({pct}%)"
    return f"bulkmeet: {rows} in {duration(s.elapsed)}: {details(s)}"


class Display:
    """Draws snapshots of a run every `interval` seconds until stopped. Subclasses draw."""

    interval = BAR_REFRESH

    def __init__(self, counter: RowCounter | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._counter = counter
        self._clock = clock
        self._cancel = threading.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self.total: int | None = None
        self.stats: RunStats | None = None
        self.gate: Gate | None = None
        self.meter = RateMeter()

    def start(self, stats: RunStats, gate: Gate | None) -> None:
        """Begin drawing (on the running loop) what `stats` and `gate` say as the run goes;
        the run's `on_start` calls this. Called again (sync's next phase), it draws the new
        stats from then on."""
        started = self.stats is not None
        self.stats, self.gate = stats, gate
        if started:
            return
        self.open()
        self._tasks.append(asyncio.create_task(self._tick(), name="progress"))
        if self._counter is not None:
            self._tasks.append(asyncio.create_task(self._count(self._counter), name="count"))

    async def _count(self, counter: RowCounter) -> None:
        self.total = await asyncio.to_thread(counter, self._cancel)

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            self.draw(self.snapshot())

    def snapshot(self) -> Snapshot:
        assert self.stats is not None
        return snapshot(self.stats, self.gate, self.total, self.meter, now=self._clock())

    async def stop(self) -> None:
        """Stop drawing and clear the display; safe to call when never started."""
        self._cancel.set()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        if self.stats is not None:
            self.close()

    def open(self) -> None:
        pass

    def draw(self, s: Snapshot) -> None:
        pass

    def close(self) -> None:
        pass


class LiveBar(Display):
    """A rich progress bar on a terminal, removed at the end (the summary follows it).

    Each draw fits the line to the terminal's width: the `done/total` count always shows whole;
    then a bar of at least BAR_MIN cells (when the terminal has room for one), then as many
    details as fit (`details(width=...)` leaves out the least important first), then a longer
    bar, then the `bulkmeet` label."""

    BAR_MIN: Final = 8
    BAR_MAX: Final = 40
    LABEL: Final = "bulkmeet"

    def __init__(self, stream: TextIO, counter: RowCounter | None = None,
                 width: int | None = None) -> None:
        super().__init__(counter)
        self.console = Console(file=stream, force_terminal=True, width=width)
        self._spinner = SpinnerColumn()
        self._label = TextColumn(self.LABEL)
        self._bar = BarColumn(bar_width=self.BAR_MAX)
        self._counted = MofNCompleteColumn()
        self._detail = TextColumn("{task.fields[detail]}", markup=False,
                                  table_column=Column(no_wrap=True, overflow="ellipsis"))
        self.bar = Progress(
            self._spinner, self._label, self._bar, self._counted, self._detail,
            console=self.console, transient=True, auto_refresh=False, redirect_stderr=True,
            redirect_stdout=False,
        )
        self._task = self.bar.add_task("rows", total=None, detail="starting")

    def open(self) -> None:
        self.bar.start()

    def draw(self, s: Snapshot) -> None:
        self.bar.update(self._task, completed=s.done, total=s.total,
                        detail=self._fit(s, self.console.width))
        self.bar.refresh()

    def _fit(self, s: Snapshot, width: int) -> str:
        """Choose the columns and the bar's width for `width` cells; return the details."""
        # The count column pads `done` to the width of `total`: `  12/10000`.
        count = 2 * len(str(s.total)) + 1 if s.total is not None else len(f"{s.done}/?")
        room = width - 1 - 1 - count  # the spinner, the count and the space between them
        bar = self.BAR_MIN if room - (self.BAR_MIN + 1) >= 2 * self.BAR_MIN else 0
        room -= bar + 1 if bar else 0
        text = details(s, max(0, room - 1))
        spare = room - 1 - len(text)
        if bar:
            grow = min(max(0, spare), self.BAR_MAX - bar)
            bar, spare = bar + grow, spare - grow
        label = spare >= len(self.LABEL) + 1
        columns: list[ProgressColumn] = [self._spinner]
        if label:
            columns.append(self._label)
        if bar:
            self._bar.bar_width = bar
            columns.append(self._bar)
        columns += [self._counted, self._detail]
        self.bar.columns = tuple(columns)
        return text

    def close(self) -> None:
        self.bar.stop()


class StatusLines(Display):
    """One plain line every `interval` seconds: no escape codes, fit for CI logs."""

    def __init__(self, stream: TextIO, interval: float = DEFAULT_STATUS_INTERVAL,
                 counter: RowCounter | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(counter, clock)
        self.stream = stream
        self.interval = interval

    def draw(self, s: Snapshot) -> None:
        self.stream.write(status_line(s) + "\n")
        self.stream.flush()


def is_terminal(stream: TextIO) -> bool:
    """A real terminal that can move the cursor (not a pipe, a file or TERM=dumb)."""
    try:
        tty = stream.isatty()
    except (AttributeError, ValueError):  # closed or not a real file
        return False
    return tty and os.environ.get("TERM", "") != "dumb"


def make_display(stream: TextIO, *, quiet: bool = False,
                 interval: float = DEFAULT_STATUS_INTERVAL,
                 counter: RowCounter | None = None) -> Display:
    """The display for `stream`: nothing when quiet, a bar on a terminal, else status lines."""
    if quiet:
        return Display()
    if is_terminal(stream):
        return LiveBar(stream, counter)
    return StatusLines(stream, interval, counter)
