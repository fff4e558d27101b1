"""Peak RSS of the state store with many keys: insert, iterate, look up (issue 14, flat memory).

    python -m benchmarks.store_memory [--keys 1000000] [--url sqlite:///path|postgresql://...]

Inserts N created keys (a small payload each) through `Store.record` in chunks, then reads them
all back with `iter_states` and with `get_many` in chunks of 10,000, printing the peak RSS
(ru_maxrss) after each phase as JSON. Nothing holds all keys: the figures stay flat as N grows.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import tempfile
import time
from pathlib import Path

import orjson

from bulkmeet.store import Row, State, Target, open_store


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def main(keys: int, url: str | None) -> dict[str, float]:
    target = Target.for_access_key("https://api.gong.example", f"bench-{time.time_ns()}")
    out: dict[str, float] = {"keys": keys, "rss_start_mb": peak_mb()}
    with tempfile.TemporaryDirectory() as tmp:
        async with await open_store(url or Path(tmp) / "bench.sqlite3", target) as store:
            t0 = time.perf_counter()
            chunk = 5000
            for base in range(0, keys, chunk):
                facts = [Row(f"key-{i:08d}", State.CREATED, meeting_id=f"{i:019d}",
                             organizer="someone@example.com",
                             payload=orjson.dumps({"title": f"Meeting {i}",
                                                   "organizerEmail": "someone@example.com"})
                             .decode(), payload_digest=f"{i:016x}")
                         for i in range(base, min(keys, base + chunk))]
                await store.record(facts, source="bench")
            out["insert_s"] = round(time.perf_counter() - t0, 1)
            out["peak_after_insert_mb"] = peak_mb()
            t0 = time.perf_counter()
            seen = 0
            async for _ in store.iter_states():
                seen += 1
            assert seen == keys, seen
            out["iterate_s"] = round(time.perf_counter() - t0, 1)
            out["peak_after_iterate_mb"] = peak_mb()
            t0 = time.perf_counter()
            found = 0
            step = 10_000
            for base in range(0, keys, step):
                got = await store.get_many(f"key-{i:08d}" for i in range(base,
                                                                         min(keys, base + step)))
                found += len(got)
            assert found == keys, found
            out["lookup_s"] = round(time.perf_counter() - t0, 1)
            out["peak_after_lookup_mb"] = peak_mb()
            if url is None:
                out["file_mb"] = round((Path(tmp) / "bench.sqlite3").stat().st_size / 2**20, 1)
    return out


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--keys", type=int, default=1_000_000)
    ap.add_argument("--url", default=None)
    args = ap.parse_args()
    print(orjson.dumps(asyncio.run(main(args.keys, args.url))).decode())
