"""A sandbox in its own process, whose request log comes back when it stops.

    python -m benchmarks.server '{"rate": 3, "window": "fixed"}'

prints the URL on one line, serves until a line (or EOF) arrives on stdin, then prints one JSON
object: {"stats": GET /_sandbox/stats, "log": [[time, status], ...]}. Times are
time.monotonic(), which on Linux is one clock for every process, so the parent can set them
beside its own.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import orjson

from bulkmeet.sandbox import SandboxSettings, start_sandbox


def settings_from(spec: dict[str, Any]) -> SandboxSettings:
    # The log is how the benchmark measures; keep all of it.
    return SandboxSettings(**{"log_limit": None, **spec})


async def serve(settings: SandboxSettings) -> dict[str, Any]:
    sandbox = await start_sandbox(settings)
    try:
        print(sandbox.url, flush=True)
        await asyncio.to_thread(sys.stdin.readline)
    finally:
        await sandbox.close()
    state = sandbox.state
    return {"stats": state.stats(), "log": [[r.time, r.status] for r in state.log]}


def main(argv: list[str]) -> None:
    spec = orjson.loads(argv[0]) if argv else {}
    report = asyncio.run(serve(settings_from(spec)))
    sys.stdout.buffer.write(orjson.dumps(report) + b"\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main(sys.argv[1:])
