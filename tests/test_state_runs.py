"""Never twice across processes: `bulkmeet run` processes started at once on the same input and
the same state store (SQLite, or PostgreSQL where a server is given), some killed with SIGKILL
mid-run, then resumed; the company's rate shared by two processes; the --state-must-exist guard.
Real subprocesses against the sandbox on a loopback port."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest

from bulkmeet.sandbox import SandboxSettings, SandboxThread

from .helpers import CREDS, finals, meeting_row, write_csv
from .store_support import store_url_for

pytestmark = pytest.mark.slow


@pytest.fixture(params=["sqlite", "postgres"])
def state(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return store_url_for(request.param, tmp_path)


def _start(tmp_path: Path, url: str, src: Path, out: Path, *args: str) -> subprocess.Popen[bytes]:
    # An access key of this test's own: a PostgreSQL store outlives the test, and a target is
    # the base URL (a port that may come again) plus the key.
    env = {**os.environ, **CREDS, "GONG_BASE_URL": url, "XDG_STATE_HOME": str(tmp_path / "xdg"),
           "GONG_ACCESS_KEY": f"key-{abs(hash(str(tmp_path))):x}"}
    env.pop("GONG_BEARER_TOKEN", None)
    env.pop("GITHUB_STEP_SUMMARY", None)
    # Each process in a folder of its own, as on separate machines.
    cwd = tmp_path / f"p-{uuid.uuid4().hex[:6]}"
    cwd.mkdir()
    return subprocess.Popen([sys.executable, "-m", "bulkmeet", "run", str(src), "--out", str(out),
                             "--quiet", *args], env=env, cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)


def _created_once(sb: SandboxThread) -> Counter[str]:
    return Counter(sb.state.created_by_external_id)


@pytest.mark.parametrize("processes", [2, 4])
def test_runs_at_once_on_one_store_create_each_key_once(tmp_path: Path, state: str,
                                                        processes: int) -> None:
    """N runs of the same input at once, each with its own results file and working folder:
    every key is created exactly once, and each key's creating run records it created while the
    others record it skipped or not sent; a resume afterwards creates nothing more."""
    src = write_csv(tmp_path / "in.csv", [meeting_row(i) for i in range(40)])
    with SandboxThread(SandboxSettings(rate=None, latency=0.02)) as sb:
        outs = [tmp_path / f"r{i}.jsonl" for i in range(processes)]
        procs = [_start(tmp_path, sb.url, src, out, "--state", state, "--rate", "200",
                        "--concurrency", "4") for out in outs]
        for p in procs:
            p.communicate(timeout=120)
        assert sorted(_created_once(sb).values()) == [1] * 40, sb.state.stats()
        created_in = Counter(r["key"] for out in outs for r in finals(out)
                             if r["status"] == "created")
        assert sorted(created_in.values()) == [1] * 40
        for out in outs:
            assert {r["status"] for r in finals(out)} <= {"created", "skipped", "not_sent"}
        again = _start(tmp_path, sb.url, src, tmp_path / "again.jsonl", "--state", state)
        again.communicate(timeout=60)
        assert again.returncode == 0
        assert sb.state.creates == 40


def test_killed_runs_never_create_twice(tmp_path: Path, state: str) -> None:
    """Four runs at once, two killed with SIGKILL mid-run, then a resume once their claims have
    expired: no key is created twice; a key never created is one the resume reports uncertain
    (a killed run's request may have reached Gong)."""
    src = write_csv(tmp_path / "in.csv", [meeting_row(i) for i in range(60)])
    with SandboxThread(SandboxSettings(rate=None, latency=0.15)) as sb:
        args = ["--state", state, "--rate", "20", "--concurrency", "4"]
        cfg = tmp_path / "lease.yaml"
        cfg.write_text("claim_lease: 2\n")
        procs = [_start(tmp_path, sb.url, src, tmp_path / f"r{i}.jsonl", *args, "--config",
                        str(cfg)) for i in range(4)]
        time.sleep(1.0)
        for p in procs[:2]:
            assert p.poll() is None, "the run ended before it could be killed mid-run"
            p.send_signal(signal.SIGKILL)
        for p in procs:
            p.communicate(timeout=120)
        time.sleep(2.5)  # the killed runs' claims expire
        final = tmp_path / "final.jsonl"
        resume = _start(tmp_path, sb.url, src, final, *args, "--config", str(cfg))
        resume.communicate(timeout=120)
        created = _created_once(sb)
    assert max(created.values()) == 1, created
    statuses = {r["key"]: r["status"] for r in finals(final)}
    never = {f"ext-{i}" for i in range(60)} - set(created)
    assert all(statuses[k] == "uncertain" for k in never), (never, statuses)
    assert len(created) + len(never) == 60


def test_two_runs_share_the_companys_rate(tmp_path: Path) -> None:
    """Two runs at once against a sandbox allowing 3 calls in any second, each told --rate 3:
    through the store they take turns, so no call is answered 429 and together they reach at
    least 2.85 calls/s."""
    state = f"sqlite:///{tmp_path / 'state.sqlite3'}"
    a = write_csv(tmp_path / "a.csv", [meeting_row(i, ext=f"a{i}") for i in range(15)])
    b = write_csv(tmp_path / "b.csv", [meeting_row(i, ext=f"b{i}") for i in range(15)])
    with SandboxThread(SandboxSettings(rate=3.0, window="sliding")) as sb:
        procs = [_start(tmp_path, sb.url, src, tmp_path / f"{src.stem}.jsonl", "--state", state,
                        "--rate", "3") for src in (a, b)]
        for p in procs:
            p.communicate(timeout=120)
        # Every call: the creates, and each run's organizer check (integration/status), which
        # takes its slot from the store like a create.
        times = sorted(r.time for r in sb.state.log if r.method == "POST")
        creates = sb.state.creates
    assert sb.state.rate_limited == 0
    assert creates == 30 and 30 < len(times) <= 32
    rate = (len(times) - 1) / (times[-1] - times[0])
    assert rate >= 2.85, rate


def test_state_must_exist_refuses_a_new_store(tmp_path: Path) -> None:
    """A nightly job whose store was lost: nothing is sent, exit 78, one clear line."""
    src = write_csv(tmp_path / "in.csv", [meeting_row(i) for i in range(3)])
    with SandboxThread(SandboxSettings(rate=None)) as sb:
        p = _start(tmp_path, sb.url, src, tmp_path / "r.jsonl", "--state",
                   f"sqlite:///{tmp_path / 'new.sqlite3'}", "--state-must-exist")
        _, err = p.communicate(timeout=60)
        assert sb.state.requests == 0
    assert p.returncode == 78
    assert b"must exist" in err and b"Traceback" not in err


def test_state_import_brings_old_files_in_and_a_run_then_skips_them(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A results file of an earlier version, imported once (twice changes nothing): a run with
    the store and a new results file skips the keys it created, and creates the rest."""
    from click.testing import CliRunner

    from bulkmeet.cli import main

    src = write_csv(tmp_path / "in.csv", [meeting_row(i) for i in range(4)])
    state = f"sqlite:///{tmp_path / 'state.sqlite3'}"
    for k, v in CREDS.items():
        monkeypatch.setenv(k, v)
    with SandboxThread(SandboxSettings(rate=None)) as sb:
        monkeypatch.setenv("GONG_BASE_URL", sb.url)
        first = write_csv(tmp_path / "first.csv", [meeting_row(i) for i in range(2)])
        old = tmp_path / "old.jsonl"
        res = CliRunner().invoke(main, ["run", str(first), "--out", str(old), "--rate", "1000"])
        assert res.exit_code == 0, res.output
        res = CliRunner().invoke(main, ["state", "import", "--results", str(old),
                                        "--state", state])
        assert res.exit_code == 0, res.output
        assert "2 changed" in res.stdout and "2 created" in res.stdout
        res = CliRunner().invoke(main, ["state", "import", "--results", str(old),
                                        "--state", state])
        assert "0 changed" in res.stdout
        res = CliRunner().invoke(main, ["run", str(src), "--out", str(tmp_path / "new.jsonl"),
                                        "--state", state, "--rate", "1000"])
        assert res.exit_code == 0, res.output
        assert sb.state.creates == 4  # 2 before, 2 now: none twice
    statuses = Counter(r["status"] for r in finals(tmp_path / "new.jsonl"))
    assert statuses == {"skipped": 2, "created": 2}


def test_the_store_is_on_by_default_for_gong_and_off_for_local_servers() -> None:
    """Unset, `state` means the default SQLite store for a real Gong host, and none for the
    sandbox or a server on this machine; "off" turns it off; a URL is taken as given."""
    from bulkmeet.config import Config
    from bulkmeet.session import Target, state_url

    gong = Config(base_url="https://us-1.api.gong.io")
    local = Config(base_url="http://127.0.0.1:8080")
    assert state_url(gong, Target()) == "default"
    assert state_url(local, Target()) is None
    assert state_url(gong, Target(sandbox=True)) is None
    assert state_url(gong.replace(state="off"), Target()) is None
    assert state_url(local.replace(state="sqlite:///s.db"), Target()) == "sqlite:///s.db"


def test_organizers_are_checked_once_a_day_before_sending(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """100 rows, 10 of them an organizer Gong does not know: with a state store the run asks
    integration/status once (one call for both organizers), sends the 90 that can pass and
    records the 10 failed without a request. A "yes" is kept for the day (a run of known
    organizers asks nothing); a "no" is asked again (an admin may have added the user);
    --no-check sends a probe create instead."""
    from click.testing import CliRunner

    from bulkmeet.cli import main

    rows = [meeting_row(i, organizer="x@unknown.example" if i % 10 == 0 else
                        "ana@seller.example") for i in range(100)]
    src = write_csv(tmp_path / "in.csv", rows)
    state = f"sqlite:///{tmp_path / 'state.sqlite3'}"
    for k, v in CREDS.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    with SandboxThread(SandboxSettings(rate=None)) as sb:
        monkeypatch.setenv("GONG_BASE_URL", sb.url)

        def calls(path: str) -> int:
            return sum(1 for r in sb.state.log if r.path.endswith(path) and r.status == 200)

        res = CliRunner().invoke(main, ["run", str(src), "--state", state, "--rate", "1000"])
        assert res.exit_code == 1, res.output
        assert calls("/integration/status") == 1
        assert sb.state.creates == 90 and len(sb.state.log) == 91  # no create of x's
        failed = [r for r in finals(tmp_path / "in.results.jsonl") if r["status"] == "failed"]
        assert len(failed) == 10
        assert all("integration/status says this organizer is not a Gong user" in r["errors"][0]
                   for r in failed)
        assert "not a Gong user, by integration/status: 1 organizer (x@unknown.example)" in \
            res.stderr
        # 90 requests at the run's pace: the check is counted apart, not in the rate.
        assert "  90 requests at " in res.stderr and "(and 1 organizer check before)" in res.stderr

        known = write_csv(tmp_path / "known.csv", [meeting_row(i) for i in range(300, 303)])
        before = len(sb.state.log)
        res = CliRunner().invoke(main, ["run", str(known), "--state", state, "--rate", "1000"])
        assert res.exit_code == 0, res.output
        assert calls("/integration/status") == 1  # ana is a user: known for the day
        assert len(sb.state.log) == before + 3

        more = write_csv(tmp_path / "more.csv",
                         [meeting_row(i, organizer="x@unknown.example") for i in range(200, 203)]
                         + [meeting_row(i) for i in range(203, 206)])
        before = len(sb.state.log)
        res = CliRunner().invoke(main, ["run", str(more), "--state", state, "--rate", "1000"])
        assert res.exit_code == 1, res.output
        assert calls("/integration/status") == 2  # x asked again, ana not
        assert len(sb.state.log) == before + 4  # the check and ana's three rows

        before = len(sb.state.log)
        res = CliRunner().invoke(main, ["run", str(more), "--state", state, "--rate", "1000",
                                        "--no-check", "--out", str(tmp_path / "again.jsonl")])
        assert calls("/integration/status") == 2
        statuses = Counter(r["status"] for r in finals(tmp_path / "again.jsonl"))
        assert statuses == {"skipped": 3, "failed": 3}  # ana's done; x's probe answered 404
        assert len(sb.state.log) == before + 1


def test_ctrl_c_during_the_organizer_check_stops_the_run_at_once(tmp_path: Path) -> None:
    """Gong slow to answer integration/status (20 s each): a Ctrl-C one second in cuts the
    check short; the run records its rows not_sent and exits 130 within seconds, nothing
    created."""
    state = f"sqlite:///{tmp_path / 'state.sqlite3'}"
    src = write_csv(tmp_path / "in.csv", [meeting_row(i) for i in range(5)])
    out = tmp_path / "out.jsonl"
    with SandboxThread(SandboxSettings(rate=None, latency=20.0)) as sb:
        p = _start(tmp_path, sb.url, src, out, "--state", state)
        time.sleep(1.5)
        p.send_signal(signal.SIGINT)
        t0 = time.monotonic()
        _, err = p.communicate(timeout=15)
        took = time.monotonic() - t0
        assert sb.state.creates == 0
    assert p.returncode == 130, err.decode()
    assert took < 8, took
    assert b"Traceback" not in err
    assert {r["status"] for r in finals(out)} <= {"not_sent"}


def test_a_row_the_store_knows_created_is_skipped_even_when_its_organizer_is_refused(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A results file lost (a new --out), the store knows three rows created; their organizer
    has since left Gong, and two new rows of theirs came. The check refuses the organizer: the
    three are `skipped` (their meetings exist), not `failed`; the two new ones fail unsent."""
    from click.testing import CliRunner

    from bulkmeet.cli import main

    state = f"sqlite:///{tmp_path / 'state.sqlite3'}"
    for k, v in CREDS.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    old = tmp_path / "old.jsonl"
    old.write_text("".join(
        f'{{"line": {i + 2}, "key": "ext-{i}", "status": "created", "meetingId": "9{i}", '
        f'"attempts": 1, "errors": []}}\n' for i in range(3)), encoding="utf-8")
    src = write_csv(tmp_path / "in.csv",
                    [meeting_row(i, organizer="left@unknown.example") for i in range(5)])
    with SandboxThread(SandboxSettings(rate=None)) as sb:
        monkeypatch.setenv("GONG_BASE_URL", sb.url)
        res = CliRunner().invoke(main, ["state", "import", "--results", str(old),
                                        "--state", state])
        assert res.exit_code == 0, res.output
        res = CliRunner().invoke(main, ["run", str(src), "--state", state, "--rate", "1000",
                                        "--out", str(tmp_path / "new.jsonl")])
        assert sb.state.creates == 0
        # One call: the check, for the two new rows (the three known ones count for nothing).
        assert sb.state.requests == 1
    assert [r["status"] for r in finals(tmp_path / "new.jsonl")] == \
        ["skipped"] * 3 + ["failed"] * 2, res.output


def test_state_must_exist_with_no_store_at_all_refuses(tmp_path: Path) -> None:
    """A server on this machine keeps no store unless --state names one: told the state must
    exist, the run refuses instead of silently sending without one."""
    src = write_csv(tmp_path / "in.csv", [meeting_row(0)])
    with SandboxThread(SandboxSettings(rate=None)) as sb:
        p = _start(tmp_path, sb.url, src, tmp_path / "out.jsonl", "--state-must-exist")
        _, err = p.communicate(timeout=60)
        assert sb.state.requests == 0
    assert p.returncode == 2, err.decode()
    assert b"keeps no state store" in err and b"Traceback" not in err


def test_the_preflight_budget_is_the_stores_count(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Other processes of the company spent 9,995 of today's calls through the store (this
    machine's own count knows none of them): the preflight says 5 are left, not 10,000, and
    the run is held to it (5 sent, the rest deferred, exit 75)."""
    import asyncio

    from click.testing import CliRunner

    from bulkmeet.cli import main
    from bulkmeet.config import Config
    from bulkmeet.quota import quota_for
    from bulkmeet.session import Target, credentials_for, open_state

    state = f"sqlite:///{tmp_path / 'state.sqlite3'}"
    for k, v in CREDS.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    src = write_csv(tmp_path / "in.csv", [meeting_row(i) for i in range(10)])
    with SandboxThread(SandboxSettings(rate=None)) as sb:
        monkeypatch.setenv("GONG_BASE_URL", sb.url)
        cfg = Config(base_url=sb.url, state=state)

        async def spend() -> None:
            store = await open_state(cfg, credentials_for(Target()))
            try:
                await store.spend(quota_for(cfg).day, cfg.daily_budget, 9995)
            finally:
                await store.close()

        asyncio.run(spend())
        res = CliRunner().invoke(main, ["run", str(src), "--state", state, "--rate", "1000",
                                        "--no-check"])
        assert "today's budget: 5 of 10000 calls left, not enough" in res.stderr, res.stderr
        assert res.exit_code == 75, res.output
        assert sb.state.creates == 5
