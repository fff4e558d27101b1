"""(a) rate adherence and (d) 429 recovery: `bulkmeet run` as a subprocess against sandboxes.

Both read the sandbox's own request log (arrival times on time.monotonic()), so what is
measured is what the server saw, not what the client believes it sent.
"""

from __future__ import annotations

import math
import re
import subprocess
import sys
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import orjson

from bulkmeet.config import DEFAULT_RATE_MARGIN

from .common import SandboxProcess, SandboxReport, child_env, write_config, write_input

WINDOWS = ("fixed", "sliding", "bucket")
_SUMMARY = re.compile(r"(\d+) requests at ([\d.]+)/s; (\d+) answered 429")


@dataclass(frozen=True, slots=True)
class Journal:
    """What bulkmeet's results file says: requests sent and the span of their `sending` lines."""

    requests: int
    created: int
    rate: float  # (requests - 1) / span of the sending entries
    summary: str  # the summary line bulkmeet printed, as printed
    sends: tuple[float, ...] = ()  # wall-clock times of the sending entries (1 ms steps)

    @classmethod
    def read(cls, path: Path, stderr: str) -> Journal:
        sends: list[float] = []
        created = 0
        for line in path.read_bytes().splitlines():
            entry = orjson.loads(line)
            if entry["status"] == "sending":
                sends.append(datetime.fromisoformat(entry["finishedAt"]).timestamp())
            elif entry["status"] == "created":
                created += 1
        span = max(sends) - min(sends) if sends else 0.0
        found = _SUMMARY.search(stderr)
        return cls(len(sends), created, (len(sends) - 1) / span if span > 0 else 0.0,
                   found.group(0) if found else "(no summary line found)", tuple(sorted(sends)))


def run_bulkmeet(work: Path, name: str, url: str, input_path: Path, rate: float,
                 ) -> subprocess.Popen[bytes]:
    """Start `bulkmeet run` on `input_path` against `url`; its stderr is read at the end."""
    config = write_config(work / f"{name}.yaml")
    return subprocess.Popen(
        [sys.executable, "-m", "bulkmeet", "run", str(input_path), "--config", str(config),
         "--rate", f"{rate:g}", "--out", str(work / f"{name}.results.jsonl"), "--fresh"],
        cwd=work, env=child_env(GONG_BASE_URL=url), stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE)


def finish(proc: subprocess.Popen[bytes], timeout: float) -> str:
    _, err = proc.communicate(timeout=timeout)
    text = err.decode(errors="replace")
    if proc.returncode != 0:
        raise RuntimeError(f"bulkmeet run exited {proc.returncode}: {text[-2000:]}")
    return text


# -- (a) rate adherence ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Pacing:
    window: str
    set_rate: float
    accepted: int
    rate_limited: int
    server_rate: float  # accepted requests, first to last, as the sandbox logged them
    journal: Journal
    tightest: float  # shortest span of floor(rate)+1 consecutive arrivals (< 1 s risks a 429)
    tightest_sent: float  # the same, of the `sending` entries bulkmeet journalled
    min_gap: float
    max_gap: float

    @property
    def ratio(self) -> float:
        return self.server_rate / self.set_rate

    @property
    def ok(self) -> bool:
        return self.ratio >= 0.97 and self.rate_limited == 0 and self.journal.created > 0


def tightest(times: Sequence[float], rate: float) -> float:
    """The shortest span of floor(rate) + 1 consecutive calls: under 1 s, a server that holds
    floor(rate) calls in any one second answers the last of them 429."""
    k = max(1, math.floor(rate))
    return min((times[i + k] - times[i] for i in range(len(times) - k)), default=math.inf)


def pacing_of(window: str, rate: float, report: SandboxReport, journal: Journal) -> Pacing:
    ok = report.times(200)
    every = report.times()
    rate_ = (len(ok) - 1) / (ok[-1] - ok[0]) if len(ok) > 1 and ok[-1] > ok[0] else 0.0
    gaps = [b - a for a, b in zip(every, every[1:], strict=False)] or [0.0]
    return Pacing(window, rate, len(ok), int(report.stats["rate_limited"]), rate_, journal,
                  tightest(every, rate), tightest(journal.sends, rate), min(gaps), max(gaps))


def run_pacing(work: Path, seconds: float, rate: float = 3.0) -> list[Pacing]:
    """The three window modes at once, each with its own sandbox and bulkmeet process."""
    rows = math.ceil(rate * (1 - DEFAULT_RATE_MARGIN) * seconds) + 1
    input_path = write_input(work / "pacing.csv", rows)
    with ExitStack() as stack:
        sandboxes = {w: stack.enter_context(SandboxProcess(rate=rate, window=w)) for w in WINDOWS}
        procs = {w: run_bulkmeet(work, f"pacing-{w}", sb.url, input_path, rate)
                 for w, sb in sandboxes.items()}
        errs = {w: finish(p, timeout=3 * seconds + 60) for w, p in procs.items()}
        reports = {w: sb.stop() for w, sb in sandboxes.items()}
    return [pacing_of(w, rate, reports[w],
                      Journal.read(work / f"pacing-{w}.results.jsonl", errs[w]))
            for w in WINDOWS]


# -- (d) recovery after a 429 ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Recovery:
    retry_after: int
    gaps: list[float]  # from each 429 to the next request the sandbox saw
    sent_in_pause: int  # requests that arrived less than retry_after after a 429
    journal: Journal

    @property
    def ok(self) -> bool:
        return bool(self.gaps) and self.sent_in_pause == 0 and all(
            self.retry_after <= g <= self.retry_after + 0.1 for g in self.gaps)


def recovery_of(report: SandboxReport, retry_after: int, journal: Journal) -> Recovery:
    log = sorted(report.log, key=lambda e: e[0])
    gaps: list[float] = []
    inside = 0
    for i, (t, status) in enumerate(log):
        if status != 429:
            continue
        later = [u for u, _ in log[i + 1:]]
        if later:
            gaps.append(later[0] - t)
        inside += sum(1 for u in later if u - t < retry_after)
    return Recovery(retry_after, gaps, inside, journal)


def run_recovery(work: Path, rows: int, retry_after: int = 2) -> Recovery:
    """bulkmeet at 10/s against a sandbox that allows 3 per clock second and answers every
    429 with Retry-After: 2. At 10/s calls are 100 ms apart, far more than a loopback answer
    takes, so no call is in flight when a 429 arrives: any call seen within the 2 s was sent
    during the pause."""
    input_path = write_input(work / "recovery.csv", rows)
    with SandboxProcess(rate=3, window="fixed", retry_after_fixed=retry_after) as sb:
        proc = run_bulkmeet(work, "recovery", sb.url, input_path, rate=10)
        err = finish(proc, timeout=30 + rows * (retry_after + 1))
        report = sb.stop()
    return recovery_of(report, retry_after, Journal.read(work / "recovery.results.jsonl", err))
