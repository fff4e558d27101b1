"""The Python API the CLI is built on: typed summaries, the documented exceptions, async twins,
against the sandbox on a loopback port."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

import bulkmeet
from bulkmeet.sandbox import SandboxSettings, SandboxThread

from .helpers import CREDS, finals, meeting_row, write_csv


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    for k, v in CREDS.items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("GONG_BEARER_TOKEN", raising=False)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    yield


def test_the_public_names_are_pinned() -> None:
    """What `import bulkmeet` offers is a promise: a change to it is a deliberate one."""
    assert sorted(bulkmeet.__all__) == sorted([
        "EXIT_MEANINGS", "AuthError", "BulkmeetError", "Config", "ConfigError", "InputError",
        "JournalError", "QuotaExhausted", "Record", "RunSummary", "Status", "Unreachable",
        "UsageError", "ValidateSummary", "__version__", "check", "check_async", "plan",
        "plan_async", "retry",
        "retry_async", "run", "run_async", "settings", "sync", "sync_async", "undo",
        "undo_async", "validate"])
    for name in bulkmeet.__all__:
        assert hasattr(bulkmeet, name), name


def test_run_against_the_sandbox_returns_a_typed_summary(tmp_path: Path, env: None) -> None:
    """Three valid rows and one invalid: created 3, invalid 1, exit code 1 and its meaning; the
    results file holds one final record per row; a second run sends nothing."""
    src = write_csv(tmp_path / "in.csv", [meeting_row(i) for i in range(3)]
                    + [meeting_row(3, invalid=True)])
    summary = bulkmeet.run(src, sandbox=True, sandbox_rate=0, concurrency=2)
    assert isinstance(summary, bulkmeet.RunSummary)
    assert summary.counts == {"created": 3, "invalid": 1}
    assert (summary.rows_read, summary.requests, summary.exit_code) == (4, 3, 1)
    assert not summary.ok and summary.exit_meaning.startswith("some rows were not created")
    assert summary.results == tmp_path / "in.sandbox.results.jsonl"  # the sandbox's own file
    assert len(finals(summary.results)) == 4
    assert summary.error is None
    summary.raise_for_error()  # nothing stopped it

    again = bulkmeet.run(src, sandbox=True, sandbox_rate=0)
    assert again.requests == 0 and again.skipped == 3


def test_run_async_runs_on_the_callers_loop(tmp_path: Path, env: None) -> None:
    src = write_csv(tmp_path / "in.csv", [meeting_row(i) for i in range(2)])

    async def main() -> bulkmeet.RunSummary:
        return await bulkmeet.run_async(src, out=tmp_path / "r.jsonl", sandbox=True,
                                        sandbox_rate=0)

    summary = asyncio.run(main())
    assert summary.ok and summary.counts == {"created": 2}


def test_what_stops_a_run_before_it_starts_raises(tmp_path: Path, env: None) -> None:
    with pytest.raises(bulkmeet.UsageError, match="does not exist"):
        bulkmeet.run(tmp_path / "missing.csv", sandbox=True)
    with pytest.raises(bulkmeet.UsageError, match="unknown setting.*colour"):
        bulkmeet.run(tmp_path / "missing.csv", colour="blue")
    bad = tmp_path / "bad.yaml"
    bad.write_text("rat: 3\n")
    src = write_csv(tmp_path / "in.csv", [meeting_row(0)])
    with pytest.raises(bulkmeet.ConfigError, match="unknown key 'rat'"):
        bulkmeet.run(src, config=bad, sandbox=True)


def test_a_stop_the_run_could_not_help_is_in_the_summary(tmp_path: Path, env: None,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """Gong refusing the credentials (401) stops the run: the summary carries the AuthError
    and exit code 3, and raise_for_error raises it."""
    src = write_csv(tmp_path / "in.csv", [meeting_row(i) for i in range(3)])
    with SandboxThread(SandboxSettings(rate=None, credentials=("other", "pair"))) as sb:
        summary = bulkmeet.run(src, config=None, base_url=sb.url)
    assert summary.exit_code == 3
    assert isinstance(summary.error, bulkmeet.AuthError)
    with pytest.raises(bulkmeet.AuthError):
        summary.raise_for_error()


def test_validate_lists_the_problems_without_network(tmp_path: Path) -> None:
    src = write_csv(tmp_path / "in.csv", [meeting_row(0), meeting_row(1, invalid=True),
                                          meeting_row(0)])
    found = bulkmeet.validate(src)
    assert not found.ok
    assert found.counts["valid"] == 1 and found.counts["invalid"] == 1
    assert [(line, status) for line, _, status, _ in found.problems] == [
        (3, "invalid"), (4, "duplicate")]


def test_plan_sync_and_undo_from_python(tmp_path: Path, env: None,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """A sheet synced, changed and synced again, then undone: the sandbox ends empty."""
    ledger = tmp_path / "ledger.jsonl"
    src = write_csv(tmp_path / "in.csv", [meeting_row(i) for i in range(3)])
    with SandboxThread(SandboxSettings(rate=None)) as sb:
        monkeypatch.setenv("GONG_BASE_URL", sb.url)
        first = bulkmeet.plan(src, ledger=ledger)
        assert first.pending and len(first.changes) == 3
        done = bulkmeet.sync(src, ledger=ledger, rate=1000)
        assert done.ok and done.counts == {"created": 3}
        rows = [meeting_row(i) for i in range(3)]
        rows[1][2] = "Renamed"
        write_csv(src, rows)
        changed = bulkmeet.sync(src, ledger=ledger, rate=1000)
        assert changed.counts == {"updated": 1}
        assert not bulkmeet.plan(src, ledger=ledger).pending
        undone = bulkmeet.undo(done.results, ledger=ledger, rate=1000)
        assert undone.counts == {"deleted": 3}
        assert sb.state.meetings == {}


def test_plan_and_sync_from_python_against_the_state_store(
        tmp_path: Path, env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """No ledger: the store is the memory; `plan_async` on the caller's loop, `plan` with an
    old ledger from inside a running loop too (a notebook's)."""
    state = f"sqlite:///{tmp_path / 'state.sqlite3'}"
    src = write_csv(tmp_path / "in.csv", [meeting_row(i) for i in range(3)])
    with SandboxThread(SandboxSettings(rate=None)) as sb:
        monkeypatch.setenv("GONG_BASE_URL", sb.url)
        assert len(bulkmeet.plan(src, state=state).changes) == 3
        assert bulkmeet.sync(src, state=state, rate=1000).counts == {"created": 3}

        async def in_a_loop() -> tuple[bool, int]:
            by_store = await bulkmeet.plan_async(src, state=state)
            by_ledger = bulkmeet.plan(src, ledger=tmp_path / "old.jsonl")
            return by_store.pending, len(by_ledger.changes)

        assert asyncio.run(in_a_loop()) == (False, 3)


def test_the_readme_example_runs_as_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    """The README's Python API example, taken from the README and run in a folder holding the
    sample: it prints what its comments say."""
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Python API", 1)[1]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    (tmp_path / "samples").mkdir()
    sample = Path(__file__).resolve().parents[1] / "samples" / "meetings.csv"
    (tmp_path / "samples" / "meetings.csv").write_bytes(sample.read_bytes())
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "README.md", "exec"), {})
    printed = capsys.readouterr().out.splitlines()
    assert printed[0] == "{'invalid': 2, 'created': 4, 'failed': 1}"
    assert printed[1].startswith("1 some rows were not created")
