"""One command for the benchmarks of issue 4; prints every figure and its target.

    .venv/bin/python -m benchmarks.run [--quick] [--only abcde] [--serial] [--json FILE]

(a) rate adherence at 3/s in each sandbox window mode, (b) overhead against a hand-written
aiohttp script, (c) peak memory as the input grows, (d) recovery after a 429 with Retry-After 2,
(e) `--rate auto` beside another integration spending 1/s of the same 3/s (issue 16).
The machine is shared and noisy: read (b) as a ratio within one run, never across runs.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

if not __package__:  # run as `python benchmarks/run.py`: make the package importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.memory import (  # noqa: E402
    FLAT_MB,
    LIMIT_MB,
    MemoryRun,
    groups,
    growth_mb,
    is_flat,
    memory_ok,
    run_memory,
    under_limit,
)
from benchmarks.neighbour import SETTLED, Beside, run_beside  # noqa: E402
from benchmarks.overhead import Overhead, run_overhead  # noqa: E402
from benchmarks.pacing import Pacing, Recovery, run_pacing, run_recovery  # noqa: E402

FULL: dict[str, Any] = {"seconds": 62.0, "overhead_rows": 4000, "pairs": 12,
                        "mem_full": [10_000, 100_000], "mem_local": [10_000, 100_000, 1_000_000],
                        "recovery_rows": 10, "beside": 180.0}
QUICK: dict[str, Any] = {"seconds": 3.0, "overhead_rows": 300, "pairs": 1,
                         "mem_full": [500], "mem_local": [500, 5000], "recovery_rows": 5,
                         "beside": 8.0}


def say(text: str = "") -> None:
    print(text, flush=True)


def verdict(ok: bool) -> str:
    return "meets target" if ok else "MISSES target"


def show_pacing(results: list[Pacing]) -> None:
    say("(a) rate adherence: set 3/s (gate paces at 3 x (1 - rate_margin 0.02) = 2.94/s)")
    say(f"    {'window':8} {'sandbox rate':>12} {'ratio':>6} {'429s':>5} {'accepted':>8} "
        f"{'journal rate':>12} {'tightest 4 arrived/sent':>23} {'gaps min..max':>14}")
    for p in results:
        say(f"    {p.window:8} {p.server_rate:10.3f}/s {p.ratio:6.3f} {p.rate_limited:5d} "
            f"{p.accepted:8d} {p.journal.rate:10.3f}/s {p.tightest:11.3f}s/{p.tightest_sent:.3f}s "
            f"{p.min_gap:6.3f}..{p.max_gap:.3f}s")
        say(f"             bulkmeet: {p.journal.summary}")
    say("    target: ratio >= 0.97 and no 429, in every mode: "
        f"{verdict(all(p.ok for p in results))}")


def show_overhead(o: Overhead) -> None:
    say(f"(b) overhead: {o.rows} rows, concurrency 8, no rate limit, {len(o.hand)} pair(s)")
    say(f"    hand-written script: {o.hand_rate:8.0f} rows/s  {o.hand_cpu_us:6.0f} us CPU/row")
    say(f"    bulkmeet pipeline:   {o.bulk_rate:8.0f} rows/s  {o.bulk_cpu_us:6.0f} us CPU/row")
    say("    rows/s ratio per pair: " + ", ".join(f"{r:.2f}" for r in o.ratios)
        + f"; best vs best {o.best_ratio:.2f}; CPU per row, script / bulkmeet {o.cpu_ratio:.2f}")
    say(f"    target: median ratio {o.ratio:.2f} >= 0.8: {verdict(o.ok)}")
    extra = o.bulk_cpu_us - o.hand_cpu_us
    say(f"    bulkmeet's extra CPU, {extra:.0f} us/row, goes to (each stage timed alone):")
    say("      " + ", ".join(f"{stage} {us:.1f}" for stage, us in o.stages.items())
        + f"; sum {sum(o.stages.values()):.1f} us/row")


def show_memory(runs: list[MemoryRun]) -> None:
    say("(c) memory: peak RSS of one run, no rate limit, content-hash keys")
    say(f"    {'mode':6} {'rows':>9} {'peak RSS':>9} {'RSS at start':>12} {'key index':>9} "
        f"{'rows/s':>8}")
    for r in runs:
        say(f"    {r.mode:6} {r.rows:9d} {r.peak_mb:7.1f}MB {r.start_mb:10.1f}MB "
            f"{r.seen_mb:7.1f}MB {r.rate:8.0f}")
    peak = max((r.peak_mb for r in runs), default=0.0)
    say(f"    under {LIMIT_MB:.0f} MB: {'yes' if under_limit(runs) else 'no'} "
        f"(highest peak {peak:.1f} MB)")
    for g in groups(runs):
        say(f"    flat ({g[0].mode}): {'yes' if is_flat(g) else 'no'}: "
            f"{growth_mb(g):+.1f} MB from {g[0].rows} to {g[-1].rows} rows "
            f"(flat: within {FLAT_MB:.0f} MB)")
    say(f"    target: flat and under {LIMIT_MB:.0f} MB: {verdict(memory_ok(runs))}")


def show_recovery(r: Recovery) -> None:
    say(f"(d) recovery: sandbox 3/s fixed window, Retry-After {r.retry_after}; bulkmeet at 10/s")
    say("    429 -> next request: " + ", ".join(f"{g:.3f}s" for g in r.gaps)
        + f"; requests inside a pause: {r.sent_in_pause}")
    say(f"             bulkmeet: {r.journal.summary}")
    say(f"    target: every gap in [{r.retry_after}.0, {r.retry_after}.1] s and 0 requests in "
        f"a pause: {verdict(r.ok)}")


def show_beside(results: list[Beside]) -> None:
    seconds = results[0].seconds
    settled = min(SETTLED, seconds / 2)
    say(f"(e) --rate auto beside a neighbour spending 1/s of a 3/s sandbox, {seconds:.0f}s each "
        "(all runs at once)")
    say(f"    {'window':8} {'law':4} {'rate':>6} {'rate after':>10} {'429/min':>8} "
        f"{'429/min after':>13} {'neighbour refused':>18}")
    say(f"    {'':8} {'':4} {'(all)':>6} {f'{settled:.0f}s':>10} {'(all)':>8} "
        f"{f'{settled:.0f}s':>13}")
    steady = [b for b in results if b.neighbour_for is None]
    for b in sorted(steady, key=lambda b: (b.law != "old", b.window)):
        after = b.rate(settled, seconds)
        say(f"    {b.window:8} {b.law:4} {b.rate(0, seconds):6.3f} {after:10.3f} "
            f"{b.per_minute(0, seconds):8.2f} {b.per_minute(settled, seconds):13.2f} "
            f"{b.neighbour_refused:5d}/{b.neighbour_calls:<4d} {100 * b.refused_share:5.1f}%")
    for b in (b for b in results if b.neighbour_for is not None):
        back = b.recovery
        shown = "never" if back is None else f"{back:.0f}s"
        say(f"    {b.window:8} new: the neighbour stops at {b.neighbour_for:.0f}s; bulkmeet above "
            f"2.8/s (over 10s) {shown} later; refused {b.neighbour_refused}/{b.neighbour_calls}")
    new = [b for b in results if b.law == "new"]
    say("    target (new law): >= 1.8/s, <= 2% refused, <= 1 429/min after the first minute; "
        f"back above 2.8/s within 120s: {verdict(all(b.ok for b in new))}")


def machine() -> str:
    return (f"{platform.system()} {platform.machine()}, nproc {os.cpu_count()}, "
            f"Python {platform.python_version()}, load {os.getloadavg()[0]:.2f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a smoke run of a few seconds")
    parser.add_argument("--only", default="abcde", help="which parts, e.g. 'ad' (default all)")
    parser.add_argument("--no-old", action="store_true",
                        help="(e) without the old adaptive law's runs beside the new")
    parser.add_argument("--json", dest="json_path", help="also write the raw figures here")
    parser.add_argument("--serial", action="store_true",
                        help="run every part alone (slower; (a) and (d) then share no CPU)")
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else FULL
    parts = set(args.only.replace(",", ""))
    say(f"bulkmeet benchmarks{' (quick)' if args.quick else ''}: {machine()}")
    started = time.monotonic()
    ok: list[bool] = []
    raw: dict[str, Any] = {"machine": machine(), "quick": args.quick}
    with tempfile.TemporaryDirectory(prefix="bulkmeet-bench-") as tmp, \
            ThreadPoolExecutor(1) as background:
        work = Path(tmp)
        # (b) times CPU-bound runs: first, before anything else of this benchmark has loaded the
        # machine. (After (c) had written hundreds of MB, one run saw bulkmeet's CPU a row ~20%
        # above what the same code used when (b) ran alone.)
        if "b" in parts:
            overhead = run_overhead(work, plan["overhead_rows"], plan["pairs"])
            show_overhead(overhead)
            ok.append(overhead.ok)
            raw["overhead"] = {"ratios": overhead.ratios, "stages": overhead.stages,
                               "hand": overhead.hand,
                               "bulk": overhead.bulk}
        # (c)'s local runs need one core for minutes and no network: they run beside (a) and
        # (d), which sleep most of the time, unless --serial.
        local: Future[list[MemoryRun]] | None = None
        if "c" in parts:
            local = background.submit(run_memory, work, [], plan["mem_local"])
            if args.serial:
                local.result()
        if "a" in parts:
            pacing = run_pacing(work, plan["seconds"])
            show_pacing(pacing)
            ok.append(all(p.ok for p in pacing))
            raw["pacing"] = [{"window": p.window, "ratio": p.ratio, "rate": p.server_rate,
                              "429": p.rate_limited, "tightest": p.tightest,
                              "tightest_sent": p.tightest_sent} for p in pacing]
        if "d" in parts:
            recovery = run_recovery(work, plan["recovery_rows"])
            show_recovery(recovery)
            ok.append(recovery.ok)
            raw["recovery"] = {"gaps": recovery.gaps, "in_pause": recovery.sent_in_pause}
        if "e" in parts:
            beside = run_beside(work, plan["beside"], stop_after=min(60.0, plan["beside"] / 2),
                                old=not args.no_old)
            show_beside(beside)
            ok.append(all(b.ok for b in beside if b.law == "new"))
            raw["beside"] = [{"window": b.window, "law": b.law, "neighbour_for": b.neighbour_for,
                              "accepted": b.accepted, "limited": b.limited,
                              "neighbour": [b.neighbour_refused, b.neighbour_calls]}
                             for b in beside]
        memory = local.result() if local is not None else []
        if "c" in parts:
            memory = run_memory(work, plan["mem_full"], []) + memory
            show_memory(memory)
            ok.append(memory_ok(memory))
            raw["memory"] = [{"mode": r.mode, "rows": r.rows, **r.report} for r in memory]
    say(f"done in {time.monotonic() - started:.0f}s: {sum(ok)} of {len(ok)} part(s) meet "
        "their targets")
    if args.json_path:
        import orjson

        Path(args.json_path).write_bytes(orjson.dumps(raw, option=orjson.OPT_INDENT_2))
    return 0  # figures, not a test: the exit code does not judge them


if __name__ == "__main__":
    sys.exit(main())
