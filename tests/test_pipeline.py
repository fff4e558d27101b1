"""The whole run against the sandbox on a real loopback port: one final record per row, no meeting
created twice, the contract kept, faults handled, resume and the ledger honoured."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path
from typing import Any

import jsonschema
import orjson
import pytest

from bulkmeet.config import Config
from bulkmeet.engine import RunStats
from bulkmeet.models import Record, Row, Status
from bulkmeet.results import ResultsWriter, read_results
from bulkmeet.runs import RunOptions, run_input
from bulkmeet.sandbox import Sandbox, SandboxSettings, start_sandbox

from .helpers import CREDS, entries, finals, last_by_key, meeting_row, new_meeting_schema, write_csv

FAST = Config(rate=1000.0, rate_ceiling=1000.0, backoff_base=0.01, backoff_max=0.05,
              retry_after_default=0.2, request_timeout=5.0)


@pytest.fixture(autouse=True)
def _creds(monkeypatch: pytest.MonkeyPatch) -> None:
    for k, v in CREDS.items():
        monkeypatch.setenv(k, v)


def run_against(settings: SandboxSettings, cfg: Config, opts: RunOptions,
                sandbox: list[Sandbox] | None = None) -> tuple[RunStats, Sandbox]:
    """Start a sandbox, point the run at it, run, close; returns stats and the sandbox."""

    async def go() -> tuple[RunStats, Sandbox]:
        sb = await start_sandbox(settings)
        try:
            stats = await run_input(cfg.replace(base_url=sb.url), opts)
        finally:
            await sb.close()
        return stats, sb

    return asyncio.run(go())


def test_every_row_gets_one_final_record_and_creations_match(tmp_path: Path) -> None:
    """30 rows, 3 invalid: 27 created in the sandbox, one final record per row, each valid body
    matches NewMeetingRequest from the OpenAPI file."""
    rows = [meeting_row(i, invalid=(i % 10 == 3)) for i in range(30)]
    src = write_csv(tmp_path / "in.csv", rows)
    out = tmp_path / "out.jsonl"
    stats, sb = run_against(SandboxSettings(rate=None), FAST,
                            RunOptions(input=str(src), out=str(out)))
    recs = finals(out)
    assert sorted(r["line"] for r in recs) == list(range(2, 32))
    by_status = Counter(r["status"] for r in recs)
    assert by_status == {"created": 27, "invalid": 3}
    assert sb.state.creates == 27
    assert {r["meetingId"] for r in recs if r["status"] == "created"} == set(sb.state.meetings)
    schema = new_meeting_schema()
    posted = [e.body for e in sb.state.log if e.method == "POST"]
    assert len(posted) == 27
    for body in posted:
        jsonschema.validate(body, schema)
    for r in recs:
        if r["status"] == "invalid":
            assert "endTime" in r["errors"][0] and str(r["line"]) in r["errors"][0]
    assert stats.requests == 27


def test_faults_429_500_and_drops_still_give_one_record_per_row(tmp_path: Path) -> None:
    """With 429s, 500s and dropped connections injected, every row still ends with exactly one
    final record, created records equal the sandbox's creations, no key is created twice, and a
    dropped request is recorded uncertain rather than sent again."""
    rows = [meeting_row(i) for i in range(60)]
    src = write_csv(tmp_path / "in.csv", rows)
    out = tmp_path / "out.jsonl"
    settings = SandboxSettings(rate=40, window="fixed", retry_after_fixed=1, fail_rate=0.15,
                               drop_rate=0.05, seed=7)
    stats, sb = run_against(settings, FAST.replace(max_attempts=8),
                            RunOptions(input=str(src), out=str(out)))
    recs = finals(out)
    assert len(recs) == 60 and len({r["line"] for r in recs}) == 60
    created = [r for r in recs if r["status"] == "created"]
    assert len(created) == sb.state.creates
    assert all(n == 1 for n in sb.state.created_by_external_id.values())
    uncertain = [r for r in recs if r["status"] == "uncertain"]
    assert len(uncertain) == sb.state.dropped
    assert sb.state.by_status[500] > 0 and sb.state.dropped > 0
    assert {r["status"] for r in recs} <= {"created", "uncertain", "failed"}
    # Every 500 was retried: a row only fails after max_attempts 500s.
    for r in recs:
        if r["status"] == "failed":
            assert r["httpStatus"] == 500 and r["attempts"] >= 8


def test_a_429_pauses_and_the_row_is_sent_again_without_counting_a_failure(
        tmp_path: Path) -> None:
    """A sandbox allowing 5/s in fixed windows, a client at 1000/s: rows that got 429 are sent
    again after the pause and all end created; no row is failed for 429s."""
    src = write_csv(tmp_path / "in.csv", [meeting_row(i) for i in range(12)])
    out = tmp_path / "out.jsonl"
    stats, sb = run_against(SandboxSettings(rate=5, window="fixed", retry_after_fixed=1),
                            FAST.replace(max_attempts=1), RunOptions(input=str(src), out=str(out)))
    assert sb.state.rate_limited > 0
    assert Counter(r["status"] for r in finals(out)) == {"created": 12}
    assert stats.pauses >= 1 and stats.rate_limited == sb.state.rate_limited


def test_401_stops_at_once_and_records_the_rest_not_sent(tmp_path: Path) -> None:
    """Credentials the server refuses: nothing more is sent after the first 401s, every other row
    is recorded not_sent with the reason."""
    src = write_csv(tmp_path / "in.csv", [meeting_row(i) for i in range(40)])
    out = tmp_path / "out.jsonl"
    settings = SandboxSettings(rate=None, credentials=("other", "creds"))
    stats, sb = run_against(settings, FAST.replace(concurrency=4),
                            RunOptions(input=str(src), out=str(out)))
    recs = finals(out)
    assert len(recs) == 40
    assert stats.auth_error is not None and stats.auth_error.http_status == 401
    assert sb.state.requests <= 4  # at most the requests already in flight
    counts = Counter(r["status"] for r in recs)
    assert counts["failed"] == sb.state.requests
    assert counts["not_sent"] == 40 - sb.state.requests
    assert all("401" in r["errors"][0] for r in recs)


def test_resuming_a_finished_run_sends_nothing(tmp_path: Path) -> None:
    """The same command again on a finished results file: zero requests, every row skipped."""
    src = write_csv(tmp_path / "in.csv", [meeting_row(i) for i in range(10)])
    out = tmp_path / "out.jsonl"
    opts = RunOptions(input=str(src), out=str(out))
    run_against(SandboxSettings(rate=None), FAST, opts)
    before = len(entries(out))
    stats, sb = run_against(SandboxSettings(rate=None), FAST, opts)
    assert sb.state.requests == 0 and stats.requests == 0
    assert stats.skipped == 10
    assert len(entries(out)) == before


def test_resume_sends_only_rows_without_a_created_record(tmp_path: Path) -> None:
    """A results file holding 4 created rows of 10: the resume sends the other 6, and only
    them."""
    src = write_csv(tmp_path / "in.csv", [meeting_row(i) for i in range(10)])
    out = tmp_path / "out.jsonl"
    first = tmp_path / "first.csv"
    write_csv(first, [meeting_row(i) for i in range(4)])
    run_against(SandboxSettings(rate=None), FAST, RunOptions(input=str(first), out=str(out)))
    stats, sb = run_against(SandboxSettings(rate=None), FAST,
                            RunOptions(input=str(src), out=str(out)))
    assert stats.skipped == 4
    assert sorted(sb.state.created_by_external_id) == [f"ext-{i}" for i in range(4, 10)]
    assert {k: v["status"] for k, v in last_by_key(out).items()} == {
        f"ext-{i}": "created" for i in range(10)}


def test_a_dangling_sending_entry_becomes_uncertain_and_is_not_sent(tmp_path: Path) -> None:
    """A request in flight when a run died: the resume records it uncertain and sends nothing for
    it; --resend-uncertain sends it."""
    src = write_csv(tmp_path / "in.csv", [meeting_row(i) for i in range(3)])
    out = tmp_path / "out.jsonl"
    out.write_bytes(orjson.dumps({"line": 3, "key": "ext-1", "status": "sending", "attempts": 1})
                    + b"\n")
    stats, sb = run_against(SandboxSettings(rate=None), FAST,
                            RunOptions(input=str(src), out=str(out)))
    assert sorted(sb.state.created_by_external_id) == ["ext-0", "ext-2"]
    assert last_by_key(out)["ext-1"]["status"] == "uncertain"
    assert stats.uncertain_lines == [3]
    # A second resume neither sends it nor records it again.
    stats, sb = run_against(SandboxSettings(rate=None), FAST,
                            RunOptions(input=str(src), out=str(out)))
    assert sb.state.requests == 0 and stats.uncertain_before == 1
    stats, sb = run_against(SandboxSettings(rate=None), FAST,
                            RunOptions(input=str(src), out=str(out), resend_uncertain=True))
    assert list(sb.state.created_by_external_id) == ["ext-1"]


def test_a_torn_last_line_is_tolerated_with_a_warning(tmp_path: Path,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    """A results file whose last line was cut mid-write resumes; the torn line is ignored."""
    src = write_csv(tmp_path / "in.csv", [meeting_row(i) for i in range(3)])
    out = tmp_path / "out.jsonl"
    run_against(SandboxSettings(rate=None), FAST, RunOptions(input=str(src), out=str(out)))
    data = out.read_bytes()
    out.write_bytes(data[:-40])  # cut the last record
    stats, sb = run_against(SandboxSettings(rate=None), FAST,
                            RunOptions(input=str(src), out=str(out)))
    assert any("incomplete" in r.getMessage() for r in caplog.records)
    # The cut record was the last row's `created`: its `sending` remains, so the row is
    # uncertain (Gong has it, but its meetingId was lost with the line) and is not sent again.
    assert sb.state.requests == 0
    assert Counter(r["status"] for r in finals(out)) == {"created": 2, "uncertain": 1}


def test_duplicate_keys_in_one_input_are_sent_once(tmp_path: Path) -> None:
    """Two rows with the same externalId: the second is recorded duplicate, naming the first."""
    rows = [meeting_row(0), meeting_row(1), meeting_row(2, ext="ext-0")]
    src = write_csv(tmp_path / "in.csv", rows)
    out = tmp_path / "out.jsonl"
    _, sb = run_against(SandboxSettings(rate=None), FAST, RunOptions(input=str(src), out=str(out)))
    recs = {r["line"]: r for r in finals(out)}
    assert recs[4]["status"] == "duplicate" and "line 2" in recs[4]["errors"][0]
    assert sb.state.creates == 2


def test_ledger_across_runs_with_overlapping_inputs_creates_each_key_once(
        tmp_path: Path) -> None:
    """Two nightly runs, different results files, overlapping rows, one ledger: each key is
    created once, and the second run records the overlap as skipped."""
    ledger = tmp_path / "ledger.jsonl"
    cfg = FAST.replace(ledger=str(ledger))
    night1 = write_csv(tmp_path / "n1.csv", [meeting_row(i) for i in range(8)])
    night2 = write_csv(tmp_path / "n2.csv", [meeting_row(i) for i in range(5, 12)])
    created: Counter[str] = Counter()
    for night, out in ((night1, "r1.jsonl"), (night2, "r2.jsonl")):
        _, sb = run_against(SandboxSettings(rate=None), cfg,
                            RunOptions(input=str(night), out=str(tmp_path / out)))
        created.update(sb.state.created_by_external_id)
    assert created == {f"ext-{i}": 1 for i in range(12)}
    r2 = last_by_key(tmp_path / "r2.jsonl")
    assert [k for k, v in r2.items() if v["status"] == "skipped"] == ["ext-5", "ext-6", "ext-7"]


def test_daily_budget_defers_the_rest_and_the_next_day_continues(tmp_path: Path) -> None:
    """daily_budget 4 with 7 rows: 4 created, 3 deferred (exit status deferred); the same day a
    re-run sends nothing; after the reset it sends the 3."""
    src = write_csv(tmp_path / "in.csv", [meeting_row(i) for i in range(7)])
    out = tmp_path / "out.jsonl"
    quota = tmp_path / "quota.json"
    cfg = FAST.replace(daily_budget=4, quota_file=str(quota), concurrency=1)
    stats, sb = run_against(SandboxSettings(rate=None), cfg, RunOptions(input=str(src),
                                                                        out=str(out)))
    assert stats.exit_status is Status.DEFERRED
    assert Counter(r["status"] for r in finals(out)) == {"created": 4, "deferred": 3}
    stats, sb = run_against(SandboxSettings(rate=None), cfg, RunOptions(input=str(src),
                                                                        out=str(out)))
    assert sb.state.requests == 0 and stats.exit_status is Status.DEFERRED
    state: dict[str, Any] = orjson.loads(quota.read_bytes())
    state["day"] = "2000-01-01"  # the reset has passed
    quota.write_bytes(orjson.dumps(state))
    stats, sb = run_against(SandboxSettings(rate=None), cfg, RunOptions(input=str(src),
                                                                        out=str(out)))
    assert sb.state.creates == 3 and stats.exit_status is None


def test_retry_after_beyond_max_wait_defers_instead_of_sleeping(tmp_path: Path) -> None:
    """A 429 asking for an hour with max_wait 60 s: the run stops sending and defers the rest."""
    src = write_csv(tmp_path / "in.csv", [meeting_row(i) for i in range(6)])
    out = tmp_path / "out.jsonl"
    settings = SandboxSettings(rate=2, window="fixed", retry_after_fixed=3600)
    stats, sb = run_against(settings, FAST.replace(max_wait=60.0, concurrency=1),
                            RunOptions(input=str(src), out=str(out)))
    assert stats.exit_status is Status.DEFERRED
    counts = Counter(r["status"] for r in finals(out))
    assert counts["created"] == 2 and counts["deferred"] == 4
    assert "max_wait" in (stats.stop_reason or "")


def test_a_key_whose_last_record_is_updated_is_never_created_again(tmp_path: Path) -> None:
    """A sync appended `updated` after `created` in the same results file: run still knows the
    meeting exists and sends nothing for it (the last record is not `created`)."""
    src = write_csv(tmp_path / "in.csv", [meeting_row(0), meeting_row(1)])
    out = tmp_path / "out.jsonl"
    lines = [{"line": 2, "key": "ext-0", "status": "created", "meetingId": "11"},
             {"line": 2, "key": "ext-0", "status": "updated", "meetingId": "11"}]
    out.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in lines))
    _, sb = run_against(SandboxSettings(rate=None), FAST, RunOptions(input=str(src),
                                                                     out=str(out)))
    assert list(sb.state.created_by_external_id) == ["ext-1"]


def test_a_sending_settled_by_answered_is_sent_again_not_uncertain(tmp_path: Path) -> None:
    """Killed during a 429 pause: the row's `sending` is followed by `answered` (Gong made
    nothing), so the resume sends it instead of calling it uncertain."""
    src = write_csv(tmp_path / "in.csv", [meeting_row(0)])
    out = tmp_path / "out.jsonl"
    lines = [{"line": 2, "key": "ext-0", "status": "sending", "attempts": 1},
             {"line": 2, "key": "ext-0", "status": "answered", "httpStatus": 429}]
    out.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in lines))
    _, sb = run_against(SandboxSettings(rate=None), FAST, RunOptions(input=str(src),
                                                                     out=str(out)))
    assert list(sb.state.created_by_external_id) == ["ext-0"]


def test_429_and_500_answers_are_journalled_as_answered(tmp_path: Path) -> None:
    """Each 429 or 5xx gets an `answered` entry after its `sending`, so no `sending` is left
    dangling once the run ends."""
    src = write_csv(tmp_path / "in.csv", [meeting_row(i) for i in range(6)])
    out = tmp_path / "out.jsonl"
    settings = SandboxSettings(rate=3, window="fixed", retry_after_fixed=1, fail_rate=0.3,
                               seed=3)
    _, sb = run_against(settings, FAST.replace(max_attempts=10),
                        RunOptions(input=str(src), out=str(out)))
    journal = entries(out)
    answered = [e for e in journal if e["status"] == "answered"]
    assert len(answered) == sb.state.by_status[429] + sb.state.by_status[500] > 0
    open_keys: set[str] = set()
    for e in journal:
        if e["status"] == "sending":
            open_keys.add(e["key"])
        else:
            open_keys.discard(e["key"])
    assert open_keys == set()


def test_a_torn_csv_results_file_is_cut_back_and_read_whole_on_resume(tmp_path: Path) -> None:
    """A CSV results file cut inside a quoted payload cell: the resume trims the torn entry,
    appends after it, and a third run reads every record (nothing sent twice)."""
    src = write_csv(tmp_path / "in.csv", [meeting_row(i) for i in range(4)])
    out = tmp_path / "out.csv"
    opts = RunOptions(input=str(src), out=str(out))
    run_against(SandboxSettings(rate=None), FAST, opts)
    data = out.read_bytes()
    cut = data.rindex(b'"{') + 10  # inside the last quoted payload JSON
    out.write_bytes(data[:cut])
    _, sb = run_against(SandboxSettings(rate=None), FAST, opts)
    _, sb3 = run_against(SandboxSettings(rate=None), FAST, opts)
    assert sb3.state.requests == 0
    from bulkmeet.results import read_results

    state = read_results(out)
    assert not state.warnings
    assert sorted(state.keys) == [f"ext-{i}" for i in range(4)]


def test_resume_state_keeps_payloads_only_for_keys_without_a_meeting(tmp_path: Path) -> None:
    """read_results holds one payload per key that `retry` may send again, none for keys whose
    meeting exists (their organizer stays, for `undo`): resume memory is not a copy of every
    payload ever sent."""
    payload = {"startTime": "2027-01-04T09:00:00Z", "endTime": "2027-01-04T09:30:00Z",
               "organizerEmail": "rep@seller.example", "invitees": []}
    writer = ResultsWriter(tmp_path / "r.jsonl")
    for key, status in (("made", Status.CREATED), ("lost", Status.FAILED)):
        writer.sending(Row(2, key, payload), 1, "h")
        writer.record(Record(2, key, status, 200 if status is Status.CREATED else 500,
                             meeting_id="9" if status is Status.CREATED else None))
    writer.close()
    state = read_results(tmp_path / "r.jsonl")
    made, lost = state.keys["made"], state.keys["lost"]
    assert (made.exists, made.payload, made.organizer) == (True, None, "rep@seller.example")
    assert (lost.exists, lost.payload, lost.organizer) == (False, payload, "rep@seller.example")
