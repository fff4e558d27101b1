"""The CLI in-process: exact exit codes and messages, retry and the errors file."""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import click
import orjson
import pytest
from click.testing import CliRunner

from bulkmeet.cli import main
from bulkmeet.sandbox import SandboxSettings, SandboxThread

from .helpers import CREDS, HEADER, SANDBOX, finals, last_by_key, meeting_row, write_csv


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for k, v in CREDS.items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("GONG_BEARER_TOKEN", raising=False)
    yield


def _sandbox_env(monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    monkeypatch.setenv("GONG_BASE_URL", url)


def test_run_sandbox_on_the_sample_creates_valid_rows_and_exits_1_for_the_invalid(
        runner: CliRunner, tmp_path: Path) -> None:
    """The README's first command: samples/meetings.csv against --sandbox; the two invalid rows
    and the unknown organizer make the exit code 1, the rest is created."""
    sample = Path(__file__).resolve().parents[1] / "samples" / "meetings.csv"
    out = tmp_path / "r.jsonl"
    res = runner.invoke(main, ["run", str(sample), *SANDBOX, "--rate", "1000",
                               "--out", str(out)])
    assert res.exit_code == 1, res.output
    counts = Counter(r["status"] for r in finals(out))
    assert counts == {"created": 4, "invalid": 2, "failed": 1}
    assert "4 created, 2 invalid, 1 failed" in res.stderr
    assert f"results: {out}" in res.stderr


def test_all_created_exits_0(runner: CliRunner, tmp_path: Path) -> None:
    """Every row created: exit 0."""
    src = write_csv(tmp_path / "in.csv", [meeting_row(i) for i in range(3)])
    res = runner.invoke(main, ["run", str(src), *SANDBOX, "--rate", "1000"])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "in.sandbox.results.jsonl").exists()  # a sandbox run's own file


@pytest.mark.parametrize(("args", "message"), [
    (["run", "missing.csv", "--sandbox"], "input file missing.csv does not exist"),
    (["run", "{src}", "--sandbox", "--rate", "fast"], "'fast' is not a number or 'auto'"),
    (["run", "{src}", "--sandbox", "--config", "{cfg}"], "unknown key 'rat'"),
    (["run", "{src}", "--sandbox", "--format", "xml"], "Invalid value for '--format'"),
    (["run", "{txt}", "--sandbox"], "cannot tell the format from the extension"),
])
def test_usage_config_and_input_errors_exit_2(runner: CliRunner, tmp_path: Path,
                                               args: list[str], message: str) -> None:
    """Bad flags, config keys, formats and files: exit 2 with one clear line."""
    src = write_csv(tmp_path / "in.csv", [meeting_row(0)])
    cfg = tmp_path / "c.yaml"
    cfg.write_text("rat: 3\n")
    txt = tmp_path / "in.data"
    txt.write_text("x")
    argv = [a.format(src=src, cfg=cfg, txt=txt) for a in args]
    res = runner.invoke(main, argv)
    assert res.exit_code == 2, res.output
    assert message in res.output


