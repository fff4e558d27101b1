"""(c) memory: peak RSS of a bulkmeet run (no rate limit) as the input grows.

Each run is a fresh child process (`benchmarks.bulk`), whose ru_maxrss is its own peak.
"full" runs send every row to a sandbox in a third process; a million rows at the few
thousand rows/s this machine manages would take many minutes, so the largest sizes run
"local": the whole pipeline (reader, mapping, triage, queue, workers, gate, journal, quota)
with only the HTTP client replaced by one that answers at once (benchmarks.bulk.LocalClient).
Inputs have no externalId, so every key is a 34-character content hash: the worst case for
the per-row index of keys that duplicate detection keeps.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .common import SandboxProcess, run_json


@dataclass(frozen=True, slots=True)
class MemoryRun:
    mode: str  # "full" (sandbox) or "local" (stand-in client)
    rows: int
    report: dict[str, Any]  # from benchmarks.bulk

    @property
    def peak_mb(self) -> float:
        return float(self.report["peak_rss_mb"])

    @property
    def start_mb(self) -> float:
        return float(self.report["rss_start_mb"])

    @property
    def seen_mb(self) -> float:
        return float(self.report["seen_mb"])

    @property
    def rate(self) -> float:
        return float(self.report["rows"] / self.report["seconds"])


LIMIT_MB = 100.0
FLAT_MB = 10.0  # "flat": the largest input may cost this much more than the smallest


def growth_mb(runs: list[MemoryRun]) -> float:
    """Peak RSS of the largest input minus that of the smallest."""
    ordered = sorted(runs, key=lambda r: r.rows)
    return ordered[-1].peak_mb - ordered[0].peak_mb if ordered else 0.0


def groups(runs: list[MemoryRun]) -> list[list[MemoryRun]]:
    """The runs of each mode that ran, smallest input first."""
    by_mode = [sorted((r for r in runs if r.mode == m), key=lambda r: r.rows)
               for m in ("full", "local")]
    return [g for g in by_mode if g]


def under_limit(runs: list[MemoryRun]) -> bool:
    return bool(runs) and max(r.peak_mb for r in runs) < LIMIT_MB


def is_flat(runs: list[MemoryRun]) -> bool:
    return all(growth_mb(g) <= FLAT_MB for g in groups(runs))


def memory_ok(runs: list[MemoryRun]) -> bool:
    """Under the limit everywhere, and flat in each mode that ran."""
    return under_limit(runs) and is_flat(runs)


def measure(work: Path, mode: str, rows: int) -> MemoryRun:
    input_path = work / f"memory-{mode}-{rows}.csv"
    out = work / f"memory-{mode}-{rows}.results.jsonl"
    args = ["-m", "benchmarks.bulk", str(input_path), str(out), "--generate", str(rows)]
    try:
        if mode == "local":
            # Niced: it may run beside the pacing benchmark, whose timing must not suffer.
            report = run_json([*args, "--local", "--nice", "19"], cwd=work,
                              timeout=120 + rows / 1000)
        else:
            with SandboxProcess(rate=None, log_limit=0) as sb:
                report = run_json([*args, "--url", sb.url], cwd=work, timeout=120 + rows / 200)
                sb.stop()
    finally:  # a million rows leave ~100 MB of input and ~600 MB of journal behind
        input_path.unlink(missing_ok=True)
        out.unlink(missing_ok=True)
    if report["counts"] != {"created": rows}:
        raise RuntimeError(f"memory {mode} {rows}: expected {rows} created, got {report}")
    return MemoryRun(mode, rows, report)


def run_memory(work: Path, full: list[int], local: list[int]) -> list[MemoryRun]:
    return [measure(work, "full", n) for n in full] + [measure(work, "local", n) for n in local]
