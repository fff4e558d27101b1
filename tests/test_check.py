"""The preflight (bulkmeet/preflight.py and `bulkmeet check`): run's triage without the network, the
organizers of an input, and what Gong's integration/status says of them, asked through a real
sandbox on a loopback port."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from bulkmeet.cli import main
from bulkmeet.client import Credentials, GongClient
from bulkmeet.config import Config
from bulkmeet.errors import AuthError, UsageError
from bulkmeet.gate import Gate
from bulkmeet.mapping import Mapper
from bulkmeet.models import RawRow, Record, Status
from bulkmeet.preflight import (
    MAX_EMAILS_PER_CALL,
    Organizer,
    Preflight,
    Triage,
    ask_gong,
    check_out_path,
    collect_organizers,
)
from bulkmeet.quota import DailyQuota
from bulkmeet.results import ResultsWriter
from bulkmeet.sandbox import (
    FIX_URL,
    MSG_CONSENT,
    MSG_NOT_A_USER,
    SandboxSettings,
    SandboxThread,
    start_sandbox,
)

from .helpers import CREDS, SANDBOX, meeting_row, write_csv

STATUS_PATH = "/v2/meetings/integration/status"


def raw(line: int, organizer: str = "ana@seller.example", *, start: str = "09:00",
        end: str = "09:30", ext: str | None = None, cancel: str = "") -> RawRow:
    return RawRow(line, {
        "startTime": f"2026-12-01T{start}:00Z", "endTime": f"2026-12-01T{end}:00Z",
        "organizerEmail": organizer, "externalId": ext or f"ext-{line}", "invitees": "",
        "title": "T", "Canceled": cancel,
    })


FILTERED = Mapper({"filter": {"skip_if": {"column": "Canceled", "equals": "yes"}}})


# --- Triage ------------------------------------------------------------------------------------


def test_triage_sorts_rows_as_run_does() -> None:
    """Valid rows have no record; skipped, invalid and duplicate ones get run's record, with
    run's wording for the duplicate, and the counts add up to the rows."""
    triage = Triage(FILTERED)
    verdicts = [triage(r) for r in (
        raw(2), raw(3, ext="ext-2"), raw(4, end="08:00"), raw(5, cancel="YES"), raw(6),
        RawRow(7, None, "line 7: the file ends inside a quoted value"),
    )]
    assert [v.status for v in verdicts] == [None, Status.DUPLICATE, Status.INVALID,
                                            Status.SKIPPED, None, Status.INVALID]
    duplicate = verdicts[1]
    assert duplicate.first_line == 2
    assert duplicate.record == Record(3, "ext-2", Status.DUPLICATE, errors=(
        "line 3: same key 'ext-2' as line 2; not sent twice",))
    assert verdicts[2].record is not None and "not after the start" in verdicts[2].record.errors[0]
    assert verdicts[3].record is not None and "skip_if" in verdicts[3].record.errors[0]
    assert verdicts[5].record is not None
    assert verdicts[5].record.errors == ("line 7: the file ends inside a quoted value",)
    assert dict(triage.counts) == {"rows": 6, "valid": 2, "duplicate": 1, "invalid": 2,
                                   "skipped": 1}
    assert not triage.all_valid


def test_triage_all_valid_allows_skipped_rows() -> None:
    """A row the filter leaves out is intended, not a problem: all_valid stays true."""
    triage = Triage(FILTERED)
    triage(raw(2))
    triage(raw(3, cancel="yes"))
    assert triage.all_valid and triage.counts["skipped"] == 1


def test_triage_hands_over_the_mappers_warnings_per_row() -> None:
    """Dropped invitees are warnings of their own row, not of the next one."""
    mapper = Mapper({"invitee_directory": {"Bo": "bo@acme.example"},
                     "unresolved_invitees": "drop"})
    triage = Triage(mapper)
    fields = dict(raw(2).fields or {}, invitees="Bo; Nobody")
    first = triage(RawRow(2, fields))
    second = triage(raw(3))
    assert len(first.warnings) == 1 and "'Nobody'" in first.warnings[0]
    assert second.warnings == ()


