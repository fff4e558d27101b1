"""The daily budget's state file: counts add up across processes and reset with the day."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

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


# --- the reset inside a DST gap or fold -------------------------------------------------------
# The day turns at the first instant whose local wall time is at or past the reset on that local
# date: in a gap (02:30 does not exist) that is the gap's end, the instant the clock jumps; in a
# fold (01:30 happens twice) the first occurrence. Each case: the zone, the reset, the instant
# the walk starts, and the roll-overs the walk must see, as (UTC instant, the day it starts).
DST_CASES = [
    pytest.param("America/New_York", "02:30", "2026-03-06T12:00Z", [
        ("2026-03-07T07:30Z", "2026-03-07"),  # 02:30 EST
        ("2026-03-08T07:00Z", "2026-03-08"),  # 03:00 EDT: 02:30 does not exist that day
        ("2026-03-09T06:30Z", "2026-03-09"),  # 02:30 EDT
        ("2026-03-10T06:30Z", "2026-03-10"),
    ], id="New_York spring gap 02:30"),
    pytest.param("America/New_York", "02:00", "2026-03-06T12:00Z", [
        ("2026-03-07T07:00Z", "2026-03-07"),
        ("2026-03-08T07:00Z", "2026-03-08"),  # 02:00 is the gap's first minute: 03:00 EDT
        ("2026-03-09T06:00Z", "2026-03-09"),
        ("2026-03-10T06:00Z", "2026-03-10"),
    ], id="New_York spring gap 02:00"),
    pytest.param("America/New_York", "01:30", "2026-10-30T12:00Z", [
        ("2026-10-31T05:30Z", "2026-10-31"),  # 01:30 EDT
        ("2026-11-01T05:30Z", "2026-11-01"),  # the first 01:30 (EDT); not again at 01:30 EST
        ("2026-11-02T06:30Z", "2026-11-02"),  # 01:30 EST
        ("2026-11-03T06:30Z", "2026-11-03"),
    ], id="New_York autumn fold 01:30"),
    pytest.param("Europe/Berlin", "02:30", "2026-03-27T12:00Z", [
        ("2026-03-28T01:30Z", "2026-03-28"),  # 02:30 CET
        ("2026-03-29T01:00Z", "2026-03-29"),  # 03:00 CEST: 02:30 does not exist that day
        ("2026-03-30T00:30Z", "2026-03-30"),  # 02:30 CEST
        ("2026-03-31T00:30Z", "2026-03-31"),
    ], id="Berlin spring gap 02:30"),
    pytest.param("Europe/Berlin", "02:30", "2026-10-23T12:00Z", [
        ("2026-10-24T00:30Z", "2026-10-24"),  # 02:30 CEST
        ("2026-10-25T00:30Z", "2026-10-25"),  # the first 02:30 (CEST); not again at 02:30 CET
        ("2026-10-26T01:30Z", "2026-10-26"),  # 02:30 CET
        ("2026-10-27T01:30Z", "2026-10-27"),
    ], id="Berlin autumn fold 02:30"),
]


def _utc(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


@pytest.mark.parametrize(("tz", "reset", "start", "rolls"), DST_CASES)
def test_the_day_turns_once_a_day_across_dst_gaps_and_folds(
        tz: str, reset: str, start: str, rolls: list[tuple[str, str]]) -> None:
    """A run walking four days across a DST change, a minute at a time on the fake wall clock:
    it rolls over exactly at each expected instant, to the next date, never twice in a day and
    never skipping one; a quota made fresh at any of those minutes agrees on the day."""
    now = [_utc(start)]
    q = DailyQuota(1_000_000, None, reset=reset, tz=tz, clock=lambda: now[0])
    seen: list[tuple[str, str]] = []
    day = q.day
    end = _utc(rolls[-1][0]) + 3600
    while now[0] <= end:
        q.spend()  # rolls over when the reset has passed
        if q.day != day:
            at = datetime.fromtimestamp(now[0], UTC).strftime("%Y-%m-%dT%H:%MZ")
            seen.append((at, q.day))
            day = q.day
        assert q.day_of(datetime.fromtimestamp(now[0], UTC)) == q.day
        now[0] += 60
    assert seen == rolls


@pytest.mark.parametrize(("tz", "reset", "start", "rolls"), DST_CASES)
def test_next_reset_is_the_instant_of_the_roll_over(
        tz: str, reset: str, start: str, rolls: list[tuple[str, str]]) -> None:
    """One second before each roll-over the old day still holds and next_reset names that very
    instant; at it, the new day has begun."""
    q = DailyQuota(10, None, reset=reset, tz=tz)
    for at, day in rolls:
        turn = datetime.fromisoformat(at)
        just_before = turn - timedelta(seconds=1)
        assert q.day_of(just_before) == (date.fromisoformat(day) - timedelta(days=1)).isoformat()
        # (compared as instants: == between zones is False for a wall time inside a fold)
        assert q.next_reset(just_before).timestamp() == turn.timestamp()
        assert q.next_reset(just_before).tzinfo == ZoneInfo(tz)
        assert q.day_of(turn) == day
        assert q.next_reset(turn).timestamp() > turn.timestamp()


def test_a_run_started_in_the_folds_second_pass_keeps_its_count(tmp_path: Path) -> None:
    """Reset 01:30 New York, started at 01:15 EST on 1 November 2026 (the second 01:15, after
    the day turned at the first 01:30): the day is 1 November and the budget holds, instead of
    the count starting over at every call."""
    path = tmp_path / "q.json"
    now = [datetime(2026, 11, 1, 6, 15, tzinfo=UTC).timestamp()]  # 01:15 EST
    q = DailyQuota(3, path, reset="01:30", tz="America/New_York", clock=lambda: now[0])
    assert q.day == "2026-11-01"
    for _ in range(3):
        q.spend()
        now[0] += 1
    with pytest.raises(QuotaExhausted,
                       match="spent for 2026-11-01; it resets at 2026-11-02T01:30-05:00"):
        q.spend()
    assert orjson.loads(path.read_bytes()) == {"day": "2026-11-01", "used": 3, "budget": 3}


def test_a_run_in_the_half_hour_after_a_gap_reset_spends_the_new_days_budget(
        tmp_path: Path) -> None:
    """Reset 02:30 New York on 8 March 2026 (02:30 does not exist): a run that spent the budget
    of the 7th has a whole budget again at 03:00 EDT, not only at 03:30."""
    path = tmp_path / "q.json"
    now = [datetime(2026, 3, 8, 6, 59, 58, tzinfo=UTC).timestamp()]  # 01:59:58 EST
    q = DailyQuota(2, path, reset="02:30", tz="America/New_York", clock=lambda: now[0])
    q.spend()
    q.spend()
    with pytest.raises(QuotaExhausted, match="it resets at 2026-03-08T03:00-04:00"):
        q.spend()
    now[0] += 2  # 03:00:00 EDT
    q.spend()
    assert (q.day, q.used) == ("2026-03-08", 1)


def test_a_quota_file_that_cannot_be_written_never_stops_a_spend(tmp_path: Path) -> None:
    """The disk refuses the quota file (full, or gone) when the day turns or the budget is
    spent: spend() still counts or says the budget is spent, never raises OSError (which would
    kill a worker with a row in hand). The end-of-run save still says it, as before."""
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the quota file's folder should be")
    now = [datetime(2026, 11, 25, 23, 59, 59, tzinfo=UTC).timestamp()]
    q = DailyQuota(2, blocker / "q.json", clock=lambda: now[0])
    q.spend()
    q.spend()
    with pytest.raises(QuotaExhausted):
        q.spend()  # saves before saying so: the save fails, the answer stands
    now[0] += 2  # the day turns: the roll saves the old day's calls first
    q.spend()
    assert (q.day, q.used) == ("2026-11-26", 1)
    with pytest.raises(OSError):
        q.save()
