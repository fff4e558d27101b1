"""The rate gate, on a virtual clock: pacing, the shared 429 pause, and the adaptive law."""

from __future__ import annotations

import asyncio
import random

import pytest

from bulkmeet.gate import Gate, GateClosed, SettleAndProbe

from .vclock import VirtualClockLoop, run_virtual


async def _send_times(gate: Gate, workers: int, per_worker: int) -> list[float]:
    loop = asyncio.get_running_loop()
    start = loop.time()
    times: list[float] = []

    async def worker() -> None:
        for _ in range(per_worker):
            await gate.acquire()
            times.append(loop.time() - start)

    await asyncio.gather(*(worker() for _ in range(workers)))
    return sorted(times)


def test_no_startup_burst_calls_are_spaced_one_interval_apart() -> None:
    """Eight workers at 3/s: the first call goes at once, every next one 1/3 s later."""
    times = run_virtual(_send_times(Gate(3.0), workers=8, per_worker=3))
    assert len(times) == 24
    assert times[0] == pytest.approx(0.0, abs=1e-6)
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    assert min(gaps) == pytest.approx(1 / 3, abs=1e-6)
    # In any one-second window there are never more than 3 calls (sliding-window server safe).
    for i in range(len(times) - 3):
        assert times[i + 3] - times[i] >= 1.0 - 1e-6


def test_margin_slows_the_rate_by_that_fraction() -> None:
    """rate_margin 0.02 at 3/s spaces calls 1/2.94 s apart."""
    times = run_virtual(_send_times(Gate(3.0, margin=0.02), workers=4, per_worker=5))
    assert times[1] - times[0] == pytest.approx(1 / 2.94, abs=1e-6)


def test_unlimited_gate_never_waits() -> None:
    """rate None lets every call through at the same instant."""
    times = run_virtual(_send_times(Gate(None), workers=5, per_worker=10))
    assert times == pytest.approx([0.0] * 50, abs=1e-6)


def test_pause_holds_every_worker_until_the_deadline_then_resumes_without_burst() -> None:
    """A 429 pause of 2 s: no call in the pause, then calls resume spaced 1/rate apart."""

    async def scenario() -> tuple[list[float], float]:
        gate = Gate(3.0)
        loop = asyncio.get_running_loop()
        start = loop.time()
        times: list[float] = []
        paused_at = -1.0

        async def worker(n: int) -> None:
            nonlocal paused_at
            for i in range(4):
                await gate.acquire()
                t = loop.time() - start
                times.append(t)
                if n == 0 and i == 1 and paused_at < 0:
                    paused_at = t
                    gate.pause(2.0)

        await asyncio.gather(*(worker(n) for n in range(4)))
        return sorted(times), paused_at

    times, paused_at = run_virtual(scenario())
    during = [t for t in times if paused_at < t < paused_at + 2.0]
    assert during == []
    after = [t for t in times if t >= paused_at + 2.0]
    assert after[0] == pytest.approx(paused_at + 2.0)
    gaps = [b - a for a, b in zip(after, after[1:], strict=False)]
    assert min(gaps) == pytest.approx(1 / 3, abs=1e-6)


def test_overlapping_pauses_extend_one_pause_and_count_once() -> None:
    """Two 429s during one pause keep the later deadline and count as one pause."""

    async def scenario() -> tuple[int, float]:
        gate = Gate(3.0)
        assert gate.pause(2.0) is True
        await asyncio.sleep(0.5)
        assert gate.pause(3.0) is False
        return gate.pauses, gate.remaining_pause()

    pauses, remaining = run_virtual(scenario())
    assert pauses == 1
    assert remaining == pytest.approx(3.0)


def test_close_wakes_waiters_with_gate_closed() -> None:
    """Closing the gate during a pause makes waiting workers raise GateClosed at once."""

    async def scenario() -> float:
        gate = Gate(3.0)
        loop = asyncio.get_running_loop()
        gate.pause(100.0)
        start = loop.time()
        task = asyncio.ensure_future(gate.acquire())
        await asyncio.sleep(1.0)
        gate.close(RuntimeError("stop"))
        with pytest.raises(GateClosed):
            await task
        return loop.time() - start

    assert run_virtual(scenario()) == pytest.approx(1.0)


def test_adaptive_mode_never_goes_below_the_floor() -> None:
    """Repeated 429s stop cutting at the floor. (Each comes after the last pause ended: a pause
    lasts at least one interval, 4 s at the floor.)"""

    async def scenario() -> float | None:
        gate = Gate(1.0, auto=True, floor=0.25)
        for _ in range(6):
            gate.pause(1.0)
            await asyncio.sleep(4.5)
        return gate.rate

    assert run_virtual(scenario()) == pytest.approx(0.25)


