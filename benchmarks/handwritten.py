"""The yardstick for overhead: what one would write by hand in twenty lines.

aiohttp + asyncio.Semaphore, the same rows, the same concurrency, one JSONL line per row; no
pacing, no retries, no journal, no validation. `post_all` and `send_file` are the script;
`main` only times it.

    python -m benchmarks.handwritten URL INPUT.csv OUT.jsonl [CONCURRENCY]
"""

from __future__ import annotations

import asyncio
import base64
import csv
import json
import sys
import time
from typing import TextIO

import aiohttp


async def post_all(url: str, rows: list[dict[str, str]], results: TextIO,
                   concurrency: int = 8) -> None:
    sem = asyncio.Semaphore(concurrency)
    auth = "Basic " + base64.b64encode(b"bench-key:bench-secret").decode()
    async with aiohttp.ClientSession(headers={"Authorization": auth}) as session:

        async def post(line: int, row: dict[str, str]) -> None:
            keys = ("startTime", "endTime", "title", "organizerEmail")
            payload: dict[str, object] = {k: row[k] for k in keys}
            payload["invitees"] = [{"email": e} for e in row["invitees"].split(";")]
            if row["externalId"]:
                payload["externalId"] = row["externalId"]
            async with sem, session.post(url + "/v2/meetings", json=payload) as resp:
                body = await resp.json()
            results.write(json.dumps({"line": line, "status": resp.status,
                                      "meetingId": body.get("meetingId")}) + "\n")

        await asyncio.gather(*(post(line, row) for line, row in enumerate(rows, start=2)))


def send_file(url: str, path: str, out: str, concurrency: int = 8) -> int:
    with open(path, newline="", encoding="utf-8") as f, open(out, "w") as results:
        rows = list(csv.DictReader(f))
        asyncio.run(post_all(url, rows, results, concurrency))
    return len(rows)


def main(argv: list[str]) -> None:
    url, path, out = argv[:3]
    concurrency = int(argv[3]) if len(argv) > 3 else 8
    started, cpu = time.perf_counter(), time.process_time()
    rows = send_file(url, path, out, concurrency)
    print(json.dumps({"rows": rows, "seconds": time.perf_counter() - started,
                      "cpu_seconds": time.process_time() - cpu}))


if __name__ == "__main__":
    main(sys.argv[1:])
