"""Logs: text or JSON lines, one event per retry, pause, rate change and final failure carrying
the row's line and key, and no credential in any record."""

from __future__ import annotations

import base64
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import CliRunner

from bulkmeet.cli import main
from bulkmeet.logs import REDACTED, RedactSecrets, env_secrets, redact, setup_logging
from bulkmeet.sandbox import SandboxSettings, SandboxThread

from .helpers import CREDS, meeting_row, write_csv

KEY, SECRET = CREDS["GONG_ACCESS_KEY"], CREDS["GONG_ACCESS_KEY_SECRET"]


class Err:
    """What the "bulkmeet" handler wrote to stderr (pytest's capsys: it owns sys.stderr)."""

    def __init__(self, capsys: pytest.CaptureFixture[str]) -> None:
        self.capsys = capsys

    def getvalue(self) -> str:
        return self.capsys.readouterr().err


@pytest.fixture
def stderr(capsys: pytest.CaptureFixture[str]) -> Iterator[Err]:
    yield Err(capsys)
    logging.getLogger("bulkmeet").handlers.clear()


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for k, v in CREDS.items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("GONG_BEARER_TOKEN", raising=False)
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))  # the quota file


def test_json_format_emits_the_event_line_and_key_as_fields(stderr: Err) -> None:
    """--log-format json: one object per line; `extra` fields become top-level fields."""
    log = setup_logging("info", "json", secrets=())
    log.warning("line %d: retry %d", 7, 2, extra={"event": "retry", "line": 7, "key": "crm-7"})
    data = orjson.loads(stderr.getvalue())
    assert data["message"] == "line 7: retry 2"
    assert (data["level"], data["logger"]) == ("warning", "bulkmeet")
    assert (data["event"], data["line"], data["key"]) == ("retry", 7, "crm-7")
    assert data["time"].endswith("Z")


def test_text_format_names_the_row(stderr: Err) -> None:
    """The text format keeps the old line and appends the row's line and key when it has them."""
    log = setup_logging("info", "text", secrets=())
    log.error("Gong answered 404", extra={"event": "failed", "line": 3, "key": "crm-3"})
    log.warning("plain")
    assert stderr.getvalue().splitlines() == [
        "bulkmeet: ERROR: Gong answered 404 [line 3, key 'crm-3']",
        "bulkmeet: WARNING: plain",
    ]


def test_the_level_filters(stderr: Err) -> None:
    """--log-level warning drops info records."""
    log = setup_logging("warning", "text", secrets=())
    log.info("hidden")
    log.warning("shown")
    assert stderr.getvalue() == "bulkmeet: WARNING: shown\n"


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_secrets_are_redacted_from_message_args_extras_and_tracebacks(
        stderr: Err, fmt: str) -> None:
    """Defence in depth: a secret that reaches a log record, raw or base64, is never written."""
    log = setup_logging("debug", fmt, secrets=env_secrets(CREDS))
    b64 = base64.b64encode(f"{KEY}:{SECRET}".encode()).decode()
    log.warning("header was Basic %s", b64, extra={"event": "x", "key": f"k-{SECRET}"})
    log.info(f"raw {KEY} in the message itself")
    try:
        raise RuntimeError(f"boom with {SECRET}")
    except RuntimeError:
        log.exception("failed")
    text = stderr.getvalue()
    for s in (KEY, SECRET, b64, base64.b64encode(SECRET.encode()).decode()):
        assert s not in text
    assert text.count(REDACTED) >= 4
    assert "RuntimeError: boom with [REDACTED]" in text.replace("\\n", "\n")


def test_env_secrets_covers_every_form_and_skips_tiny_values() -> None:
    """Key, secret, key:secret, its base64 and the header; the bearer token; nothing shorter than
    four characters (redacting those would garble every line)."""
    env = {"GONG_ACCESS_KEY": KEY, "GONG_ACCESS_KEY_SECRET": SECRET, "GONG_BEARER_TOKEN": "abc"}
    forms = env_secrets(env)
    token = base64.b64encode(f"{KEY}:{SECRET}".encode()).decode()
    assert {KEY, SECRET, f"{KEY}:{SECRET}", token, f"Basic {token}"} <= set(forms)
    assert "abc" not in forms
    assert redact(f"x {token} y", forms) == f"x {REDACTED} y"


def test_filter_survives_bad_format_arguments() -> None:
    """A record whose %-args do not match still passes the filter (logging reports it later)."""
    f = RedactSecrets([SECRET])
    record = logging.LogRecord("bulkmeet", logging.INFO, "", 0, "%d %s", (SECRET,), None)
    assert f.filter(record)
    assert SECRET not in str(record.args)


def _events(stderr: str) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in stderr.splitlines() if line.startswith("{")]


def test_run_logs_one_event_per_retry_and_final_failure_with_line_and_key(
        tmp_path: Path, env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every 500 answer gives a `retry` event, the last one a `failed` event, each naming the
    row's line and key."""
    src = write_csv(tmp_path / "in.csv", [meeting_row(i) for i in range(2)])
    cfg = tmp_path / "c.yaml"
    cfg.write_text("max_attempts: 3\nbackoff_base: 0.001\nrate: 1000\n")
    with SandboxThread(SandboxSettings(rate=None, fail_rate=1.0)) as sb:
        monkeypatch.setenv("GONG_BASE_URL", sb.url)
        res = CliRunner().invoke(main, ["run", str(src), "--config", str(cfg), "--log-format",
                                        "json", "--log-level", "info"])
    assert res.exit_code == 1, res.output
    events = _events(res.stderr)
    for line, key in ((2, "ext-0"), (3, "ext-1")):
        mine = [e["event"] for e in events if e.get("line") == line and e.get("key") == key]
        assert mine == ["retry", "retry", "failed"]


@pytest.mark.slow
def test_run_logs_pauses_and_rate_changes(tmp_path: Path, env: None,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """A 429 gives a `pause` event naming the row; in auto mode it also gives a `rate` event
    with the new, lower rate."""
    src = write_csv(tmp_path / "in.csv", [meeting_row(i) for i in range(8)])
    cfg = tmp_path / "c.yaml"
    cfg.write_text("rate: 200\nrate_ceiling: 200\nrate_auto: true\nconcurrency: 4\n")
    # 5 calls per clock second, so 8 rows at 200/s must meet a 429; Retry-After: 1 makes one
    # short pause (0 would make every 429 a new pause and halve the rate down to its floor).
    settings = SandboxSettings(rate=5, window="fixed", retry_after_fixed=1)
    with SandboxThread(settings) as sb:
        monkeypatch.setenv("GONG_BASE_URL", sb.url)
        res = CliRunner().invoke(main, ["run", str(src), "--config", str(cfg), "--log-format",
                                        "json", "--log-level", "info"])
        limited = sb.state.rate_limited
    assert res.exit_code == 0, res.output
    assert limited > 0
    events = _events(res.stderr)
    pauses = [e for e in events if e.get("event") == "pause"]
    rates = [e for e in events if e.get("event") == "rate"]
    assert pauses and all(isinstance(e["line"], int) and e["key"].startswith("ext-")
                          for e in pauses)
    assert rates and all(e["rate"] < 200 for e in rates)
