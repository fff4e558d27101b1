"""The benchmark harness (benchmarks/) still runs, on a few rows and in-process: its figures are
only as good as the code that computes them. Plus the compact key index the memory benchmark led
to (triage.KeyIndex)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import orjson
import pytest

from benchmarks.bulk import run_unlimited
from benchmarks.common import SandboxReport, write_input
from benchmarks.handwritten import send_file
from benchmarks.pacing import Journal, pacing_of, recovery_of
from bulkmeet.config import Config
from bulkmeet.sandbox import SandboxSettings, SandboxThread
from bulkmeet.triage import KeyIndex

JOURNAL = Journal(requests=0, created=1, rate=0.0, summary="")


def test_handwritten_script_and_bulkmeet_pipeline_send_the_same_rows(tmp_path: Path) -> None:
    """Both sides of the overhead benchmark post every row once and record each one."""
    rows = write_input(tmp_path / "in.csv", 20)
    with SandboxThread(SandboxSettings(rate=None)) as sandbox:
        assert send_file(sandbox.url, str(rows), str(tmp_path / "hand.jsonl")) == 20
        report = asyncio.run(run_unlimited(Config(daily_budget=100), str(rows),
                                           str(tmp_path / "bulk.jsonl"), sandbox.url))
        creates = sandbox.state.creates
    hand = [orjson.loads(line) for line in (tmp_path / "hand.jsonl").read_bytes().splitlines()]
    assert sorted(e["line"] for e in hand) == list(range(2, 22))
    assert {e["status"] for e in hand} == {200}
    assert report["counts"] == {"created": 20} and report["requests"] == 20
    assert creates == 40


def test_pacing_figures_come_from_the_sandbox_log() -> None:
    """Accepted calls 0.34 s apart read as 2.94/s, ratio 0.98 of 3/s; four calls span 1.02 s."""
    log: list[tuple[float, int | None]] = [(100 + 0.34 * i, 200) for i in range(10)]
    p = pacing_of("sliding", 3.0, SandboxReport({"rate_limited": 0}, log), JOURNAL)
    assert p.server_rate == pytest.approx(1 / 0.34)
    assert p.ratio == pytest.approx(0.98, abs=0.001)
    assert p.tightest == pytest.approx(1.02) and p.ok
    limited = pacing_of("sliding", 3.0, SandboxReport({"rate_limited": 1}, log), JOURNAL)
    assert not limited.ok


def test_recovery_counts_the_gap_after_each_429_and_calls_inside_the_pause() -> None:
    """A call 2.005 s after a 429 meets the target; one 1 s after it is a call in the pause."""
    good = recovery_of(SandboxReport({}, [(1.0, 200), (1.1, 429), (3.105, 200)]), 2, JOURNAL)
    assert good.gaps == [pytest.approx(2.005)] and good.sent_in_pause == 0 and good.ok
    early = recovery_of(SandboxReport({}, [(1.1, 429), (2.1, 200), (3.2, 200)]), 2, JOURNAL)
    assert early.sent_in_pause == 1 and not early.ok


def test_key_index_finds_every_earlier_key_across_growth() -> None:
    """Past its first size the index still returns each key's first line, and None for a new
    key; a key seen again keeps its first line."""
    index = KeyIndex(capacity=8)
    keys = [f"h:{i:032x}" for i in range(5000)]
    assert all(index.add(k, line) is None for line, k in enumerate(keys, start=2))
    assert len(index) == 5000
    assert [index.add(k, 999_999) for k in keys] == list(range(2, 5002))
    assert index.add("not seen before", 7) is None and index.add("not seen before", 8) == 7


def test_first_lines_spills_to_disk_past_its_memory_limit_and_still_finds_every_key() -> None:
    """With room for 100 keys in memory, 1,000 keys: each is new once, and a repeat of any of
    them (in memory or on disk) names its first line."""
    from bulkmeet.triage import FirstLines

    seen = FirstLines(in_memory=100)
    assert all(seen.add(f"k{i}", i) is None for i in range(1000))
    assert seen.add("k5", 2000) == 5
    assert seen.add("k999", 2001) == 999
    seen.close()


def test_beside_figures_come_from_the_sandbox_log_and_the_neighbour_counters() -> None:
    """(e): 2 accepted calls a second after the first minute, one 429 a minute, 2 of 180
    neighbour calls refused: meets the target; a third refusal of 100 calls does not."""
    from benchmarks.neighbour import Beside, first_above

    accepted = [i / 2 for i in range(360)]
    run = Beside("sliding", "new", 180.0, None, accepted, [70.0, 130.0], 180, 2)
    assert run.rate(60, 180) == pytest.approx(2.0)
    assert run.per_minute(60, 180) == pytest.approx(1.0)
    assert run.ok
    assert not Beside("sliding", "new", 180.0, None, accepted, [], 100, 3).ok
    # 2/s until 60 s, then 3/s: read over 10 s that all come after the stop, so at 70 s; at
    # 2.5/s after the stop, never
    times = [i / 2 for i in range(120)] + [60 + i / 3 for i in range(90)]
    assert first_above(times, 2.8, 60, 10) == pytest.approx(10.0)
    assert first_above([60 + i / 2.5 for i in range(100)], 2.8, 60, 10) is None
    stops = Beside("sliding", "new", 90.0, 60.0, times, [], 60, 0)
    assert stops.recovery == pytest.approx(10.0) and stops.ok


def test_the_resume_and_plan_memory_benchmarks_run_and_check_their_figures(
        tmp_path: Path) -> None:
    """The harnesses of BENCHMARKS.md's million-key figures, on a few hundred rows: the resume
    sends and writes nothing, the plan and sync find exactly the changed rows."""
    from benchmarks.plan_memory import measure as plan_memory
    from benchmarks.resume_memory import resume

    (tmp_path / "resume").mkdir()
    report = resume(tmp_path / "resume", 300)
    # The harness raises when the resume sent or wrote anything, or the plan and sync found
    # other than the changed rows; what is left to check is that it measured what it says.
    assert (report["rows"], report["exit"]) == (300, 0)
    (tmp_path / "plan").mkdir()
    report = plan_memory(tmp_path / "plan", 300, 10)
    assert (report["rows"], report["updates"]) == (300, 10)
