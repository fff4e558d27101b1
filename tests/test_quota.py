"""The daily budget's state file: counts add up across processes and reset with the day."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest

from bulkmeet.errors import QuotaExhausted
from bulkmeet.quota import DailyQuota

from .vclock import run_virtual


def test_two_runs_at_once_add_their_calls_instead_of_overwriting(tmp_path: Path) -> None:
    """Two quota objects on one file (two processes): the file holds the sum of their calls."""
    path = tmp_path / "q.json"
    a = DailyQuota(100, path)
    b = DailyQuota(100, path)
    for _ in range(7):
        a.spend()
    for _ in range(5):
        b.spend()
    a.save()
    b.save()
    assert orjson.loads(path.read_bytes())["used"] == 12
    assert b.remaining == 88  # b learned a's calls when it saved
    assert DailyQuota(100, path).remaining == 88


def test_budget_spent_raises_naming_the_reset(tmp_path: Path) -> None:
    """The call past the budget is refused with the day and the reset time."""
    q = DailyQuota(2, tmp_path / "q.json")
    q.spend()
    q.spend()
    with pytest.raises(QuotaExhausted, match="daily budget of 2 calls is spent"):
        q.spend()


def test_the_day_turns_at_the_reset_time_in_its_zone(tmp_path: Path) -> None:
    """reset 06:00 in Europe/Berlin: 05:59 local belongs to the day before."""
    q = DailyQuota(10, None, reset="06:00", tz="Europe/Berlin")
    before = datetime(2026, 11, 25, 4, 59, tzinfo=UTC)  # 05:59 in Berlin
    after = datetime(2026, 11, 25, 5, 1, tzinfo=UTC)  # 06:01 in Berlin
    assert q.day_of(before) == "2026-11-24"
    assert q.day_of(after) == "2026-11-25"
    assert q.next_reset(before).isoformat() == "2026-11-25T06:00:00+01:00"


def test_a_file_from_another_day_counts_as_zero(tmp_path: Path) -> None:
    """Yesterday's count does not limit today."""
    path = tmp_path / "q.json"
    path.write_bytes(orjson.dumps({"day": "2000-01-01", "used": 10_000}))
    assert DailyQuota(10_000, path).remaining == 10_000


def test_a_long_run_rolls_over_at_the_reset_and_keeps_each_days_count(tmp_path: Path) -> None:
    """A run that crosses the reset: the calls before it are saved as that day's, the budget
    is whole again after it. The wall clock is a fake one, moved by hand."""
    path = tmp_path / "q.json"
    now = [datetime(2026, 11, 25, 23, 59, 58, tzinfo=UTC).timestamp()]
    q = DailyQuota(3, path, clock=lambda: now[0])
    for _ in range(3):
        q.spend()
    with pytest.raises(QuotaExhausted, match="2026-11-25; it resets at 2026-11-26T00:00"):
        q.spend()
    now[0] += 1.9  # 23:59:59.9: still the same day
    with pytest.raises(QuotaExhausted):
        q.spend()
    assert orjson.loads(path.read_bytes()) == {"day": "2026-11-25", "used": 3, "budget": 3}
    now[0] += 0.2  # 00:00:00.1
    q.spend()
    assert (q.day, q.used, q.remaining) == ("2026-11-26", 1, 2)
    q.save()
    assert orjson.loads(path.read_bytes()) == {"day": "2026-11-26", "used": 1, "budget": 3}


def test_a_run_saves_its_count_once_a_second_outside_spend(tmp_path: Path) -> None:
    """spend() only counts (it sits between a call's token and its send); the saver task puts
    the count in the file a second later, on the virtual clock."""
    path = tmp_path / "q.json"

    async def scenario() -> list[int | None]:
        q = DailyQuota(100, path)
        saver = asyncio.create_task(q.save_every(1.0))
        seen: list[int | None] = []
        for _ in range(5):
            q.spend()
        seen.append(orjson.loads(path.read_bytes())["used"] if path.exists() else None)
        await asyncio.sleep(1.01)
        seen.append(orjson.loads(path.read_bytes())["used"])
        q.spend()
        await asyncio.sleep(1.0)
        seen.append(orjson.loads(path.read_bytes())["used"])
        saver.cancel()
        return seen

    assert run_virtual(scenario()) == [None, 5, 6]


def test_calls_of_a_day_that_is_over_never_replace_a_newer_days_count(tmp_path: Path) -> None:
    """Run A still holds unsaved calls from before the reset when run B has already counted
    the new day: A's save leaves B's count alone."""
    path = tmp_path / "q.json"
    now = [datetime(2026, 11, 25, 23, 59, 59, tzinfo=UTC).timestamp()]
    a = DailyQuota(100, path, clock=lambda: now[0])
    a.spend()
    a.spend()
    now[0] += 2.0  # 00:00:01 the next day
    b = DailyQuota(100, path, clock=lambda: now[0])
    b.spend()
    b.save()
    a.save()  # A has not spent since the reset, so it has not rolled over
    assert orjson.loads(path.read_bytes()) == {"day": "2026-11-26", "used": 1, "budget": 100}
