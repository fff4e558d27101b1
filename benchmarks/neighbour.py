"""(e) `--rate auto` beside another integration: `bulkmeet run --rate auto` as a subprocess
against a sandbox (3/s, fixed, sliding or bucket) that itself spends a steady 1 call/s of the
same quota (SandboxSettings.neighbour) and counts how many of those calls it had to refuse.

Every run lasts `seconds` from the moment the sandbox listens (its neighbour starts then);
bulkmeet is then stopped with SIGINT. Figures come from the sandbox: its request log (what it
accepted from bulkmeet, when) and its neighbour counters.
"""

from __future__ import annotations

import math
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from .common import SandboxProcess, SandboxReport, child_env, write_config, write_input

WINDOWS = ("fixed", "sliding", "bucket")
SETTLED = 60.0  # figures "after the first minute" start here
SPAN = 10.0  # the recovery is read on bulkmeet's accepted rate over the last SPAN seconds


@dataclass(frozen=True, slots=True)
class Beside:
    window: str
    law: str  # "new" or "old"
    seconds: float
    neighbour_for: float | None  # None: the neighbour runs throughout
    accepted: list[float]  # bulkmeet's accepted calls, seconds from the sandbox's start
    limited: list[float]  # bulkmeet's 429s, same clock
    neighbour_calls: int
    neighbour_refused: int

    def rate(self, start: float, end: float) -> float:
        return sum(1 for t in self.accepted if start <= t < end) / (end - start)

    def per_minute(self, start: float, end: float) -> float:
        return sum(1 for t in self.limited if start <= t < end) / ((end - start) / 60)

    @property
    def refused_share(self) -> float:
        return self.neighbour_refused / self.neighbour_calls if self.neighbour_calls else 0.0

    @property
    def recovery(self) -> float | None:
        """Seconds from the neighbour's stop until bulkmeet's accepted rate over the last
        SPAN seconds first exceeds 2.8/s; None if it never does (or the neighbour never
        stops)."""
        if self.neighbour_for is None:
            return None
        return first_above(self.accepted, 2.8, self.neighbour_for, SPAN)

    @property
    def ok(self) -> bool:
        if self.neighbour_for is not None:
            back = self.recovery
            return back is not None and back <= 120
        end = self.seconds
        return (self.rate(SETTLED, end) >= 1.8 and self.refused_share <= 0.02
                and self.per_minute(SETTLED, end) <= 1)


def first_above(times: Sequence[float], rate: float, after: float, span: float) -> float | None:
    """The first t (an accepted call) with t >= after + span whose trailing `span` seconds
    hold more than rate × span calls, as seconds after `after`."""
    oks = sorted(t for t in times if t >= after)
    j = 0
    for i, t in enumerate(oks):
        while oks[j] <= t - span:
            j += 1
        if t - after >= span and (i - j + 1) / span > rate:
            return t - after
    return None


def beside_of(window: str, law: str, seconds: float, neighbour_for: float | None,
              report: SandboxReport, t0: float) -> Beside:
    neighbour = report.stats["neighbour"]
    return Beside(window, law, seconds, neighbour_for,
                  [t - t0 for t in report.times(200)], [t - t0 for t in report.times(429)],
                  int(neighbour["calls"]), int(neighbour["refused"]))


def _start(work: Path, name: str, url: str, input_path: Path, law: str,
           ) -> subprocess.Popen[bytes]:
    config = write_config(work / f"{name}.yaml")
    module = "bulkmeet" if law == "new" else "benchmarks.oldlaw"
    return subprocess.Popen(
        [sys.executable, "-m", module, "run", str(input_path), "--config", str(config),
         "--rate", "auto", "--out", str(work / f"{name}.results.jsonl"), "--fresh", "-q"],
        cwd=work, env=child_env(GONG_BASE_URL=url), stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL)


def run_beside(work: Path, seconds: float, *, stop_after: float = 60.0,
               old: bool = True) -> list[Beside]:
    """Every run at once, each with its own sandbox: the new law beside a steady neighbour and
    beside one that stops after `stop_after` s, in each window kind; the old law (if `old`)
    beside a steady one."""
    rows = math.ceil(3 * seconds) + 10  # more than any run can send
    input_path = write_input(work / "beside.csv", rows)
    plan = [(w, "new", None) for w in WINDOWS] + [(w, "new", stop_after) for w in WINDOWS]
    if old:
        plan += [(w, "old", None) for w in WINDOWS]
    with ExitStack() as stack:
        started = []
        for i, (window, law, until) in enumerate(plan):
            sandbox = stack.enter_context(SandboxProcess(
                rate=3, window=window, neighbour=1.0, neighbour_for=until))
            t0 = time.monotonic()  # the neighbour's first call, within a few ms
            proc = _start(work, f"beside-{i}", sandbox.url, input_path, law)
            started.append((window, law, until, sandbox, t0, proc))
        results = []
        for window, law, until, sandbox, t0, proc in started:
            time.sleep(max(0.0, t0 + seconds - time.monotonic()))
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            results.append(beside_of(window, law, seconds, until, sandbox.stop(), t0))
    return results