# --- validate --out safety ---------------------------------------------------------------------


def test_out_path_accepts_new_files_and_validates_own(tmp_path: Path) -> None:
    """A new file, or one holding only invalid/duplicate/skipped records, may be rewritten."""
    src = write_csv(tmp_path / "in.csv", [meeting_row(0)])
    check_out_path(str(tmp_path / "new.jsonl"), str(src))
    own = tmp_path / "own.jsonl"
    writer = ResultsWriter(own)
    writer.record(Record(2, "k", Status.INVALID, errors=("bad",)))
    writer.record(Record(3, "k", Status.SKIPPED, errors=("filtered",)))
    writer.close()
    check_out_path(str(own), str(src))


def test_out_path_refuses_the_input_and_a_runs_results(tmp_path: Path) -> None:
    """Overwriting the input, or a run's results (whose created records stop a re-run from
    creating meetings twice), is refused before anything is written."""
    src = write_csv(tmp_path / "in.csv", [meeting_row(0)])
    with pytest.raises(UsageError, match="is the input file"):
        check_out_path(str(src), str(src))
    results = tmp_path / "run.jsonl"
    writer = ResultsWriter(results)
    writer.record(Record(2, "k", Status.CREATED, meeting_id="1"))
    writer.close()
    before = results.read_bytes()
    with pytest.raises(UsageError, match="holds the results of a run"):
        check_out_path(str(results), str(src))
    assert results.read_bytes() == before


# --- collecting organizers ---------------------------------------------------------------------


def test_organizers_are_distinct_case_insensitively_from_valid_rows_only() -> None:
    """One Organizer per address whatever its case (the first spelling kept), with its row count
    and first lines; invalid, skipped and duplicate rows do not count."""
    rows = [raw(2, "Ana@Seller.example"), raw(3, "ana@seller.example"),
            raw(4, "raj@seller.example"), raw(5, "bad@x.example", end="08:00"),
            raw(6, "skip@x.example", cancel="yes"), raw(7, "dup@x.example", ext="ext-2"),
            *(raw(n, "ana@SELLER.example") for n in range(8, 14))]
    found = collect_organizers(rows, Triage(FILTERED))
    assert [o.email for o in found] == ["Ana@Seller.example", "raj@seller.example"]
    assert found[0].rows == 8 and found[0].lines == [2, 3, 8, 9, 10]
    assert found[1].rows == 1 and found[1].lines == [4]


def test_organizer_problem_names() -> None:
    """ok, not a Gong user, integration not valid, not checked: one name per case."""
    assert Organizer("a@x.example", exists=True, valid=True).problem is None
    assert Organizer("a@x.example", exists=False, valid=False).problem == "not a Gong user"
    assert Organizer("a@x.example", exists=True, valid=False).problem == "integration not valid"
    assert Organizer("a@x.example").problem == "not checked"


# --- asking Gong (the sandbox) -----------------------------------------------------------------


FAST = Config(max_attempts=3, backoff_base=0.0, backoff_max=0.0)


def _report(emails: list[str]) -> Preflight:
    return Preflight([Organizer(e, rows=1, lines=[2]) for e in emails], Triage(Mapper()).counts)


async def _ask(settings: SandboxSettings, report: Preflight, cfg: Config = FAST, *,
               credentials: Credentials | None = None, gate: Gate | None = None,
               quota: DailyQuota | None = None) -> list[Any]:
    """Run ask_gong against a fresh sandbox; returns the bodies of its status requests."""
    sandbox = await start_sandbox(settings)
    try:
        async with GongClient(sandbox.url, credentials or Credentials.basic("k", "s")) as client:
            await ask_gong(report, client, gate or Gate(None), cfg, quota=quota)
        assert all(r.path == STATUS_PATH for r in sandbox.state.log)
        return [r.body for r in sandbox.state.log]
    finally:
        await sandbox.close()


