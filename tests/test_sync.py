"""plan, sync and undo: the sheet as the source of truth, against a sandbox that lives across runs.

Each test starts one sandbox (no rate limit) and runs the commands in-process, pointed at it by
GONG_BASE_URL, so what one "night" leaves in Gong is there for the next.
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from bulkmeet.cli import main
from bulkmeet.config import Config
from bulkmeet.engine import RowEvents
from bulkmeet.ledger import Ledger, LedgerEntry, read_ledger
from bulkmeet.models import Record, Row, Status, payload_digest
from bulkmeet.reconcile import Kind, describe_changes, make_plan, read_plan, run_sync
from bulkmeet.sandbox import SandboxSettings, SandboxThread, start_sandbox

from .helpers import CREDS, finals, last_by_key, write_csv

ANA, BEA = "ana@seller.example", "bea@seller.example"


def row(ext: str, *, day: int = 1, hour: int = 9, title: str | None = None,
        organizer: str = ANA, guests: tuple[str, ...] = ("g1@client.example",)) -> list[str]:
    """One input row with externalId `ext` (so a moved or renamed row keeps its key)."""
    start = f"2026-12-{day:02d}T{hour:02d}:00:00Z"
    end = f"2026-12-{day:02d}T{hour:02d}:30:00Z"
    return [start, end, title or f"Meeting {ext}", organizer, ext, "; ".join(guests)]


@pytest.fixture
def sandbox(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[SandboxThread]:
    with SandboxThread(SandboxSettings(rate=None)) as sb:
        monkeypatch.setenv("GONG_BASE_URL", sb.url)
        for k, v in CREDS.items():
            monkeypatch.setenv(k, v)
        monkeypatch.delenv("GONG_BEARER_TOKEN", raising=False)
        monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))  # the quota file
        yield sb


Invoke = Callable[..., Result]


@pytest.fixture
def invoke(tmp_path: Path) -> Invoke:
    def go(*args: str, input: str | None = None) -> Result:
        argv = list(args)
        if args[0] in ("sync", "undo"):
            argv += ["--rate", "1000"]
        return CliRunner().invoke(main, argv, input=input)

    return go


def methods(sb: SandboxThread) -> Counter[str]:
    """API calls the sandbox answered, by method."""
    return Counter(r.method for r in sb.state.log if r.status is not None)


def by_ext(sb: SandboxThread) -> dict[str, dict[str, Any]]:
    return {m["externalId"]: m for m in sb.state.meetings.values()}


def assert_matches(sb: SandboxThread, rows: list[list[str]]) -> None:
    """The sandbox holds exactly these rows' meetings, with their times, titles, guests."""
    held = by_ext(sb)
    assert set(held) == {r[4] for r in rows}
    for start, end, title, organizer, ext, guests in rows:
        m = held[ext]
        assert datetime.fromisoformat(m["startTime"]) == datetime.fromisoformat(start)
        assert datetime.fromisoformat(m["endTime"]) == datetime.fromisoformat(end)
        assert (m["title"], m["organizerEmail"]) == (title, organizer)
        assert sorted(i["email"] for i in m["invitees"]) == sorted(guests.split("; "))


NIGHTS = [
    [row("a"), row("b"), row("c"), row("d"), row("e")],
    # b moved, c renamed, d gains a guest, e removed, f added; the order changes too
    [row("f", day=3), row("d", guests=("g1@client.example", "g2@client.example")),
     row("c", title="Renamed c"), row("b", day=2, hour=14), row("a")],
    # a renamed, f moved, b removed, g added
    [row("a", title="A again"), row("c", title="Renamed c"),
     row("d", guests=("g1@client.example", "g2@client.example")), row("f", day=4),
     row("g", day=5)],
]


def test_nightly_sheets_end_with_the_last_sheet_each_meeting_created_once(
        sandbox: SandboxThread, invoke: Invoke, tmp_path: Path) -> None:
    """Three nightly sheets synced in turn: Gong ends holding exactly the last sheet; each
    meeting was created once; moves, renames and guest changes were PUTs on the same meeting id,
    and only removed rows were deleted."""
    ledger = tmp_path / "ledger.jsonl"
    first_ids: dict[str, str] = {}
    for n, sheet in enumerate(NIGHTS, start=1):
        src = write_csv(tmp_path / f"night{n}.csv", sheet)
        res = invoke("sync", str(src), "--ledger", str(ledger), "--prune", "--yes")
        assert res.exit_code == 0, res.output
        assert_matches(sandbox, sheet)
        if n == 1:
            first_ids = {ext: m["meetingId"] for ext, m in by_ext(sandbox).items()}
    assert methods(sandbox) == {"POST": 7, "PUT": 5, "DELETE": 2}
    assert set(sandbox.state.created_by_external_id.values()) == {1}
    for ext in "acd":  # changed in place, never re-created
        assert by_ext(sandbox)[ext]["meetingId"] == first_ids[ext]
    night2 = Counter(r["status"] for r in finals(tmp_path / "night2.results.jsonl"))
    assert night2 == {"deleted": 1, "created": 1, "updated": 3}
    res = invoke("plan", str(tmp_path / "night3.csv"), "--ledger", str(ledger), "--prune")
    assert res.exit_code == 0, res.output
    assert "nothing to do" in res.stdout


