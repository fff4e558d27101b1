"""What every part of the benchmark shares: input files, sandbox processes, child processes."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parents[1]
HEADER = ("startTime", "endTime", "title", "organizerEmail", "externalId", "invitees")
CREDENTIALS = {"GONG_ACCESS_KEY": "bench-key", "GONG_ACCESS_KEY_SECRET": "bench-secret"}
_EPOCH = datetime(2027, 1, 4, 9, 0, tzinfo=UTC)


def meeting_row(i: int, *, external_id: bool = True) -> list[str]:
    """Row i of a made-up meetings sheet: every row distinct, every row valid."""
    start = _EPOCH + timedelta(minutes=15 * i)
    end = start + timedelta(minutes=30)
    fmt = "%Y-%m-%dT%H:%M:%SZ"
    ext = f"bench-{i:07d}" if external_id else ""
    return [start.strftime(fmt), end.strftime(fmt), f"Meeting {i}", f"rep{i % 50}@seller.example",
            ext, f"guest{i}@client{i % 97}.example"]


def write_input(path: Path, rows: int, *, external_id: bool = True) -> Path:
    """A CSV of `rows` meetings. Without external ids every key is a 34-character content hash,
    the longest key bulkmeet keeps."""
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(HEADER)
        for i in range(rows):
            w.writerow(meeting_row(i, external_id=external_id))
    return path


def client_args(who: str, url: str, input_path: Path, out: Path, concurrency: int = 8,
                ) -> list[str]:
    """`python` arguments that post `input_path` to `url`: the hand-written script ("hand") or
    bulkmeet's pipeline ("bulk")."""
    if who == "hand":
        return ["-m", "benchmarks.handwritten", url, str(input_path), str(out), str(concurrency)]
    return ["-m", "benchmarks.bulk", str(input_path), str(out), "--url", url,
            "--concurrency", str(concurrency)]


def write_config(path: Path, **values: Any) -> Path:
    """A bulkmeet YAML config; the quota file stays in the work folder, never in ~/.local."""
    values = {"quota_file": str(path.with_suffix(".quota.json")), "daily_budget": 10**9, **values}
    lines = [f"{key}: {orjson.dumps(value).decode()}" for key, value in values.items()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def child_env(**extra: str) -> dict[str, str]:
    env = {**os.environ, **CREDENTIALS, **extra}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    return env


@dataclass(frozen=True, slots=True)
class Weighed:
    """A child process run to its end: exit code, wall seconds, peak RSS and what it said."""

    code: int
    seconds: float
    peak_mb: float
    output: str


def weigh_bulkmeet(args: list[str], *, cwd: Path, env: dict[str, str],
                   said: Path) -> Weighed:
    """Run `python -m bulkmeet args...` and read its own peak RSS from the kernel (os.wait4:
    that child's, not the largest of every child so far). Its output goes to the file `said`,
    not a pipe: nobody reads a pipe during wait4."""
    argv = [sys.executable, "-m", "bulkmeet", *args]
    with open(said, "wb") as sink:
        t0 = time.perf_counter()
        proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=sink, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - t0
    proc.returncode = code = os.waitstatus_to_exitcode(status)
    return Weighed(code, round(seconds, 1), round(usage.ru_maxrss / 1024, 1),
                   said.read_text(errors="replace"))


def run_json(args: list[str], *, cwd: Path, timeout: float) -> dict[str, Any]:
    """Run `python args...` and read the one JSON object it prints last on stdout."""
    done = subprocess.run([sys.executable, *args], cwd=cwd, env=child_env(), capture_output=True,
                          timeout=timeout, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{args[:2]} exited {done.returncode}: {done.stderr.decode()[-2000:]}")
    data: dict[str, Any] = orjson.loads(done.stdout.splitlines()[-1])
    return data


@dataclass(frozen=True, slots=True)
class SandboxReport:
    stats: dict[str, Any]
    log: list[tuple[float, int | None]]  # (arrival time.monotonic(), HTTP status), in order

    def times(self, status: int | None = None) -> list[float]:
        return sorted(t for t, s in self.log if status is None or s == status)


class SandboxProcess:
    """`benchmarks.server` in a child process: `with SandboxProcess(rate=3) as sb: sb.url`,
    then `sb.stop()` for its report."""

    def __init__(self, **spec: Any) -> None:
        self.spec = spec
        self._proc: subprocess.Popen[bytes] | None = None
        self.url = ""

    def __enter__(self) -> SandboxProcess:
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.server", orjson.dumps(self.spec).decode()],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=child_env(), cwd=ROOT)
        assert self._proc.stdout is not None
        self.url = self._proc.stdout.readline().decode().strip()
        if not self.url.startswith("http://127."):
            self._kill()
            raise RuntimeError(f"the sandbox did not start: {self.url!r}")
        return self

    def stop(self) -> SandboxReport:
        proc, self._proc = self._proc, None
        assert proc is not None and proc.stdin is not None, "the sandbox is not running"
        out, _ = proc.communicate(b"stop\n", timeout=60)
        data = orjson.loads(out.splitlines()[-1])
        return SandboxReport(data["stats"], [(t, s) for t, s in data["log"]])

    def _kill(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            proc.kill()
            proc.wait()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._kill()


def peak_rss_mb() -> float:
    """This process's peak resident set size (ru_maxrss is in KiB on Linux)."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rss_mb() -> float:
    """This process's resident set size now."""
    with open("/proc/self/statm", encoding="ascii") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
