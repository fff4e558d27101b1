"""(b) overhead: bulkmeet's pipeline with no rate limit versus the twenty-line script.

Both post the same rows with 8 at once to an unlimited sandbox in a third process, each run
against a fresh sandbox, in alternating order (the machine is shared and noisy: a neighbour's
burst should hit both sides alike). Throughput is rows/s inside the client, after imports;
CPU is the client's own process time per row, which noise on the other core moves less.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bulkmeet.gate import Gate
from bulkmeet.mapping import Mapper
from bulkmeet.models import Record, Row, Status, payload_digest
from bulkmeet.quota import DailyQuota
from bulkmeet.reader import read_rows
from bulkmeet.results import ResultsWriter
from bulkmeet.triage import KeyIndex

from .common import SandboxProcess, client_args, run_json, write_input


@dataclass(frozen=True, slots=True)
class Overhead:
    rows: int
    hand: list[dict[str, Any]]  # one report per run: rows, seconds, cpu_seconds
    bulk: list[dict[str, Any]]
    stages: dict[str, float]  # from breakdown(): us a row

    @staticmethod
    def _rates(runs: list[dict[str, Any]]) -> list[float]:
        return [r["rows"] / r["seconds"] for r in runs]

    @staticmethod
    def _cpu_us(runs: list[dict[str, Any]]) -> float:
        return float(statistics.median(r["cpu_seconds"] / r["rows"] * 1e6 for r in runs))

    @property
    def ratios(self) -> list[float]:
        """bulkmeet's rows/s over the script's, pair by pair."""
        return [b / h for b, h in zip(self._rates(self.bulk), self._rates(self.hand), strict=True)]

    @property
    def ratio(self) -> float:
        return statistics.median(self.ratios)

    @property
    def best_ratio(self) -> float:
        return max(self._rates(self.bulk)) / max(self._rates(self.hand))

    @property
    def hand_rate(self) -> float:
        return statistics.median(self._rates(self.hand))

    @property
    def bulk_rate(self) -> float:
        return statistics.median(self._rates(self.bulk))

    @property
    def hand_cpu_us(self) -> float:
        return self._cpu_us(self.hand)

    @property
    def bulk_cpu_us(self) -> float:
        return self._cpu_us(self.bulk)

    @property
    def cpu_ratio(self) -> float:
        """The script's CPU per row over bulkmeet's: the rows/s ratio a client-bound run on a
        quiet machine would show."""
        return self.hand_cpu_us / self.bulk_cpu_us

    @property
    def ok(self) -> bool:
        return self.ratio >= 0.8


def _one(work: Path, who: str, input_path: Path, rows: int, concurrency: int) -> dict[str, Any]:
    out = work / f"overhead-{who}.jsonl"
    with SandboxProcess(rate=None, log_limit=0) as sb:
        report = run_json(client_args(who, sb.url, input_path, out, concurrency), cwd=work,
                          timeout=60 + rows / 50)
        stats = sb.stop().stats
    if stats["by_status"] != {"200": rows} or report["rows"] != rows:
        raise RuntimeError(f"{who}: expected {rows} rows answered 200, the sandbox saw {stats}")
    return report


def run_overhead(work: Path, rows: int, pairs: int, concurrency: int = 8) -> Overhead:
    input_path = write_input(work / "overhead.csv", rows)
    hand: list[dict[str, Any]] = []
    bulk: list[dict[str, Any]] = []
    for i in range(pairs):
        order = ("hand", "bulk") if i % 2 == 0 else ("bulk", "hand")
        for who in order:
            (hand if who == "hand" else bulk).append(
                _one(work, who, input_path, rows, concurrency))
    return Overhead(rows, hand, bulk, breakdown(work, input_path))


def breakdown(work: Path, input_path: Path) -> dict[str, float]:
    """Microseconds a row for each stage bulkmeet adds to an HTTP call, timed one stage at a
    time over the whole input (so it says where the extra CPU goes, not how much in total)."""
    costs: dict[str, float] = {}
    started = time.perf_counter()
    raws = list(read_rows(str(input_path)))
    costs["read (csv)"] = (time.perf_counter() - started) / len(raws) * 1e6
    mapper = Mapper()
    started = time.perf_counter()
    rows = [mapper.map(r) for r in raws]
    costs["map + validate"] = (time.perf_counter() - started) / len(raws) * 1e6

    def timed(stage: str, step: Callable[[Row], object]) -> None:
        started = time.perf_counter()
        for row in rows:
            step(row)
        costs[stage] = (time.perf_counter() - started) / len(rows) * 1e6

    index = KeyIndex()
    timed("duplicate index", lambda r: index.add(r.key, r.line))
    timed("payload digest", lambda r: payload_digest(r.payload or {}))
    writer = ResultsWriter(work / "breakdown.jsonl", fresh=True)
    try:
        timed("journal: sending line", lambda r: writer.sending(r, 1, "0" * 16))
        timed("journal: final line", lambda r: writer.record(Record(
            r.line, r.key, Status.CREATED, 200, "1" * 19, "https://x.example/1", "r" * 19)))
    finally:
        writer.close()
    quota = DailyQuota(10**9, work / "breakdown.quota.json")
    timed("daily quota", lambda r: quota.spend())

    async def gate_calls() -> None:
        gate = Gate(None)
        for _ in rows:
            await gate.acquire()

    started = time.perf_counter()
    asyncio.run(gate_calls())
    costs["gate (unlimited)"] = (time.perf_counter() - started) / len(rows) * 1e6
    return costs