def test_plan_lists_changes_with_fields_sends_nothing_and_exits_1_until_in_step(
        sandbox: SandboxThread, invoke: Invoke, tmp_path: Path) -> None:
    """plan: exit 1 while there is something to do, 0 when not; an update names its changed
    fields; invalid rows are listed and their meetings neither updated nor pruned; removed rows
    are deleted only with --prune; no request is sent and no ledger file is made."""
    ledger = tmp_path / "ledger.jsonl"
    src = write_csv(tmp_path / "in.csv", [row("a"), row("b"), row("c")])
    res = invoke("plan", str(src), "--ledger", str(ledger))
    assert res.exit_code == 1, res.output
    assert res.stdout.splitlines()[0] == "plan: 3 rows read: 3 to create"
    assert "  create    line 2    a" in res.stdout
    assert not ledger.exists()
    assert sandbox.state.requests == 0

    assert invoke("sync", str(src), "--ledger", str(ledger)).exit_code == 0
    res = invoke("plan", str(src), "--ledger", str(ledger))
    assert (res.exit_code, res.stdout.splitlines()[0]) == (0, "plan: 3 rows read: 3 unchanged")

    bad = row("b")
    bad[1] = "2026-12-01T08:00:00Z"  # ends before it starts
    changed = write_csv(tmp_path / "in.csv", [row("a", title="Kickoff", hour=10), bad])
    before = sandbox.state.requests
    res = invoke("plan", str(changed), "--ledger", str(ledger), "--prune")
    assert res.exit_code == 1, res.output
    out = res.stdout
    assert out.splitlines()[0] == "plan: 2 rows read: 1 to update, 1 to delete, 1 invalid"
    update = next(line for line in out.splitlines() if line.startswith("  update"))
    assert "title: 'Meeting a' -> 'Kickoff'" in update
    assert "startTime: '2026-12-01T09:00:00+00:00' -> '2026-12-01T10:00:00+00:00'" in update
    assert "invitees" not in update
    assert "  invalid   line 3    b" in out and "is not after the start time" in out
    assert "  delete    ledger    c" in out
    assert "  delete    ledger    b" not in out  # an invalid row keeps its meeting
    res = invoke("plan", str(changed), "--ledger", str(ledger))
    assert "1 meeting in the ledger is no longer in the input; --prune deletes it" \
        in res.stdout
    assert sandbox.state.requests == before