def test_unknown_and_invalid_organizers_get_gongs_words_and_fix_url() -> None:
    """exists/valid come from Gong's answer, matched case-insensitively; a problem keeps Gong's
    userFacingError and fixUrl; ok organizers keep none."""
    settings = SandboxSettings(rate=None, unknown_organizers=frozenset({"gone@seller.example"}),
                               invalid_integration=frozenset({"raj@seller.example"}))
    report = _report(["ana@seller.example", "Raj@Seller.example", "gone@seller.example",
                      "ghost@unknown.example"])
    bodies = asyncio.run(_ask(settings, report))
    assert len(bodies) == 1 and report.requests == 1 and report.answered == 1
    ana, raj, gone, ghost = report.organizers
    assert ana.ok and ana.error is None and ana.fix_url is None
    assert (raj.exists, raj.valid, raj.problem) == (True, False, "integration not valid")
    assert raj.error == MSG_CONSENT and raj.fix_url == FIX_URL and raj.help_url
    for o in (gone, ghost):
        assert (o.exists, o.problem, o.error) == (False, "not a Gong user", MSG_NOT_A_USER)
    assert report.error is None and not report.ok


def test_at_most_100_emails_per_call_and_each_call_through_the_gate_and_quota() -> None:
    """250 organizers: three calls of 100, 100 and 50, each taken from the gate and counted in
    the daily quota; every organizer answered."""
    emails = [f"user{i}@seller.example" for i in range(250)]
    report = _report(emails)
    gate = Gate(None)
    quota = DailyQuota(100, None)
    bodies = asyncio.run(_ask(SandboxSettings(rate=None), report, gate=gate, quota=quota))
    assert [len(b["emails"]) for b in bodies] == [MAX_EMAILS_PER_CALL, MAX_EMAILS_PER_CALL, 50]
    assert [e for b in bodies for e in b["emails"]] == emails
    assert gate.acquired == 3 and quota.used == 3 and report.requests == 3
    assert report.ok


def test_no_organizers_still_asks_once_to_prove_the_credentials() -> None:
    """An input without valid rows: one call with no emails, so bad credentials still show."""
    report = _report([])
    bodies = asyncio.run(_ask(SandboxSettings(rate=None), report))
    assert bodies == [{"emails": []}] and report.answered == 1 and report.ok


@pytest.mark.parametrize(("settings", "status"), [
    (SandboxSettings(rate=None, credentials=("right", "right")), 401),
    (SandboxSettings(rate=None, forbidden=True), 403),
])
def test_401_and_403_raise_auth_error_after_one_call(settings: SandboxSettings,
                                                     status: int) -> None:
    """Refused credentials or the Limited release: AuthError at once, nothing retried."""
    report = _report(["ana@seller.example"])
    with pytest.raises(AuthError) as caught:
        asyncio.run(_ask(settings, report))
    assert caught.value.http_status == status and report.requests == 1


def test_429_pauses_the_gate_and_asks_again() -> None:
    """A 429 is not a failure: the gate pauses for Retry-After, then the call is made again."""
    steps = itertools.count()
    # The sandbox reads its clock twice per request: two calls fall in one fixed window.
    settings = SandboxSettings(rate=1, window="fixed", retry_after_fixed=0,
                               clock=lambda: next(steps) * 0.3)
    emails = [f"user{i}@seller.example" for i in range(150)]
    report = _report(emails)
    gate = Gate(None)
    bodies = asyncio.run(_ask(settings, report, gate=gate))
    assert len(bodies) == 3 and gate.pauses == 1 and report.requests == 3
    assert report.ok


def test_a_wait_past_max_wait_gives_up_and_names_it() -> None:
    """Retry-After beyond max_wait: no waiting, every organizer left 'not checked' with why."""
    steps = itertools.count()
    settings = SandboxSettings(rate=1, window="fixed", retry_after_fixed=600,
                               clock=lambda: next(steps) * 0.1)
    report = _report([f"user{i}@seller.example" for i in range(250)])
    asyncio.run(_ask(settings, report, Config(max_wait=10)))
    assert report.requests == 2
    assert report.error == "Gong's rate limit asks to wait 600s, more than max_wait (10s)"
    assert report.organizers[0].ok
    assert {o.problem for o in report.organizers[100:]} == {"not checked"}
    assert {o.error for o in report.organizers[100:]} == {report.error}


