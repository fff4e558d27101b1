"""Real OS processes sharing one store: claims, a SIGKILL mid-claim, pacing across processes."""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import orjson
import pytest

from bulkmeet.store import Claimed, State, Target, Uncertain, open_store
from tests.store_support import store_url_for
from tests.store_worker import BASE_URL

ROOT = Path(__file__).resolve().parent.parent
# Sends are stamped after the sleep returns, so OS scheduling delays (2 shared cores) can move
# one stamp later than the next; windows are shortened by this much when counting.
JITTER = 0.02


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return store_url_for(request.param, tmp_path)


def _worker(url: str, key: str, *args: object) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "tests.store_worker", url, key,
                             *map(str, args)], cwd=ROOT, stdout=subprocess.PIPE)


def _output(p: subprocess.Popen[bytes], timeout: float = 60) -> object:
    out, _ = p.communicate(timeout=timeout)
    assert p.returncode == 0
    return orjson.loads(out)


@pytest.mark.slow
def test_four_processes_race_for_the_same_keys(store_url: str) -> None:
    key = f"race-{uuid.uuid4().hex[:8]}"
    start = time.time() + 4.0  # every process opens its store, then all begin together
    procs = [_worker(store_url, key, "claim", 200, start, seed) for seed in range(4)]
    won = [_output(p) for p in procs]
    claimed = [k for keys in won for k in keys]  # type: ignore[attr-defined]
    assert sorted(claimed) == [f"k{i:04d}" for i in range(200)]  # each exactly once
    assert sum(1 for keys in won if keys) >= 2, "the processes did not race"


@pytest.mark.slow
def test_sigkilled_owner_leaves_uncertain_keys(store_url: str) -> None:
    key = f"kill-{uuid.uuid4().hex[:8]}"
    lease = 1.0
    p = _worker(store_url, key, "hold", 20, lease)
    assert p.stdout is not None
    assert orjson.loads(p.stdout.readline()) == "ready"
    time.sleep(lease * 1.5)  # it renews: still held past its first lease
    target = Target.for_access_key(BASE_URL, key)

    async def check(expect_held: bool) -> None:
        async with await open_store(store_url, target) as s:
            got = await s.get_many([f"h{i:03d}" for i in range(20)])
            want = State.IN_FLIGHT if expect_held else State.UNCERTAIN
            assert {r.state for r in got.values()} == {want} and len(got) == 20
            if expect_held:
                return
            for i in range(20):
                result = await s.claim(f"h{i:03d}", owner="me", op="create",
                                       payload_digest="d", lease=5)
                assert isinstance(result, Uncertain)
            again = await s.claim("h000", owner="me", op="create", payload_digest="d",
                                  lease=5)
            assert isinstance(again, Uncertain)  # still not claimable
            resent = await s.claim("h000", owner="me", op="create", payload_digest="d",
                                   lease=5, resend_uncertain=True)
            assert isinstance(resent, Claimed)

    asyncio.run(check(expect_held=True))
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    p.stdout.close()
    assert p.returncode == -signal.SIGKILL
    time.sleep(lease + 0.2)
    asyncio.run(check(expect_held=False))


def _max_in_window(times: list[float], window: float) -> int:
    times = sorted(times)
    best = 0
    j = 0
    for i, t in enumerate(times):
        while times[j] <= t - window:
            j += 1
        best = max(best, i - j + 1)
    return best


def test_max_in_window() -> None:
    assert _max_in_window([0, 0.5, 0.99, 1.0, 1.5], 1.0) == 3
    assert _max_in_window([0, 0.34, 0.67, 1.0, 1.34], 1.0) == 3
    assert _max_in_window([0, 0.3, 0.6, 0.9], 1.0) == 4


@pytest.mark.slow
@pytest.mark.parametrize("processes", [2, 4])
def test_processes_share_the_rate(store_url: str, processes: int) -> None:
    rate, duration = 3.0, 5.0
    key = f"pace-{uuid.uuid4().hex[:8]}"
    start = time.time() + 2.0
    procs = [_worker(store_url, key, "pace", rate, start, duration) for _ in range(processes)]
    stamps = [_output(p) for p in procs]
    assert all(stamps), "a process sent nothing"
    union: list[float] = sorted(itertools.chain.from_iterable(stamps))  # type: ignore[arg-type]
    achieved = (len(union) - 1) / (union[-1] - union[0])
    most = _max_in_window(union, 1.0 - JITTER)
    tightest = min(b - a for a, b in zip(union, union[3:], strict=False))
    print(f"\n{processes} processes: {len(union)} calls, {achieved:.3f}/s, at most {most} "
          f"in any {1 - JITTER:.2f} s, {_max_in_window(union, 1.0)} in any 1 s, "
          f"4 calls spanning at least {tightest:.4f} s")
    assert most <= rate
    assert achieved >= 0.95 * rate
