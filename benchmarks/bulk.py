"""bulkmeet's own pipeline with no rate limit, in a child process, timed and weighed.

    python -m benchmarks.bulk INPUT.csv OUT.jsonl --url URL    # against a sandbox
    python -m benchmarks.bulk INPUT.csv OUT.jsonl --local      # HTTP replaced by a stand-in

It assembles a run the way `runs.run_input` does (reader, planner, results journal, daily quota,
gate, client, Engine) but with `make_gate(cfg, unlimited=True)`: no CLI flag turns pacing off,
and the benchmark needs none. `--local` swaps only the HTTP client for one that answers at once,
so a million rows take a minute and not an hour; everything else is the real path.
Prints one JSON line: rows, seconds, cpu_seconds, requests, counts, rss_start_mb,
peak_rss_mb, seen_mb.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import orjson

from bulkmeet.client import Credentials, GongClient, Outcome, Succeeded
from bulkmeet.config import Config
from bulkmeet.engine import Engine, Journal
from bulkmeet.mapping import Mapper
from bulkmeet.planner import Planner
from bulkmeet.quota import DailyQuota
from bulkmeet.reader import read_rows
from bulkmeet.results import ResultsWriter
from bulkmeet.session import Session, make_gate
from bulkmeet.triage import IN_MEMORY_KEYS, KeyIndex

from .common import CREDENTIALS, peak_rss_mb, rss_mb, write_input


class LocalClient(GongClient):
    """A client that answers 200 at once, without a socket: the pipeline's cost alone."""

    def __init__(self) -> None:
        super().__init__("http://127.0.0.1:9", Credentials.basic("local", "local"))
        self._ids = itertools.count(10**18)

    async def __aenter__(self) -> LocalClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    async def create_meeting(self, payload: Mapping[str, Any]) -> Outcome:
        await asyncio.sleep(0)  # a real call yields to the loop at least once
        return Succeeded(200, str(next(self._ids)), None, None)


def index_mb(keys: int) -> float:
    """What the run's duplicate index holds in memory for `keys` keys (triage.FirstLines keeps
    at most IN_MEMORY_KEYS in a KeyIndex, the rest on disk): one is filled with as many
    content-hash keys and weighed (its size depends on the count alone)."""
    index = KeyIndex()
    for i in range(min(keys, IN_MEMORY_KEYS)):
        index.add(f"h:{i:032x}", i + 2)
    slots = sum(sys.getsizeof(getattr(index, name)) for name in KeyIndex.__slots__)
    return (sys.getsizeof(index) + slots) / 2**20


async def run_unlimited(cfg: Config, input_path: str, out: str, url: str | None,
                        ) -> dict[str, Any]:
    mapper = Mapper.from_config(cfg)
    raws = read_rows(input_path)
    writer = ResultsWriter(out, fresh=True)
    quota = DailyQuota(cfg.daily_budget, Path(out).with_suffix(".quota.json"))
    gate = make_gate(cfg, unlimited=True)
    client = LocalClient() if url is None else GongClient(
        url, Credentials.basic(*CREDENTIALS.values()), connections=cfg.concurrency)
    rss_start = rss_mb()
    started, cpu = time.perf_counter(), time.process_time()
    try:
        async with client:
            engine = Engine(cfg, Session(cfg, client, gate, quota), Journal(writer))
            planner = Planner(mapper)
            stats = await engine.run(planner.plan(raws))
            planner.close()
    finally:
        writer.close()
        quota.save()
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    return {"rows": stats.rows_read, "seconds": seconds, "cpu_seconds": cpu,
            "requests": stats.requests,
            "counts": dict(stats.counts), "rss_start_mb": rss_start,
            "peak_rss_mb": peak_rss_mb(), "seen_mb": index_mb(stats.rows_read)}


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bulk")
    parser.add_argument("input")
    parser.add_argument("out")
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--url")
    target.add_argument("--local", action="store_true")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--generate", type=int, default=0, metavar="ROWS",
                        help="first write INPUT: ROWS made-up rows, content-hash keys")
    parser.add_argument("--nice", type=int, default=0,
                        help="lower this process's priority (a background memory run)")
    args = parser.parse_args(argv)
    os.nice(args.nice)
    if args.generate:
        write_input(Path(args.input), args.generate, external_id=False)
    cfg = Config(concurrency=args.concurrency, daily_budget=10**9)
    report = asyncio.run(run_unlimited(cfg, args.input, args.out, args.url))
    sys.stdout.buffer.write(orjson.dumps(report) + b"\n")


if __name__ == "__main__":
    main(sys.argv[1:])