def test_server_errors_are_retried_up_to_max_attempts() -> None:
    """5xx every time: max_attempts calls, then the organizers are 'not checked' with the
    reason and the count of tries; the answers still prove the credentials."""
    report = _report(["ana@seller.example"])
    bodies = asyncio.run(_ask(SandboxSettings(rate=None, fail_rate=1.0), report))
    assert len(bodies) == FAST.max_attempts == report.requests == report.answered
    assert report.error is not None and "tried 3 times" in report.error
    assert report.organizers[0].problem == "not checked"


def test_no_answer_at_all_is_retried_then_reported() -> None:
    """Nothing listening: Retryable (no aiohttp type escapes), retried, then reported; no
    answer came, so the credentials are not said to work."""
    async def go() -> Preflight:
        sandbox = await start_sandbox(SandboxSettings(rate=None))
        url = sandbox.url
        await sandbox.close()
        report = _report(["ana@seller.example"])
        async with GongClient(url, Credentials.basic("k", "s"), timeout=2) as client:
            await ask_gong(report, client, Gate(None), FAST)
        return report

    report = asyncio.run(go())
    assert report.requests == 3 and report.answered == 0
    assert report.error is not None and report.error.startswith("no answer from http://127.0.0.1")


# --- the command -------------------------------------------------------------------------------


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    for k, v in CREDS.items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("GONG_BEARER_TOKEN", raising=False)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))  # the daily quota file
    yield


