"""Peak RSS of `bulkmeet plan` against a state store of N keys (issue 14, item 7).

    python -m benchmarks.plan_memory [--rows 1000000] [--work DIR] [--changed 1000]

Writes N made-up rows with external ids, maps them with bulkmeet's own mapper and records each
as created in a SQLite state store with the payload it maps to (as a sync that made them
leaves the store), then changes the title of `--changed` rows in the sheet and runs the real
`bulkmeet plan --prune` on it in a child process. The plan must count N - changed unchanged and
`changed` updates; its peak RSS is read from the kernel for that child (os.wait4). Then the
same for `bulkmeet sync --prune --yes --sandbox` (the plan made against the store, only read;
the updates sent to a built-in sandbox with no limit).
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

from bulkmeet.client import Credentials
from bulkmeet.config import Config
from bulkmeet.mapping import Mapper
from bulkmeet.models import payload_digest
from bulkmeet.reader import read_rows
from bulkmeet.session import principal
from bulkmeet.store import Row, State, Target, normalise_url, open_store

from .common import CREDENTIALS, ROOT, child_env, weigh_bulkmeet, write_input

BASE_URL = "https://api.gong.example"  # never called: plan sends nothing


async def fill_store(url: str, input_path: Path) -> int:
    creds = Credentials.basic(*CREDENTIALS.values())
    target = Target(normalise_url(BASE_URL), principal(creds))
    mapper = Mapper.from_config(Config())
    n = 0
    async with await open_store(url.removeprefix("sqlite:///"), target) as store:
        batch: list[Row] = []
        with read_rows(str(input_path)) as raws:
            for raw in raws:
                row = mapper.map(raw)
                assert row.payload is not None, row.errors
                batch.append(Row(row.key, State.CREATED, meeting_id=f"{10**18 + n}",
                                 organizer=str(row.payload["organizerEmail"]),
                                 payload=orjson.dumps(row.payload).decode(),
                                 payload_digest=payload_digest(row.payload)))
                n += 1
                if len(batch) == 5000:
                    await store.record(batch, source="bench")
                    batch.clear()
        await store.record(batch, source="bench")
    return n


def change_titles(path: Path, every: int) -> None:
    """Give every `every`-th row a new title, in place."""
    tmp = path.with_suffix(".tmp")
    with open(path, newline="", encoding="utf-8") as src, \
            open(tmp, "w", newline="", encoding="utf-8") as dst:
        reader, writer = csv.reader(src), csv.writer(dst)
        writer.writerow(next(reader))
        for i, cells in enumerate(reader):
            if i % every == 0:
                cells[2] += " (moved)"
            writer.writerow(cells)
    tmp.replace(path)


def measure(work: Path, rows: int, changed: int) -> dict[str, Any]:
    input_path, store = work / "plan.csv", work / "plan-state.sqlite3"
    store.unlink(missing_ok=True)
    url = f"sqlite:///{store}"
    write_input(input_path, rows)
    t0 = time.perf_counter()
    asyncio.run(fill_store(url, input_path))
    fill_s = time.perf_counter() - t0
    every = max(1, rows // max(1, changed))
    change_titles(input_path, every)
    expected = len(range(0, rows, every))
    want = f"plan: {rows} rows read: {expected} to update, {rows - expected} unchanged"
    plan_s, plan_mb, _ = child(work, "plan", [str(input_path), "--state", url, "--prune"], want,
                               exit_code=1)
    sync_s, sync_mb, output = child(work, "sync", [
        str(input_path), "--state", url, "--prune", "--yes", "--sandbox", "--sandbox-rate", "0",
        "--rate", "1000", "--quiet", "--out", str(work / "sync.results.jsonl")], want)
    if f"{expected} updated" not in output:
        raise RuntimeError(f"sync did not update {expected} meetings:\n{output[-2000:]}")
    return {"rows": rows, "updates": expected, "store_mb": round(store.stat().st_size / 2**20),
            "fill_s": round(fill_s, 1), "plan_s": plan_s, "plan_peak_rss_mb": plan_mb,
            "sync_s": sync_s, "sync_peak_rss_mb": sync_mb}


def child(work: Path, command: str, args: list[str], head: str, exit_code: int = 0,
          ) -> tuple[float, float, str]:
    """Run `bulkmeet command args...`; (seconds, peak RSS MB, output). Its first line must be
    `head` and its exit status `exit_code`."""
    done = weigh_bulkmeet([command, *args], cwd=work,
                          env=child_env(GONG_BASE_URL=BASE_URL,
                                        XDG_STATE_HOME=str(work / "xdg")),
                          said=work / f"{command}.output")
    first = done.output.splitlines()[0] if done.output else ""
    if done.code != exit_code or first != head:
        raise RuntimeError(f"{command} exited {done.code}, said {first!r}; expected {head!r}\n"
                           f"{done.output[-2000:]}")
    return done.seconds, done.peak_mb, done.output


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.plan_memory")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--changed", type=int, default=1000)
    parser.add_argument("--work", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.work is not None:
        args.work.mkdir(parents=True, exist_ok=True)
        report = measure(args.work, args.rows, args.changed)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            report = measure(Path(tmp), args.rows, args.changed)
    sys.stdout.buffer.write(orjson.dumps(report) + b"\n")


if __name__ == "__main__":
    if not __package__:
        sys.path.insert(0, str(ROOT))
    main(sys.argv[1:])