def test_no_credentials_exits_2_naming_the_variables(runner: CliRunner, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Without credentials (and without --sandbox) the run refuses, naming the variables."""
    for k in (*CREDS, "GONG_BEARER_TOKEN"):
        monkeypatch.delenv(k, raising=False)
    src = write_csv(tmp_path / "in.csv", [meeting_row(0)])
    res = runner.invoke(main, ["run", str(src)])
    assert res.exit_code == 2
    assert "GONG_ACCESS_KEY and GONG_ACCESS_KEY_SECRET, or GONG_BEARER_TOKEN" in res.stderr


def test_401_exits_3(runner: CliRunner, tmp_path: Path, env: None,
                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Refused credentials: exit 3, the reason printed, the rest not_sent."""
    src = write_csv(tmp_path / "in.csv", [meeting_row(i) for i in range(5)])
    with SandboxThread(SandboxSettings(rate=None, credentials=("a", "b"))) as sb:
        _sandbox_env(monkeypatch, sb.url)
        res = runner.invoke(main, ["run", str(src), "--rate", "1000", "--concurrency", "1"])
    assert res.exit_code == 3, res.output
    assert "Gong answered 401" in res.stderr
    assert Counter(r["status"] for r in finals(tmp_path / "in.results.jsonl")) == {
        "failed": 1, "not_sent": 4}


def test_403_limited_release_exits_3(runner: CliRunner, tmp_path: Path, env: None,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """The 'Limited release' 403 holds for every row: exit 3 with Gong's message."""
    src = write_csv(tmp_path / "in.csv", [meeting_row(i) for i in range(3)])
    with SandboxThread(SandboxSettings(rate=None, forbidden=True)) as sb:
        _sandbox_env(monkeypatch, sb.url)
        res = runner.invoke(main, ["run", str(src), "--rate", "1000", "--concurrency", "1"])
        assert sb.state.requests == 1
    assert res.exit_code == 3
    assert "Limited release" in res.stderr


def test_quota_spent_exits_75(runner: CliRunner, tmp_path: Path, env: None,
                              monkeypatch: pytest.MonkeyPatch) -> None:
    """A daily budget smaller than the input: the rest deferred, exit 75."""
    src = write_csv(tmp_path / "in.csv", [meeting_row(i) for i in range(4)])
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"daily_budget: 2\nquota_file: {tmp_path / 'q.json'}\nconcurrency: 1\n")
    with SandboxThread(SandboxSettings(rate=None)) as sb:
        _sandbox_env(monkeypatch, sb.url)
        res = runner.invoke(main, ["run", str(src), "--rate", "1000", "--config", str(cfg)])
    assert res.exit_code == 75, res.output
    assert "daily budget of 2 calls is spent" in res.stderr


def test_plain_http_base_url_is_refused_unless_loopback_or_insecure(
        runner: CliRunner, tmp_path: Path, env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """Credentials never travel over plain http to another host (nothing is sent: the check
    comes before the first request)."""
    src = write_csv(tmp_path / "in.csv", [meeting_row(0)])
    monkeypatch.setenv("GONG_BASE_URL", "http://gong.example.com")
    res = runner.invoke(main, ["run", str(src)])
    assert res.exit_code == 2
    assert "not https" in res.stderr


def test_retry_resends_only_server_failures_from_recorded_payloads(
        runner: CliRunner, tmp_path: Path, env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """Rows that failed on 500s are sent again by `retry RESULTS` from the payloads recorded;
    rows that got 404 (cannot pass) and rows created are not."""
    rows = [meeting_row(i) for i in range(4)] + [meeting_row(9, organizer="x@unknown.example")]
    src = write_csv(tmp_path / "in.csv", rows)
    out = tmp_path / "r.jsonl"
    with SandboxThread(SandboxSettings(rate=None, fail_rate=1.0)) as sb:
        _sandbox_env(monkeypatch, sb.url)
        res = runner.invoke(main, ["run", str(src), "--rate", "1000", "--out", str(out),
                                   "--config", str(_fast_cfg(tmp_path))])
    assert res.exit_code == 1
    assert {v["status"] for v in last_by_key(out).values()} == {"failed"}
    with SandboxThread(SandboxSettings(rate=None)) as sb:
        _sandbox_env(monkeypatch, sb.url)
        res = runner.invoke(main, ["retry", str(out), "--rate", "1000"])
        assert sorted(sb.state.created_by_external_id) == [f"ext-{i}" for i in range(4)]
        # With fail_rate 1.0 even the unknown organizer got 500s, so it was retried too.
        assert sb.state.requests == 5
    assert res.exit_code == 1  # the 404 of ext-9 now
    assert last_by_key(out)["ext-9"]["httpStatus"] == 404
    with SandboxThread(SandboxSettings(rate=None)) as sb:
        _sandbox_env(monkeypatch, sb.url)
        res = runner.invoke(main, ["retry", str(out), "--rate", "1000"])
        assert sb.state.requests == 0
    assert "nothing to retry" in res.stderr


def _fast_cfg(tmp_path: Path) -> Path:
    cfg = tmp_path / "fast.yaml"
    cfg.write_text("max_attempts: 2\nbackoff_base: 0.01\nbackoff_max: 0.02\n")
    return cfg


def test_errors_out_writes_the_bad_rows_in_the_input_columns_ready_to_fix(
        runner: CliRunner, tmp_path: Path) -> None:
    """--errors-out: the invalid and failed rows, with the input's columns plus `error`; the
    corrected file then goes through `retry --input` and only the fixed rows are sent."""
    rows = [meeting_row(0), meeting_row(1, invalid=True),
            meeting_row(2, organizer="x@unknown.example")]
    src = write_csv(tmp_path / "in.csv", rows)
    out = tmp_path / "r.jsonl"
    fix = tmp_path / "fix.csv"
    res = runner.invoke(main, ["run", str(src), *SANDBOX, "--rate", "1000", "--out", str(out),
                               "--errors-out", str(fix)])
    assert res.exit_code == 1
    with open(fix, newline="", encoding="utf-8") as f:
        got = list(csv.DictReader(f))
    assert [r["externalId"] for r in got] == ["ext-1", "ext-2"]
    assert "endTime" in got[0]["error"] and "No Gong user" in got[1]["error"]
    assert list(got[0])[:-1] == ["startTime", "endTime", "title", "organizerEmail",
                                 "externalId", "invitees"]
    # Fix both rows in the "spreadsheet" and feed the file back in.
    got[0]["endTime"] = got[0]["startTime"].replace(":00:00Z", ":45:00Z")
    got[1]["organizerEmail"] = "ana@seller.example"
    write_csv(fix, [[r[c] for c in list(r)[:-1]] for r in got])
    res = runner.invoke(main, ["retry", str(out), "--input", str(fix), *SANDBOX,
                               "--rate", "1000"])
    assert res.exit_code == 0, res.output
    assert {k: v["status"] for k, v in last_by_key(out).items()} == {
        "ext-0": "created", "ext-1": "created", "ext-2": "created"}


def test_every_command_has_help(runner: CliRunner) -> None:
    """Each command documents itself (its --help is part of the docs)."""
    assert isinstance(main, click.Group)
    for name in main.commands:
        res = runner.invoke(main, [name, "--help"])
        assert res.exit_code == 0
        assert len(res.output.splitlines()) > 3
        cmd = main.commands[name]
        assert cmd.help and len(cmd.help) > 30, name


def test_retry_sends_rows_deferred_by_the_budget_from_their_recorded_payloads(
        runner: CliRunner, tmp_path: Path, env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """Rows deferred by the daily budget were never sent, yet `retry RESULTS` (no --input) can
    send them: their records keep the payload."""
    src = write_csv(tmp_path / "in.csv", [meeting_row(i) for i in range(4)])
    out = tmp_path / "r.jsonl"
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"daily_budget: 2\nquota_file: {tmp_path / 'q.json'}\nconcurrency: 1\n")
    with SandboxThread(SandboxSettings(rate=None)) as sb:
        _sandbox_env(monkeypatch, sb.url)
        res = runner.invoke(main, ["run", str(src), "--rate", "1000", "--config", str(cfg),
                                   "--out", str(out)])
        assert res.exit_code == 75
        res = runner.invoke(main, ["retry", str(out), "--rate", "1000"])
        assert res.exit_code == 0, res.output
        assert sorted(sb.state.created_by_external_id) == [f"ext-{i}" for i in range(4)]


SMUGGLED = ("2026-12-01T09:00:00Z,2026-12-01T09:30:00Z,Smuggled,ceo@example.com,smuggled-{n},"
            "victim@example.com")


@pytest.mark.parametrize("size", [200_000, 5 * 1024 * 1024])
def test_rows_inside_a_long_cell_are_never_sent(runner: CliRunner, tmp_path: Path, env: None,
                                                monkeypatch: pytest.MonkeyPatch,
                                                size: int) -> None:
    """Issue 12 item 2: a title longer than csv's old 131,072 limit, holding CSV rows, is one
    row: the sandbox never sees a smuggled externalId, and each input row gets one record."""
    filler = "x" * 997
    count = size // (len(filler) + len(SMUGGLED)) + 1
    parts = [f"{filler}\n{SMUGGLED.format(n=n)}\n" for n in range(count)]
    long_row = meeting_row(0)
    long_row[2] = "".join(parts)
    src = write_csv(tmp_path / "in.csv", [long_row, meeting_row(1)])
    out = tmp_path / "r.jsonl"
    with SandboxThread(SandboxSettings(rate=None)) as sb:
        _sandbox_env(monkeypatch, sb.url)
        res = runner.invoke(main, ["run", str(src), "--rate", "1000", "--out", str(out)])
        sent = dict(sb.state.created_by_external_id)
    assert not any(key.startswith("smuggled") for key in sent), sent
    first, second = sorted(finals(out), key=lambda r: r["line"])  # one record per input row
    assert first["line"] == 2 and second["line"] == 3 + long_row[2].count("\n"), res.output
    assert second["status"] == "created" and second["key"] == "ext-1"
    if size < 4 * 1024 * 1024:
        assert first["status"] == "created" and first["key"] == "ext-0"
    else:  # over the cap: one invalid row, keyed by its line (its fields were never read)
        assert first["status"] == "invalid" and first["key"] == "line:2"
        assert first["errors"][0].startswith(
            "line 2, column 'title': the record is longer than 4,194,304 characters")


def test_a_missing_column_stops_the_run_before_anything_is_sent(
        runner: CliRunner, tmp_path: Path, env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 11 item 3: 2,000 rows without the organizer column: one line, exit 2, no request
    (it printed a warning per row and exited 1)."""
    src = tmp_path / "in.csv"
    with open(src, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["startTime", "endTime", "title", "externalId", "invitees"])
        w.writerows([r[:3] + r[4:] for r in (meeting_row(i) for i in range(2000))])
    for args in (["run", str(src), "--rate", "1000"],
                 ["run", "-", "--format", "csv", "--rate", "1000", "--out", str(tmp_path / "o")]):
        with SandboxThread(SandboxSettings(rate=None)) as sb:
            _sandbox_env(monkeypatch, sb.url)
            res = runner.invoke(main, args, input=src.read_bytes())
            assert sb.state.requests == 0
        assert res.exit_code == 2, res.output
        assert res.stderr.startswith("bulkmeet: error: ")
        assert res.stderr.count("\n") == 1, res.stderr
        assert "no column 'organizerEmail' (mapping.organizerEmail); its columns are " \
            "'startTime', 'endTime', 'title', 'externalId', 'invitees'" in res.stderr


def test_deeply_nested_jsonl_on_stdin_is_one_invalid_row(
        runner: CliRunner, tmp_path: Path, env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 12 item 8: a JSONL object nested ~1000 deep crashed the run mid-stream (rows left
    not_sent, the rest unread, no summary); now it is one invalid row and the rest are sent."""
    rows = [dict(zip(HEADER, meeting_row(i), strict=True)) for i in range(100)]
    lines = [orjson.dumps(r) for r in rows]
    lines[50] = b'{"externalId": "deep", "title": ' + b"[" * 1000 + b"]" * 1000 + b"}"
    out = tmp_path / "r.jsonl"
    with SandboxThread(SandboxSettings(rate=None)) as sb:
        _sandbox_env(monkeypatch, sb.url)
        res = runner.invoke(main, ["run", "-", "--format", "jsonl", "--rate", "1000",
                                   "--out", str(out)], input=b"\r".join(lines) + b"\r")
        assert sb.state.creates == 99
    assert res.exit_code == 1, res.output
    counts = Counter(r["status"] for r in finals(out))
    assert counts == {"created": 99, "invalid": 1}
    assert "99 created, 1 invalid" in res.stderr
    (bad,) = [r for r in finals(out) if r["status"] == "invalid"]
    assert bad["errors"] == ["line 51: the object is nested more than 32 levels deep, the most "
                             "bulkmeet reads"]