def test_check_prints_each_bad_organizer_and_exits_1(tmp_path: Path, env: None,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Against a configured Gong (GONG_BASE_URL): ok organizers listed, bad ones with Gong's
    message, fix link and their lines; exit 1; invalid rows named but not checked."""
    src = write_csv(tmp_path / "in.csv", [
        meeting_row(0), meeting_row(1, organizer="raj@seller.example"),
        meeting_row(2, organizer="ghost@unknown.example"), meeting_row(3, invalid=True),
        meeting_row(4, organizer="ghost@unknown.example")])
    settings = SandboxSettings(rate=None, invalid_integration=frozenset({"raj@seller.example"}))
    with SandboxThread(settings) as sb:
        monkeypatch.setenv("GONG_BASE_URL", sb.url)
        res = CliRunner().invoke(main, ["check", str(src), "--rate", "1000"])
        assert sb.state.requests == 1 and sb.state.creates == 0
    assert res.exit_code == 1, res.output
    out = res.stdout
    assert "5 rows read: 4 valid, 1 invalid (bulkmeet validate lists them" in out
    assert "credentials accepted; 3 organizers asked about in 1 call" in out
    assert "ok: ana@seller.example (1 row: line 2)" in out
    assert f"integration not valid: raj@seller.example (1 row: line 3)\n  {MSG_CONSENT}\n" \
        f"  fix: {FIX_URL}\n" in out
    assert f"not a Gong user: ghost@unknown.example (2 rows: lines 4, 6)\n  {MSG_NOT_A_USER}" \
        in out
    assert out.endswith("bulkmeet: 1 organizer ok, 2 with problems\n")


def test_check_sandbox_all_good_exits_0(tmp_path: Path) -> None:
    """--sandbox needs no credentials; every organizer known: exit 0."""
    src = write_csv(tmp_path / "in.csv", [meeting_row(i) for i in range(3)])
    res = CliRunner().invoke(main, ["check", str(src), *SANDBOX])
    assert res.exit_code == 0, res.output
    assert "0 with problems" in res.stdout


@pytest.mark.parametrize(("settings", "message"), [
    (SandboxSettings(rate=None, credentials=("other", "pair")), "Gong answered 401"),
    (SandboxSettings(rate=None, forbidden=True), "Limited release"),
])
def test_check_exits_3_on_refused_credentials(tmp_path: Path, env: None,
                                              monkeypatch: pytest.MonkeyPatch,
                                              settings: SandboxSettings, message: str) -> None:
    """401/403 hold for every organizer: exit 3 with one line naming Gong's answer."""
    src = write_csv(tmp_path / "in.csv", [meeting_row(0)])
    with SandboxThread(settings) as sb:
        monkeypatch.setenv("GONG_BASE_URL", sb.url)
        res = CliRunner().invoke(main, ["check", str(src)])
    assert res.exit_code == 3, res.output
    assert message in res.stderr


def test_check_unreachable_gong_exits_1_saying_so_once(tmp_path: Path, env: None,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing answers: exit 1, the organizers 'not checked', the reason printed once."""
    cfg = tmp_path / "c.yaml"
    cfg.write_text("max_attempts: 2\nbackoff_base: 0\nbackoff_max: 0\nrequest_timeout: 2\n")
    src = write_csv(tmp_path / "in.csv", [meeting_row(0)])
    monkeypatch.setenv("GONG_BASE_URL", "http://127.0.0.1:9")  # discard: nothing listens
    res = CliRunner().invoke(main, ["check", str(src), "--config", str(cfg)])
    assert res.exit_code == 1, res.output
    assert "not checked: ana@seller.example" in res.stdout
    assert res.stdout.count("no answer from http://127.0.0.1:9") == 1
    assert "credentials accepted" not in res.stdout


@pytest.mark.parametrize(("args", "message"), [
    (["check", "missing.csv", "--sandbox"], "input file missing.csv does not exist"),
    (["check", "{src}"], "no credentials"),
    (["check", "{src}", "--sandbox", "--preset", "lotus"], "Invalid value for '--preset'"),
    (["check", "{src}", "--sandbox", "--rate", "0"], "must be greater than 0"),
])
def test_check_usage_and_config_errors_exit_2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              args: list[str], message: str) -> None:
    """Bad flags, a missing input or no credentials: exit 2 before anything is sent."""
    for k in (*CREDS, "GONG_BEARER_TOKEN"):
        monkeypatch.delenv(k, raising=False)
    src = write_csv(tmp_path / "in.csv", [meeting_row(0)])
    res = CliRunner().invoke(main, [a.format(src=src) for a in args])
    assert res.exit_code == 2, res.output
    assert message in res.output


def test_resume_rules_a_cut_off_update_is_not_a_create_in_doubt() -> None:
    """A ledger key whose last request was an update cut off mid-flight still has its meeting:
    even with --resend-uncertain it is never created again."""
    from bulkmeet.ledger import LedgerEntry
    from bulkmeet.models import Row
    from bulkmeet.triage import Decision, decide

    row = Row(2, "k", {"startTime": "x"})
    led = LedgerEntry(meeting_id="77", in_flight=True, in_flight_op="update")
    assert decide(row, "d", None, led, resend_uncertain=True) is Decision.IN_LEDGER
    doubt = LedgerEntry(in_flight=True, in_flight_op="create")
    assert decide(row, "d", None, doubt, resend_uncertain=False) is Decision.IN_FLIGHT
    assert decide(row, "d", None, doubt, resend_uncertain=True) is Decision.SEND


def test_an_answer_that_does_not_say_exists_is_no_verdict() -> None:
    """integration/status entries without `exists` (or with a non-boolean one) leave the
    organizer unchecked: the run's check must not take silence for "not a Gong user"."""
    from bulkmeet.preflight import Organizer, _apply_answer

    batch = [Organizer("a@x.example"), Organizer("b@x.example"), Organizer("c@x.example")]
    _apply_answer(batch, {"users": [{"email": "a@x.example", "valid": True},
                                    {"email": "B@x.example", "exists": "yes"},
                                    {"email": "c@x.example", "exists": False}]})
    assert [o.exists for o in batch] == [None, None, False]
    assert batch[0].problem == "not checked" and batch[2].problem == "not a Gong user"
