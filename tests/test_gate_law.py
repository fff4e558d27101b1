"""The adaptive law (`--rate auto`) and the reserve, on the virtual clock: bulkmeet beside
another integration that spends 1 call/s of a 3/s company quota (tests/sharedquota.py)."""

from __future__ import annotations

import asyncio
import math

import pytest

from bulkmeet.gate import QUIET, Gate, RateChange, SettleAndProbe

from .sharedquota import WINDOWS, Traffic, share
from .vclock import run_virtual


def _auto(changes: list[RateChange] | None = None, reserve: float = 0.0) -> Gate:
    return Gate(3.0, margin=0.02, auto=True, ceiling=3.0, reserve=reserve,
                on_rate_change=None if changes is None else changes.append)


def _run(kind: str, seconds: float, neighbour: tuple[tuple[float, float, float], ...],
         changes: list[RateChange] | None = None, reserve: float = 0.0) -> Traffic:
    async def scenario() -> Traffic:
        return await share(_auto(changes, reserve), kind, seconds=seconds, neighbour=neighbour)

    return run_virtual(scenario)


BESIDE = ((0.0, math.inf, 1.0),)


@pytest.mark.parametrize("kind", WINDOWS)
def test_beside_a_1_per_second_neighbour_it_converges_to_the_share_left(kind: str) -> None:
    """From the 3/s ceiling to the 2/s the neighbour leaves: within the first minute, then at
    least 1.8/s, at most one 429 of its own a minute, and the neighbour's calls untouched."""
    changes: list[RateChange] = []
    traffic = _run(kind, 180, BESIDE, changes)
    assert 1.8 <= traffic.our_rate(60, 180) <= 2.0
    assert traffic.our_429s(60, 180) <= 2
    refused, calls = traffic.their_refused()
    assert calls == 180 and refused <= 0.02 * calls
    assert changes and all(c.reason for c in changes)  # every change says why


def test_alone_it_climbs_from_half_the_ceiling_to_the_ceiling_within_a_minute() -> None:
    """No neighbour: the rate starts at 1.5/s and is at the 3/s ceiling within 40 s, with no
    429 on the way; it never goes above the ceiling."""
    changes: list[RateChange] = []
    traffic = _run("sliding", 90, (), changes)
    assert changes[0].old == pytest.approx(1.5)
    top = next(t for t, rate in traffic.rates if rate >= 3.0 - 1e-9)
    assert top <= 40
    assert max(rate for _, rate in traffic.rates) <= 3.0 + 1e-9
    assert traffic.our_429s(0, 90) == 0
    assert traffic.our_rate(60, 90) == pytest.approx(2.94, abs=0.04)


@pytest.mark.parametrize("kind", WINDOWS)
@pytest.mark.parametrize("stop", [100.0, 130.0])
def test_when_the_neighbour_stops_it_is_back_above_2_8_within_two_minutes(
    kind: str, stop: float
) -> None:
    """The bound: `quiet` (60 s) until the probe, about 35 s of probing, and the 10 s the rate
    is measured over."""
    traffic = _run(kind, stop + 150, ((0.0, stop, 1.0),))
    back = traffic.first_rate_above(2.8, stop)
    assert back is not None and back <= 120
    assert traffic.our_rate(stop + 120, stop + 150) >= 2.85


@pytest.mark.parametrize("kind", WINDOWS)
def test_when_the_neighbour_starts_again_it_backs_off_to_the_share_within_a_minute(
    kind: str
) -> None:
    """bulkmeet alone at the ceiling, then a neighbour starts spending 1/s at 120 s. Nothing
    tells bulkmeet before one of the calls collides (the reserve exists for that), but within a
    minute it is back at the share: from then on at most 2/s, and neither side is refused more
    than once a minute."""
    traffic = _run(kind, 300, ((120.0, math.inf, 1.0),))
    assert traffic.our_rate(100, 120) >= 2.85
    assert 1.7 <= traffic.our_rate(180, 300) <= 2.0
    assert traffic.our_429s(180, 300) <= 2
    assert traffic.their_refused(180, 300)[0] <= 2


def test_a_failed_probe_goes_straight_back_to_the_proven_rate_and_waits_a_quiet_spell() -> None:
    """Held 60 s clean at 2/s, the law probes upward; a 429 in the probe puts the rate back to
    2/s at once, and the next probe comes `quiet` seconds later."""

    async def scenario() -> list[tuple[float, RateChange]]:
        loop = asyncio.get_running_loop()
        log: list[tuple[float, RateChange]] = []
        law = SettleAndProbe(3.0, 0.1, backoff=2 / 3)  # starts at 2/s: climb target 3/s
        law.phase, law.target = "hold", 2.0
        gate = Gate(3.0, auto=True, ceiling=3.0, law=law,
                    on_rate_change=lambda c: log.append((loop.time(), c)))
        start = loop.time()
        while loop.time() - start < QUIET + 8:
            await gate.acquire()
        assert gate.rate is not None and gate.rate > 2.0
        gate.pause(1.0)
        assert gate.rate == pytest.approx(2.0)
        while loop.time() - start < 2 * QUIET + 20:
            await gate.acquire()
        return [(t - start, c) for t, c in log]

    log = run_virtual(scenario)
    probes = [t for t, c in log if "probing above" in c.reason]
    back = [c for _, c in log if "back to it" in c.reason]
    assert len(back) == 1 and back[0].new == pytest.approx(2.0)
    assert len(probes) == 2
    assert probes[0] == pytest.approx(QUIET, abs=0.6)
    assert probes[1] - probes[0] >= QUIET + 5


def test_an_idle_gate_proves_nothing_and_does_not_climb() -> None:
    """Two calls 5 minutes apart: no 429 in between, but no calls either, so no step up."""

    async def scenario() -> float | None:
        gate = _auto()
        await gate.acquire()
        await asyncio.sleep(300)
        await gate.acquire()
        await asyncio.sleep(1)
        await gate.acquire()
        return gate.rate

    assert run_virtual(scenario) == pytest.approx(1.5)


def test_the_reserve_is_left_free_in_fixed_mode() -> None:
    """--rate 3 --reserve 1: calls go 1/2 s apart."""

    async def scenario() -> list[float]:
        gate = Gate(3.0, reserve=1.0)
        loop = asyncio.get_running_loop()
        times = []
        for _ in range(5):
            await gate.acquire()
            times.append(loop.time())
        return times

    times = run_virtual(scenario)
    assert [b - a for a, b in zip(times, times[1:], strict=False)] == pytest.approx([0.5] * 4)


def test_the_reserve_caps_adaptive_mode_below_the_ceiling() -> None:
    """--rate auto --reserve 1 alone: it climbs to 2/s, not 3/s, so a neighbour starting at
    1/s finds room at once: none of its calls refused, and bulkmeet never sees a 429."""
    traffic = _run("sliding", 240, ((120.0, math.inf, 1.0),), reserve=1.0)
    assert max(rate for _, rate in traffic.rates) == pytest.approx(2.0)
    assert traffic.their_refused() == (0, 120)
    assert traffic.our_429s(0, 240) == 0


@pytest.mark.parametrize("reserve", [-0.5, 3.0, 4.0])
def test_a_reserve_that_leaves_nothing_is_refused(reserve: float) -> None:
    with pytest.raises(ValueError, match="reserve"):
        Gate(3.0, reserve=reserve)
