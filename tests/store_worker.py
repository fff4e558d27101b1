"""A process that uses a store, for the tests that need real OS processes racing on one store.

    python -m tests.store_worker URL ACCESS_KEY claim N_KEYS START SEED       -> claimed keys
    python -m tests.store_worker URL ACCESS_KEY hold N_KEYS LEASE           -> "ready", sleeps
    python -m tests.store_worker URL ACCESS_KEY pace RATE START DURATION    -> send times

Every command prints one JSON value on stdout. START is an epoch time to begin at, so that
processes started one after another begin together.
"""

from __future__ import annotations

import asyncio
import random
import sys
import time

import orjson

from bulkmeet.store import Claimed, Target, new_owner, open_store

BASE_URL = "https://api.gong.example"


async def _until(start: float) -> None:
    await asyncio.sleep(max(0.0, start - time.time()))


async def main(argv: list[str]) -> None:
    url, access_key, command, *args = argv
    target = Target.for_access_key(BASE_URL, access_key)
    owner = new_owner()
    async with await open_store(url, target) as store:
        if command == "claim":
            n, start, seed = int(args[0]), float(args[1]), int(args[2])
            keys = [f"k{i:04d}" for i in range(n)]
            random.Random(seed).shuffle(keys)  # each process in its own order: real contention
            await _until(start)
            won = []
            for key in keys:
                result = await store.claim(key, owner=owner, op="create",
                                           payload_digest="d", lease=60)
                if isinstance(result, Claimed):
                    won.append(result.key)
            print(orjson.dumps(won).decode(), flush=True)
        elif command == "hold":
            n, lease = int(args[0]), float(args[1])
            for i in range(n):
                await store.claim(f"h{i:03d}", owner=owner, op="create", payload_digest="d",
                                  lease=lease)
            print('"ready"', flush=True)
            while True:  # a live owner renews; the test kills it with SIGKILL
                await asyncio.sleep(lease / 3)
                await store.renew(owner)
        elif command == "pace":
            rate, start, duration = float(args[0]), float(args[1]), float(args[2])
            await _until(start)
            sent: list[float] = []
            while time.time() < start + duration:
                wait = await store.take_slot(rate)
                if wait > 0:
                    await asyncio.sleep(wait)
                sent.append(time.time())
            print(orjson.dumps(sent).decode(), flush=True)
        else:
            raise SystemExit(f"unknown command {command!r}")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