def test_adaptive_increase_keeps_the_spacing_at_the_new_rate() -> None:
    """When the rate goes up, the next call still waits a full interval: a rate change never
    lets a call out early (no 4 calls in one second at a 3/s ceiling)."""

    async def scenario() -> list[float]:
        law = SettleAndProbe(3.0, 0.1, backoff=0.93, climb_every=1.0)  # 2.79/s, +0.09/s a second
        gate = Gate(3.0, auto=True, ceiling=3.0, law=law)
        loop = asyncio.get_running_loop()
        times = []
        for _ in range(12):
            await gate.acquire()
            times.append(loop.time())
        return times

    times = run_virtual(scenario())
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    assert min(gaps) >= 1 / 3.0 - 1e-6
    for i in range(len(times) - 3):
        assert times[i + 3] - times[i] >= 1.0 - 1e-6


def test_a_busy_loop_never_lets_two_calls_leave_closer_than_one_interval() -> None:
    """The loop is held up now and then (other work, the OS): a call may leave late, but the
    next one is spaced from when that call actually left, not from when its token was due.

    The token is granted in the worker's own step: a gate that granted it in a helper task let
    a hold-up fall between grant and send, and sent the next call too soon (one 429 from a
    sliding-window server in a benchmark run on a loaded machine; here, gaps of 0.285 s)."""

    async def scenario() -> list[float]:
        loop = asyncio.get_running_loop()
        assert isinstance(loop, VirtualClockLoop)
        gate = Gate(3.0)
        done = False
        rng = random.Random(7)

        def busy() -> None:  # each step of the loop takes 1 to 30 ms
            loop.advance(rng.choice((0.001, 0.002, 0.005, 0.03)))
            if not done:
                loop.call_soon(busy)

        loop.call_soon(busy)
        try:
            return await _send_times(gate, workers=8, per_worker=6)
        finally:
            done = True

    times = run_virtual(scenario())
    assert len(times) == 48
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    assert min(gaps) >= 1 / 3 - 1e-9
    for i in range(len(times) - 3):
        assert times[i + 3] - times[i] >= 1.0 - 1e-9


def test_close_wakes_workers_waiting_for_a_token_and_leaves_other_cancels_alone() -> None:
    """At 0.1/s, workers queue for tokens 10 s apart: close() wakes them all at once with
    GateClosed. A worker cancelled by someone else at the same moment is still cancelled."""

    async def scenario() -> tuple[list[str], float]:
        gate = Gate(0.1)
        loop = asyncio.get_running_loop()
        await gate.acquire()  # the first token goes at once; the next is 10 s away
        start = loop.time()
        tasks = [asyncio.ensure_future(gate.acquire()) for _ in range(4)]
        await asyncio.sleep(1.0)
        tasks[0].cancel()  # e.g. a second Ctrl-C cutting a worker
        gate.close(RuntimeError("stop"))
        results = await asyncio.gather(*tasks, return_exceptions=True)
        return [type(r).__name__ for r in results], loop.time() - start

    names, waited = run_virtual(scenario())
    assert names == ["CancelledError", "GateClosed", "GateClosed", "GateClosed"]
    assert waited == pytest.approx(1.0, abs=0.01)


@pytest.mark.parametrize("seconds", [0.0, 0.01])
def test_a_pause_shorter_than_the_spacing_never_shortens_it(seconds: float) -> None:
    """Every call is answered 429 with Retry-After 0 (or 10 ms, below the 0.5 s spacing): the
    calls stay at least one interval apart, each pause lasting at least one interval (today's
    main installed an empty bucket on each pause and let every waiter through at once)."""

    async def scenario() -> list[float]:
        gate = Gate(2.0)
        loop = asyncio.get_running_loop()
        start = loop.time()
        times: list[float] = []

        async def worker() -> None:
            for _ in range(5):
                await gate.acquire()
                times.append(loop.time() - start)
                await asyncio.sleep(0.001)  # the 429 comes back a moment later
                gate.pause(seconds)

        await asyncio.gather(*(worker() for _ in range(8)))
        return sorted(times)

    times = run_virtual(scenario())
    assert len(times) == 40
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    assert min(gaps) >= 0.5 - 1e-6


def test_a_pause_ending_right_after_a_call_still_leaves_a_full_interval() -> None:
    """A call at t, then pause(0.1) at t at 2/s: the next call goes at t + 0.5, not t + 0.1."""

    async def scenario() -> float:
        gate = Gate(2.0)
        loop = asyncio.get_running_loop()
        await gate.acquire()
        t = loop.time()
        gate.pause(0.1)
        await gate.acquire()
        return loop.time() - t

    assert run_virtual(scenario()) == pytest.approx(0.5, abs=1e-6)