def test_a_sync_over_max_deletes_or_unconfirmed_sends_nothing(
        sandbox: SandboxThread, invoke: Invoke, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Deletes beyond --max-deletes stop the sync before any request, creates included; without
    --yes and no terminal it refuses; at a terminal "n" sends nothing and "y" deletes."""
    ledger = tmp_path / "ledger.jsonl"
    src = write_csv(tmp_path / "in.csv", [row(x) for x in "abcde"])
    assert invoke("sync", str(src), "--ledger", str(ledger)).exit_code == 0
    ledger_bytes = ledger.read_bytes()
    before = sandbox.state.requests
    night2 = write_csv(tmp_path / "in2.csv", [row("a"), row("b"), row("new")])

    res = invoke("sync", str(night2), "--ledger", str(ledger), "--prune", "--yes",
                 "--max-deletes", "2")
    assert res.exit_code == 2, res.output
    assert ("bulkmeet: error: this sync would delete 3 meetings, more than --max-deletes 2; "
            "nothing was sent") in res.stderr
    res = invoke("sync", str(night2), "--ledger", str(ledger), "--prune")
    assert res.exit_code == 2, res.output
    assert "confirm with --yes (stdin is not a terminal); nothing was sent" in res.stderr
    monkeypatch.setattr("bulkmeet.cli.sync._interactive", lambda: True)
    res = invoke("sync", str(night2), "--ledger", str(ledger), "--prune", input="n\n")
    assert res.exit_code == 1, res.output
    assert "Delete 3 meetings in Gong?" in res.stderr
    assert sandbox.state.requests == before
    assert ledger.read_bytes() == ledger_bytes

    res = invoke("sync", str(night2), "--ledger", str(ledger), "--prune", input="y\n")
    assert res.exit_code == 0, res.output
    assert set(by_ext(sandbox)) == {"a", "b", "new"}
    assert methods(sandbox)["DELETE"] == 3


def test_a_changed_organizer_replaces_the_meeting(
        sandbox: SandboxThread, invoke: Invoke, tmp_path: Path) -> None:
    """A meeting belongs to its organizer (PUT cannot move it): a new organizer is a delete of
    the old meeting and a create, counted as a delete for the confirmation."""
    ledger = tmp_path / "ledger.jsonl"
    src = write_csv(tmp_path / "in.csv", [row("a"), row("b")])
    assert invoke("sync", str(src), "--ledger", str(ledger)).exit_code == 0
    old_id = by_ext(sandbox)["b"]["meetingId"]
    moved = write_csv(tmp_path / "in.csv", [row("a"), row("b", organizer=BEA)])
    res = invoke("plan", str(moved), "--ledger", str(ledger))
    assert "  replace   line 3    b" in res.stdout
    assert f"organizerEmail: '{ANA}' -> '{BEA}'" in res.stdout
    assert invoke("sync", str(moved), "--ledger", str(ledger)).exit_code == 2  # not confirmed
    res = invoke("sync", str(moved), "--ledger", str(ledger), "--yes")
    assert res.exit_code == 0, res.output
    assert_matches(sandbox, [row("a"), row("b", organizer=BEA)])
    assert old_id not in sandbox.state.meetings
    assert methods(sandbox) == {"POST": 3, "DELETE": 1}
    assert invoke("plan", str(moved), "--ledger", str(ledger)).exit_code == 0


def test_a_replace_whose_delete_fails_creates_nothing(
        sandbox: SandboxThread, invoke: Invoke, tmp_path: Path) -> None:
    """If the old meeting cannot be deleted (here Gong answers 400), the new one is not created:
    one row never ends up with two meetings."""
    ledger = tmp_path / "ledger.jsonl"
    led = Ledger.open(ledger)
    led.write("b", "created", meeting_id="not-a-number", payload_hash="h", organizer=ANA)
    led.close()
    src = write_csv(tmp_path / "in.csv", [row("b", organizer=BEA)])
    res = invoke("sync", str(src), "--ledger", str(ledger), "--yes")
    assert res.exit_code == 1, res.output
    assert methods(sandbox) == {"DELETE": 1}
    assert [(r["status"], r["httpStatus"]) for r in finals(tmp_path / "in.results.jsonl")] == [
        ("failed", 400), ("not_sent", None)]


def test_an_uncertain_create_is_not_sent_again_without_resend_uncertain(
        sandbox: SandboxThread, invoke: Invoke, tmp_path: Path) -> None:
    """A key whose create was cut off (ledger: sending, never created) is reported uncertain
    and not POSTed; --resend-uncertain creates it."""
    ledger = tmp_path / "ledger.jsonl"
    led = Ledger.open(ledger)
    led.write("c", "sending", payload_hash="x")
    led.close()
    src = write_csv(tmp_path / "in.csv", [row("a"), row("c")])
    res = invoke("plan", str(src), "--ledger", str(ledger))
    assert "  uncertain line 3    c: a create for this key was cut off" in res.stdout
    res = invoke("sync", str(src), "--ledger", str(ledger))
    assert res.exit_code == 1, res.output
    assert set(by_ext(sandbox)) == {"a"}
    assert last_by_key(tmp_path / "in.results.jsonl")["c"]["status"] == "uncertain"
    res = invoke("sync", str(src), "--ledger", str(ledger), "--resend-uncertain")
    assert res.exit_code == 0, res.output
    assert set(by_ext(sandbox)) == {"a", "c"}
    assert sandbox.state.creates == 2


@pytest.mark.parametrize("stop_after", [1, 4])
def test_an_interrupted_sync_resumes_without_doing_a_change_twice(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stop_after: int) -> None:
    """Night 2 has 2 deletes, 3 updates and 2 creates. Stopped after 1 change (in the delete
    phase) or 4 (in the second), then planned and synced again: every change was sent exactly
    once and Gong matches the sheet."""
    for k, v in CREDS.items():
        monkeypatch.setenv(k, v)
    night1 = [row(x) for x in "abcdef"]
    night2 = [row("a", title="A2"), row("b", day=2), row("c", hour=12), row("d"), row("g"),
              row("h")]
    ledger, out = str(tmp_path / "ledger.jsonl"), str(tmp_path / "out.jsonl")

    async def scenario() -> None:
        sb = await start_sandbox(SandboxSettings(rate=None))
        cfg = Config(base_url=sb.url, rate=1000.0, rate_ceiling=1000.0, concurrency=1,
                     quota_file=str(tmp_path / "quota.json"))
        src1 = str(write_csv(tmp_path / "n1.csv", night1))
        src2 = str(write_csv(tmp_path / "n2.csv", night2))
        try:
            await run_sync(cfg, read_plan(cfg, src1, ledger), out=out, ledger_path=ledger)
            done_before = sb.state.log.copy()
            plan = read_plan(cfg, src2, ledger, prune=True)
            assert plan.counts() == {Kind.DELETE: 2, Kind.UPDATE: 3, Kind.CREATE: 2,
                                     Kind.UNCHANGED: 1}
            stop = asyncio.Event()
            landed: list[str] = []

            class Spy(RowEvents):
                """Set the stop as the K-th change is recorded."""

                def final(self, rec: Record, row: Row | None,
                          payload: dict[str, Any] | None) -> None:
                    if rec.status in (Status.CREATED, Status.UPDATED, Status.DELETED):
                        landed.append(rec.key)
                        if len(landed) == stop_after:
                            stop.set()

            stats = await run_sync(cfg, plan, out=out, ledger_path=ledger, stop=stop,
                                   listeners=[Spy()])
            assert stats.interrupted and len(landed) == stop_after
            assert stats.counts["not_sent"] == 7 - stop_after
            rest = read_plan(cfg, src2, ledger, prune=True)
            assert sum(rest.count(k) for k in (Kind.DELETE, Kind.UPDATE, Kind.CREATE)) == \
                7 - stop_after
            await run_sync(cfg, rest, out=out, ledger_path=ledger)
            sent = [(r.method, r.path) for r in sb.state.log if r not in done_before]
            assert Counter(m for m, _ in sent) == {"DELETE": 2, "PUT": 3, "POST": 2}
            assert len(set(sent) - {("POST", "/v2/meetings")}) == 5  # no PUT or DELETE twice
            assert not read_plan(cfg, src2, ledger, prune=True).pending
            held = {m["externalId"]: m["title"] for m in sb.state.meetings.values()}
            assert held == {"a": "A2", "b": "Meeting b", "c": "Meeting c", "d": "Meeting d",
                            "g": "Meeting g", "h": "Meeting h"}
        finally:
            await sb.close()

    asyncio.run(scenario())


def test_undo_leaves_gong_as_it_was_before_the_run(
        sandbox: SandboxThread, invoke: Invoke, tmp_path: Path) -> None:
    """Meetings that existed before a run survive its undo; what the run created is deleted
    (one already gone counts as deleted); the ledger then plans them as creates again; a second
    undo sends nothing."""
    earlier = write_csv(tmp_path / "earlier.csv", [row("old1"), row("old2")])
    assert invoke("sync", str(earlier), "--ledger", str(tmp_path / "l0.jsonl")).exit_code == 0
    before = copy.deepcopy(sandbox.state.meetings)
    ledger = tmp_path / "ledger.jsonl"
    src = write_csv(tmp_path / "in.csv", [row(f"n{i}") for i in range(5)])
    res = invoke("run", str(src), "--ledger", str(ledger), "--rate", "1000")
    assert res.exit_code == 0, res.output
    results = tmp_path / "in.results.jsonl"
    gone = by_ext(sandbox)["n3"]["meetingId"]
    del sandbox.state.meetings[gone]  # deleted by hand meanwhile (the sandbox is idle)

    res = invoke("undo", str(results), "--ledger", str(ledger))
    assert res.exit_code == 0, res.output
    assert "undo: 5 meetings to delete" in res.stderr
    assert sandbox.state.meetings == before
    undone = last_by_key(tmp_path / "in.results.undo.jsonl")
    assert {k: r["status"] for k, r in undone.items()} == {f"n{i}": "deleted" for i in range(5)}
    assert undone["n3"]["httpStatus"] == 404
    entries, _ = read_ledger(ledger)
    assert all(e.deleted for e in entries.values())
    res = invoke("plan", str(src), "--ledger", str(ledger))
    assert res.stdout.splitlines()[0] == "plan: 5 rows read: 5 to create"

    requests = sandbox.state.requests
    res = invoke("undo", str(results), "--ledger", str(ledger))
    assert res.exit_code == 0, res.output
    assert "undo: 0 meetings to delete (5 deleted by an earlier undo)" in res.stderr
    assert sandbox.state.requests == requests


def test_undo_of_many_meetings_is_a_dry_run_without_yes(
        sandbox: SandboxThread, invoke: Invoke, tmp_path: Path) -> None:
    """21 meetings to undo: the plan is printed, nothing is deleted, exit 1; --yes deletes."""
    src = write_csv(tmp_path / "in.csv", [row(f"n{i}", day=1 + i % 28) for i in range(21)])
    assert invoke("run", str(src), "--rate", "1000").exit_code == 0
    results = str(tmp_path / "in.results.jsonl")
    res = invoke("undo", results)
    assert res.exit_code == 1, res.output
    assert res.stdout.splitlines()[0] == "undo: 21 meetings to delete"
    assert len(res.stdout.splitlines()) == 22
    assert "dry run, nothing was deleted; --yes deletes these 21 meetings" in res.stderr
    assert len(sandbox.state.meetings) == 21
    res = invoke("undo", results, "--yes")
    assert res.exit_code == 0, res.output
    assert sandbox.state.meetings == {}


# -- the planner alone ------------------------------------------------------------------------


def _valid(line: int, key: str, **payload: Any) -> Row:
    body = {"startTime": "2026-12-01T09:00:00+00:00", "endTime": "2026-12-01T09:30:00+00:00",
            "invitees": [], "organizerEmail": ANA, "externalId": key, **payload}
    return Row(line, key, body)


def _entry(row: Row) -> LedgerEntry:
    assert row.payload is not None
    return LedgerEntry(meeting_id="1" + row.key.encode().hex(), organizer=ANA,
                       payload_hash=payload_digest(row.payload), payload=row.payload)


def test_an_invalid_row_without_a_readable_key_holds_every_prune() -> None:
    """An invalid row whose key is only a hash of its cells could be any ledger meeting: with
    --prune nothing is deleted, each delete is `held`; with a readable key only that one is
    kept."""
    a, b = _valid(2, "a"), _valid(3, "b")
    entries = {"a": _entry(a), "b": _entry(b), "c": _entry(_valid(4, "c"))}
    blind = Row(3, "r:0123abcd", None, ("line 3: bad",))
    plan = make_plan([a, blind], entries, prune=True)
    assert [(c.kind, c.key) for c in plan.changes] == [  # unchanged "a" is counted, not kept
        (Kind.INVALID, "r:0123abcd"), (Kind.HELD, "b"), (Kind.HELD, "c")]
    assert plan.count(Kind.UNCHANGED) == 1
    assert not plan.pending
    plan = make_plan([a, Row(3, "b", None, ("line 3: bad",))], entries, prune=True)
    assert [(c.kind, c.key) for c in plan.changes] == [(Kind.INVALID, "b"),
                                                       (Kind.DELETE, "c")]


def test_rows_without_external_id_are_warned_about() -> None:
    """A content-keyed row cannot be updated in place once moved: the plan says so."""
    body = {"startTime": "2026-12-01T09:00:00+00:00", "endTime": "2026-12-01T09:30:00+00:00",
            "invitees": [], "organizerEmail": ANA}
    plan = make_plan([Row(2, "h:00", body), _valid(3, "a")], {})
    assert len(plan.warnings) == 1
    assert plan.warnings[0].startswith("1 row has no externalId and is known by its content")
    assert make_plan([_valid(3, "a")], {}).warnings == []


def test_describe_changes_names_each_field_and_invitee() -> None:
    """Scalar fields show old -> new; invitees show who was added and removed."""
    old = {"title": "A", "invitees": [{"email": "x@e.example"}, {"email": "y@e.example"}]}
    new = {"title": "B", "invitees": [{"email": "Y@e.example"}, {"email": "z@e.example"}]}
    assert describe_changes(old, new) == ("title: 'A' -> 'B'",
                                          "invitees: +z@e.example, -x@e.example")
    assert describe_changes(old, old) == ()


def test_the_ledger_keeps_the_last_payload_and_read_ledger_writes_nothing(
        tmp_path: Path) -> None:
    """`payload` given to write() comes back on the entry after a reopen; read_ledger of a
    missing file gives no entries and makes no file."""
    path = tmp_path / "l.jsonl"
    assert read_ledger(path) == ({}, [])
    assert not path.exists()
    led = Ledger.open(path)
    led.write("k", "created", meeting_id="9", payload_hash="h", payload={"title": "T"})
    led.write("k", "sending")
    led.close()
    entries, _ = read_ledger(path)
    assert entries["k"].payload == {"title": "T"} and entries["k"].in_flight


def test_a_meeting_deleted_by_hand_is_created_again_by_the_next_sync(
        sandbox: SandboxThread, invoke: Invoke, tmp_path: Path) -> None:
    """A meeting deleted in Gong by hand, its row then changed: the sync's update is answered
    404, so the row is created again (one POST more, recorded created with a note), the ledger
    follows the new meeting, and the sync after that has nothing to do."""
    ledger = str(tmp_path / "ledger.jsonl")
    src = write_csv(tmp_path / "in.csv", [row("a"), row("b"), row("c")])
    assert invoke("sync", str(src), "--ledger", ledger).exit_code == 0
    gone = by_ext(sandbox)["b"]
    del sandbox.state.meetings[gone["meetingId"]]  # deleted in Gong by hand
    write_csv(src, [row("a"), row("b", title="Moved to Thursday"), row("c")])
    res = invoke("sync", str(src), "--ledger", ledger)
    assert res.exit_code == 0, res.output
    last = last_by_key(tmp_path / "in.results.jsonl")["b"]
    assert last["status"] == "created" and "created again" in last["errors"][0]
    assert by_ext(sandbox)["b"]["title"] == "Moved to Thursday"
    assert methods(sandbox) == {"POST": 4, "PUT": 1}
    res = invoke("plan", str(src), "--ledger", ledger)
    assert res.exit_code == 0, res.output  # nothing to do


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path,
              monkeypatch: pytest.MonkeyPatch) -> str:
    from .store_support import store_url_for

    url = store_url_for(request.param, tmp_path)
    # A key of this test's own: a PostgreSQL store outlives the test (the target is the base
    # URL, whose port may come again, plus the key).
    monkeypatch.setenv("GONG_ACCESS_KEY", f"key-{abs(hash(str(tmp_path))):x}")
    return url


def store_keys(sb: SandboxThread, url: str) -> dict[str, Any]:
    """key -> (state, meeting id, payload digest, the history's events) in the store."""
    from bulkmeet.session import Target, credentials_for, open_state

    async def read() -> dict[str, Any]:
        store = await open_state(Config(base_url=sb.url, state=url), credentials_for(Target()))
        try:
            out: dict[str, Any] = {}
            async for rec in store.iter_states():
                history = [(h["event"], h["to_state"]) for h in await store.history(rec.key)]
                out[rec.key] = (rec.state.value, rec.meeting_id, rec.payload_digest, history)
            return out
        finally:
            await store.close()

    return asyncio.run(read())


def test_sync_and_undo_keep_the_state_store_in_step(
        sandbox: SandboxThread, invoke: Invoke, tmp_path: Path, store_url: str) -> None:
    """Updates and deletes are claimed and settled in the store like creates: after a sync
    the store holds each key's new payload digest, a meeting found gone is recorded deleted
    then created anew, and an undo records every deletion, so a second undo sends nothing."""
    ledger = str(tmp_path / "ledger.jsonl")
    src = write_csv(tmp_path / "in.csv", [row("a"), row("b"), row("c")])
    res = invoke("sync", str(src), "--ledger", ledger, "--state", store_url)
    assert res.exit_code == 0, res.output
    first = store_keys(sandbox, store_url)
    assert {k: v[0] for k, v in first.items()} == {"a": "created", "b": "created",
                                                   "c": "created"}
    gone = by_ext(sandbox)["c"]["meetingId"]
    del sandbox.state.meetings[gone]  # deleted in Gong by hand
    changed = [row("a"), row("b", title="Moved"), row("c", title="Back again")]
    write_csv(src, changed)
    res = invoke("sync", str(src), "--ledger", ledger, "--state", store_url)
    assert res.exit_code == 0, res.output
    after = store_keys(sandbox, store_url)
    assert after["a"] == first["a"]  # unchanged: not touched
    assert after["b"][0] == "updated" and after["b"][1] == first["b"][1]
    assert after["b"][2] != first["b"][2]  # the new payload's digest
    new_c = by_ext(sandbox)["c"]["meetingId"]
    assert new_c != gone and after["c"][:2] == ("created", new_c)
    assert [e for e in after["c"][3] if e[0] == "settle"] == [
        ("settle", "created"), ("settle", "deleted"), ("settle", "created")]
    assert methods(sandbox) == {"POST": 4, "PUT": 2}

    res = invoke("undo", str(tmp_path / "in.results.jsonl"), "--yes", "--state", store_url)
    assert res.exit_code == 0, res.output
    assert sandbox.state.meetings == {}
    assert {k: v[0] for k, v in store_keys(sandbox, store_url).items()} == {
        "a": "deleted", "b": "deleted", "c": "deleted"}
    deletes = methods(sandbox)["DELETE"]
    res = invoke("undo", str(tmp_path / "in.results.jsonl"), "--yes", "--state", store_url,
                 "--out", str(tmp_path / "again.undo.jsonl"))
    assert res.exit_code == 0, res.output
    assert methods(sandbox)["DELETE"] == deletes  # nothing sent: the store knows them gone
    assert {r["status"] for r in finals(tmp_path / "again.undo.jsonl")} == {"skipped"}


def test_plan_and_sync_compare_with_the_state_store_without_a_ledger(
        sandbox: SandboxThread, invoke: Invoke, tmp_path: Path, store_url: str) -> None:
    """With no ledger, plan and sync compare the input with the state store: nights of
    changes (an update, a prune, an organizer moved: delete then create, a meeting deleted by
    hand) leave Gong holding exactly the last sheet, each change made once, and the plan after
    each sync has nothing to do."""
    src = tmp_path / "in.csv"
    state = ("--state", store_url)
    nights = [
        [row("a"), row("b"), row("c")],
        [row("a", title="Kickoff"), row("b"), row("c")],  # a updated
        [row("a", title="Kickoff"), row("b", organizer=BEA)],  # b moved to Bea, c pruned
    ]
    expected = [{"POST": 3}, {"POST": 3, "PUT": 1}, {"POST": 4, "PUT": 1, "DELETE": 2}]
    for sheet, calls in zip(nights, expected, strict=True):
        write_csv(src, sheet)
        res = invoke("plan", str(src), *state, "--prune")
        assert res.exit_code == 1, res.output  # something to do
        res = invoke("sync", str(src), *state, "--prune", "--yes")
        assert res.exit_code == 0, res.output
        assert methods(sandbox) == calls
        assert_matches(sandbox, sheet)
        res = invoke("plan", str(src), *state, "--prune")
        assert res.exit_code == 0, res.output
        assert "as far as the state store knows" in res.stdout
    # A meeting deleted in Gong by hand, its row then changed: created again, and then clean.
    gone = by_ext(sandbox)["a"]["meetingId"]
    del sandbox.state.meetings[gone]
    last = [row("a", title="Kickoff, moved"), row("b", organizer=BEA)]
    write_csv(src, last)
    res = invoke("sync", str(src), *state)
    assert res.exit_code == 0, res.output
    assert_matches(sandbox, last)
    res = invoke("plan", str(src), *state)
    assert res.exit_code == 0 and "Gong matches the input" in res.stdout, res.output


def test_plan_without_a_store_or_ledger_says_what_to_give(
        sandbox: SandboxThread, invoke: Invoke, tmp_path: Path) -> None:
    """A server on this machine keeps no store unless told: plan and sync say so, send
    nothing, exit 2; an empty store with --state-must-exist stops the sync (exit 78)."""
    src = write_csv(tmp_path / "in.csv", [row("a")])
    for command in ("plan", "sync"):
        res = invoke(command, str(src))
        assert res.exit_code == 2, res.output
        assert "give --state URL" in res.output and "Traceback" not in res.output
    res = invoke("sync", str(src), "--state", f"sqlite:///{tmp_path / 's.sqlite3'}",
                 "--state-must-exist")
    assert res.exit_code == 78, res.output
    assert sandbox.state.requests == 0


def test_a_ledger_still_works_and_says_it_is_deprecated(
        sandbox: SandboxThread, invoke: Invoke, tmp_path: Path) -> None:
    src = write_csv(tmp_path / "in.csv", [row("a")])
    ledger = str(tmp_path / "ledger.jsonl")
    res = invoke("sync", str(src), "--ledger", ledger)
    assert res.exit_code == 0, res.output
    assert res.stderr.count("--ledger is deprecated") == 1
    assert f"bulkmeet state import --ledger {ledger}" in res.stderr
    assert "1 unchanged" in invoke("plan", str(src), "--ledger", ledger).stdout


def test_retry_then_the_original_run_again_leaves_nothing_orphaned(
        sandbox: SandboxThread, invoke: Invoke, tmp_path: Path) -> None:
    """Two rows invalid in the sheet, fixed through `retry --input`, then the original run again
    (a cron that did not know): its `invalid` records do not hide the meetings made by the
    retry. --errors-out lists no row whose meeting exists, and `undo` deletes all four."""
    bad_c, bad_d = row("c"), row("d")
    bad_c[1] = bad_d[1] = "2026-12-01T08:00:00Z"  # ends before it starts
    src = write_csv(tmp_path / "in.csv", [row("a"), row("b"), bad_c, bad_d])
    out = str(tmp_path / "in.results.jsonl")
    assert invoke("run", str(src), "--rate", "1000").exit_code == 1
    fixed = write_csv(tmp_path / "fixed.csv", [row("c"), row("d")])
    res = invoke("retry", out, "--input", str(fixed), "--rate", "1000")
    assert res.exit_code == 0, res.output
    assert len(sandbox.state.meetings) == 4
    res = invoke("run", str(src), "--rate", "1000", "--errors-out",
                 str(tmp_path / "to-fix.csv"))
    assert res.exit_code == 1, res.output  # c and d are invalid in this sheet
    assert sandbox.state.creates == 4  # nothing sent twice
    assert not (tmp_path / "to-fix.csv").exists()  # their meetings exist: nothing to fix
    res = invoke("undo", out, "--yes")
    assert res.exit_code == 0, res.output
    assert sandbox.state.meetings == {}


@pytest.mark.parametrize("prune", [False, True])
def test_the_store_index_plans_as_the_entries_do(prune: bool) -> None:
    """make_plan over the on-disk index of the store's keys gives the plan it gives over the
    same entries in memory: every kind, deletes in the same order, the same counts."""
    from bulkmeet.reconcile.known import KnownIndex

    rows = [_valid(i + 2, k) for i, k in enumerate("abcdefgh")]
    entries = {"a": _entry(rows[0]),  # unchanged
               "b": _entry(_valid(9, "b", title="Old")),  # another payload: update
               "c": dataclasses.replace(_entry(rows[2]), organizer=BEA),  # replace
               "d": LedgerEntry(in_flight=True, in_flight_op="create"),  # uncertain
               "e": LedgerEntry(meeting_id="5", deleted=True),  # deleted: create
               "x": _entry(_valid(20, "x")), "y": _entry(_valid(21, "y")),  # not in the input
               "z": LedgerEntry(in_flight=True, in_flight_op="create")}
    rows.append(Row(30, "a", None, ("line 30: bad",)))  # an invalid row of a known key
    rows.append(rows[5])  # a duplicate
    memory = make_plan(rows, entries, prune=prune)
    index = KnownIndex.of_entries(entries)
    try:
        disk = make_plan(rows, index, prune=prune)
    finally:
        index.close()
    assert disk.changes == memory.changes
    assert (disk.counts(), disk.absent, disk.unchanged) == \
           (memory.counts(), memory.absent, memory.unchanged)
    kinds = [(c.kind.value, c.key) for c in memory.changes]
    assert kinds[:8] == [("update", "b"), ("replace", "c"), ("uncertain", "d"), ("create", "e"),
                         ("create", "f"), ("create", "g"), ("create", "h"), ("invalid", "a")]
    assert kinds[8:] == [("duplicate", "f")] + (
        [("delete", "x"), ("delete", "y"), ("uncertain", "z")] if prune else [])
    assert memory.unchanged == 1 and memory.absent == (0 if prune else 2)



def test_undo_of_an_old_meeting_does_not_make_the_store_forget_the_new_one(
        sandbox: SandboxThread, invoke: Invoke, tmp_path: Path, store_url: str) -> None:
    """A run made meeting X for key b; X was deleted by hand and a later sync made Y for b. An
    undo of the first run's results deletes X (gone: 404): the store must go on holding Y, or
    the next run would create b a third time."""
    state = ("--state", store_url)
    src = write_csv(tmp_path / "in.csv", [row("a"), row("b")])
    first = str(tmp_path / "first.jsonl")
    assert invoke("run", str(src), "--out", first, "--rate", "1000", *state).exit_code == 0
    old = by_ext(sandbox)["b"]["meetingId"]
    del sandbox.state.meetings[old]
    write_csv(src, [row("a"), row("b", title="Again")])
    res = invoke("sync", str(src), "--out", str(tmp_path / "sync.jsonl"), *state)
    assert res.exit_code == 0, res.output
    new = by_ext(sandbox)["b"]["meetingId"]
    assert new != old
    res = invoke("undo", first, "--yes", *state)
    assert res.exit_code == 0, res.output
    assert set(by_ext(sandbox)) == {"b"} and by_ext(sandbox)["b"]["meetingId"] == new
    assert store_keys(sandbox, store_url)["b"][:2] == ("created", new)
    creates = sandbox.state.creates
    res = invoke("run", str(src), "--out", str(tmp_path / "later.jsonl"), "--rate", "1000",
                 *state)
    assert res.exit_code == 0, res.output
    assert sandbox.state.creates == creates + 1  # a (undone) again; b not a third time


def test_an_undo_never_erases_the_doubt_of_a_create_cut_off_since(
        sandbox: SandboxThread, invoke: Invoke, tmp_path: Path, store_url: str) -> None:
    """Key a: created (M1), undone, then a later run's create of it was killed mid-request (its
    lease ran out: uncertain; Gong may hold a new meeting). An undo of the first results file
    again (into another --out) deletes M1, which is gone: that says nothing of the doubt, so the
    next run still records a `uncertain` and creates nothing."""
    from bulkmeet.session import Target, credentials_for, open_state

    state = ("--state", store_url)
    src = write_csv(tmp_path / "in.csv", [row("a")])
    first = str(tmp_path / "first.jsonl")
    assert invoke("run", str(src), "--out", first, "--rate", "1000", *state).exit_code == 0
    assert invoke("undo", first, "--yes", *state).exit_code == 0

    async def killed() -> None:
        store = await open_state(Config(base_url=sandbox.url, state=store_url),
                                 credentials_for(Target()))
        try:
            await store.claim("a", owner="a-killed-run", op="create", payload_digest="d",
                              lease=0.05, resend_uncertain=False)
        finally:
            await store.close()

    asyncio.run(killed())
    time.sleep(0.2)  # its lease runs out
    assert store_keys(sandbox, store_url)["a"][0] == "uncertain"
    res = invoke("undo", first, "--yes", *state, "--out", str(tmp_path / "again.undo.jsonl"))
    assert res.exit_code == 0, res.output
    assert store_keys(sandbox, store_url)["a"][0] == "uncertain"
    creates = sandbox.state.creates
    invoke("run", str(src), "--out", str(tmp_path / "third.jsonl"), "--rate", "1000", *state)
    assert [r["status"] for r in finals(tmp_path / "third.jsonl")] == ["uncertain"]
    assert sandbox.state.creates == creates


def test_plan_agrees_with_run_on_a_row_gong_refused(
        sandbox: SandboxThread, invoke: Invoke, tmp_path: Path, store_url: str) -> None:
    """A row Gong refused (404: no such user) is not sent again unchanged by run or sync; plan
    says so too (`refused before`, nothing to do) instead of planning a create forever."""
    state = ("--state", store_url)
    src = write_csv(tmp_path / "in.csv", [row("a"), row("b", organizer="ghost@unknown.example")])
    res = invoke("run", str(src), "--rate", "1000", "--no-check", *state)  # b's create: 404
    assert res.exit_code == 1, res.output
    res = invoke("plan", str(src), *state)
    assert res.exit_code == 0, res.output
    assert res.stdout.splitlines()[0] == "plan: 2 rows read: 1 unchanged, 1 refused before"
    assert "  refused   line 3    b: Gong refused this very payload before" in res.stdout
    calls = sandbox.state.requests
    res = invoke("sync", str(src), *state)
    assert res.exit_code == 1, res.output
    assert sandbox.state.requests == calls  # sync sends nothing either


def test_a_refusal_counts_in_a_plan_only_where_a_claim_would_check_it() -> None:
    """The store's refused digest is what a create of a refused key, or an update of a meeting,
    is checked against; a key deleted (or released) since is sent again whatever was refused
    before. The plan reads it the same way, so it never says `refused before` where run would
    create."""
    from bulkmeet.reconcile.known import entry_of
    from bulkmeet.store import KeyRecord, Op, State

    row_ = _valid(2, "k")
    assert row_.payload is not None
    digest = payload_digest(row_.payload)

    def record(state: State, meeting: str | None) -> KeyRecord:
        return KeyRecord("k", state, meeting, ANA, None, "other", Op.UPDATE, None, None, digest,
                         404, (), 0.0)

    refused = make_plan([row_], {"k": entry_of(record(State.REFUSED, None))})
    assert [c.kind for c in refused.changes] == [Kind.REFUSED]
    updated = make_plan([row_], {"k": entry_of(record(State.UPDATED, "m1"))})
    assert [c.kind for c in updated.changes] == [Kind.REFUSED]
    for state in (State.DELETED, State.NOT_CREATED):
        again = make_plan([row_], {"k": entry_of(record(state, "m1"))})
        assert [c.kind for c in again.changes] == [Kind.CREATE], state
