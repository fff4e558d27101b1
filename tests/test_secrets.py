"""Nothing secret leaks and nothing written is dangerous to open.

- No credential (access key, secret, key:secret, the Basic token, the Authorization header, a
  bearer token, or the base64 of any of them) appears in stdout, stderr, an exception, the
  results file, the ledger, the quota file, --junit, --summary, the step summary or a log line,
  whatever way the request fails.
- A results .csv cannot run a formula in a spreadsheet; the .jsonl keeps values unchanged.
- Plain http is refused for any host but this machine, unless --insecure.
"""

from __future__ import annotations

import base64
import csv
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import CliRunner, Result

from bulkmeet.cli import main
from bulkmeet.client import Credentials, classify
from bulkmeet.errors import AuthError, ConfigError
from bulkmeet.results import read_results
from bulkmeet.sandbox import SandboxSettings, SandboxThread
from bulkmeet.sandbox import app as sandbox_app

from .helpers import CREDS, HEADER, SANDBOX, entries, meeting_row, write_csv

KEY, SECRET = CREDS["GONG_ACCESS_KEY"], CREDS["GONG_ACCESS_KEY_SECRET"]
TOKEN = "test-bearer-token-5d2e8c"


def secret_forms(creds: Credentials) -> list[bytes]:
    """Every secret of `creds` (Credentials.secrets) and the base64 of each."""
    out = []
    for s in creds.secrets():
        out.append(s.encode())
        out.append(base64.b64encode(s.encode()))
    return out


# name: (sandbox settings, rows' organizer, exit code expected, what the failure looks like)
FAILURES: dict[str, tuple[SandboxSettings, str, int, str]] = {
    "200 ok": (SandboxSettings(rate=None, credentials=(KEY, SECRET)), "ana@seller.example", 0,
               "created"),
    "401 refused": (SandboxSettings(rate=None, credentials=("other-key", "other-secret")),
                    "ana@seller.example", 3, "Gong answered 401"),
    "403 limited release": (SandboxSettings(rate=None, credentials=(KEY, SECRET),
                                            forbidden=True), "ana@seller.example", 3,
                            "Limited release"),
    "400 malformed": (SandboxSettings(rate=None, credentials=(KEY, SECRET)),
                      "ana@seller.example", 1, "forced 400"),
    "404 organizer": (SandboxSettings(rate=None, credentials=(KEY, SECRET)),
                      "ghost@unknown.example", 1, "No Gong user found"),
    "429 past max_wait": (SandboxSettings(rate=None, credentials=(KEY, SECRET), daily=0,
                                          retry_after_fixed=3600), "ana@seller.example", 75,
                          "more than max_wait"),
    "500 every time": (SandboxSettings(rate=None, credentials=(KEY, SECRET), fail_rate=1.0),
                       "ana@seller.example", 1, "Gong answered 500"),
    "dropped connection": (SandboxSettings(rate=None, credentials=(KEY, SECRET),
                                           drop_rate=1.0), "ana@seller.example", 1,
                           "connection lost"),
    "past the timeout": (SandboxSettings(rate=None, credentials=(KEY, SECRET), latency=0.5),
                         "ana@seller.example", 1, "no answer within the request timeout"),
}


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[dict[str, Path]]:
    """Real-looking credentials in the environment; every file a run writes under tmp_path."""
    for k, v in CREDS.items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("GONG_BEARER_TOKEN", raising=False)
    paths = {"state": tmp_path / "state", "step": tmp_path / "step.md"}
    monkeypatch.setenv("XDG_STATE_HOME", str(paths["state"]))  # the quota file lands here
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(paths["step"]))
    yield paths


def _run(tmp_path: Path, url: str, fmt: str, out: str) -> Result:
    src = tmp_path / "in.csv"
    cfg = tmp_path / "c.yaml"
    cfg.write_text("max_attempts: 2\nbackoff_base: 0.001\nrequest_timeout: 0.2\n"
                   "concurrency: 2\nrate: 1000\n")
    return CliRunner().invoke(main, [
        "run", str(src), "--config", str(cfg), "--out", str(tmp_path / out),
        "--ledger", str(tmp_path / "ledger.jsonl"), "--junit", str(tmp_path / "junit.xml"),
        "--summary", str(tmp_path / "summary.json"), "--log-level", "debug",
        "--log-format", fmt], env={"GONG_BASE_URL": url})


def _assert_nowhere(res: Result, tmp_path: Path, secrets: list[bytes]) -> int:
    """No secret in the output, the exception, or any file under tmp_path. Returns how many
    files were looked at."""
    texts: dict[str, bytes] = {"stdout": res.stdout_bytes, "stderr": res.stderr_bytes or b""}
    if res.exc_info is not None:
        texts["exception"] = "".join(traceback.format_exception(*res.exc_info)).encode()
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    for p in files:
        texts[str(p)] = p.read_bytes()
    for where, data in texts.items():
        for s in secrets:
            assert s not in data, f"a secret is in {where}"
    return len(files)


@pytest.mark.parametrize("case", list(FAILURES))
def test_no_credential_in_any_output_whatever_fails(
        case: str, tmp_path: Path, env: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    """Each way the sandbox can fail, with every output on and debug logs: the run ends as
    that failure should, and no form of the credentials is anywhere it wrote."""
    settings, organizer, code, shown = FAILURES[case]
    write_csv(tmp_path / "in.csv", [meeting_row(i, organizer=organizer) for i in range(3)])
    if case == "400 malformed":  # the mapping sends only valid bodies: make the fake refuse one
        monkeypatch.setattr(sandbox_app, "meeting_errors", lambda body: ["forced 400"])
    # Alternate log formats and results formats across the cases, so each pair is covered.
    fmt, out = ("json", "r.jsonl") if len(case) % 2 else ("text", "r.csv")
    with SandboxThread(settings) as sb:
        res = _run(tmp_path, sb.url, fmt, out)
        assert sb.state.requests >= 1
    assert res.exit_code == code, res.output
    every = res.stderr + (tmp_path / out).read_text()
    assert shown in every
    n = _assert_nowhere(res, tmp_path, secret_forms(Credentials.basic(KEY, SECRET)))
    # results, ledger, quota, JUnit, summary, step summary, config, input
    assert n >= 8 and env["step"].exists() and any(env["state"].rglob("quota-*.json"))


def test_bearer_token_is_never_written(tmp_path: Path, env: dict[str, Path],
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """The OAuth form: GONG_BEARER_TOKEN, accepted, and then a 500 run; no form of it leaks."""
    for k in CREDS:
        monkeypatch.delenv(k)
    monkeypatch.setenv("GONG_BEARER_TOKEN", TOKEN)
    for settings, code in ((SandboxSettings(rate=None, bearer=TOKEN), 0),
                           (SandboxSettings(rate=None, bearer=TOKEN, fail_rate=1.0), 1)):
        work = tmp_path / f"exit{code}"  # each run its own ledger: the first would skip all
        work.mkdir()
        write_csv(work / "in.csv", [meeting_row(i) for i in range(2)])
        with SandboxThread(settings) as sb:
            res = _run(work, sb.url, "json", "r.jsonl")
        assert res.exit_code == code, res.output
        _assert_nowhere(res, tmp_path, secret_forms(Credentials.bearer(TOKEN)))


def test_credentials_and_errors_do_not_show_secrets() -> None:
    """repr and str of Credentials hide the header; an AuthError and the missing-variable error
    name no value."""
    creds = Credentials.basic(KEY, SECRET)
    assert repr(creds) == str(creds) == "<Credentials basic (hidden)>"
    with pytest.raises(AuthError) as exc:
        classify(401, {"requestId": "r1", "errors": []}, {})
    assert str(exc.value) == "Gong answered 401: the credentials were not accepted"
    with pytest.raises(ConfigError) as missing:
        Credentials.from_env({"GONG_ACCESS_KEY": KEY})
    assert KEY not in str(missing.value)
    assert "GONG_ACCESS_KEY_SECRET is not set" in str(missing.value)


# -- outputs safe to open ----------------------------------------------------------------------

FORMULAS = ["=1+2", "+SUM(A1)", "-2+3", "@SUM(A1)", "=HYPERLINK(\"http://evil.example\",\"x\")"]


def _formula_rows(tmp_path: Path) -> Path:
    rows = []
    for i, f in enumerate(FORMULAS):
        r = meeting_row(i, ext=f)
        r[2] = f'=HYPERLINK("http://evil.example/{i}","click")'  # the title
        rows.append(r)
    return write_csv(tmp_path / "in.csv", rows)


@pytest.mark.parametrize("out", ["r.csv", "r.jsonl"])
def test_formula_cells_are_inert_in_csv_results_and_unchanged_in_jsonl(
        tmp_path: Path, out: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """OWASP CSV injection: a key or title starting with = + - @ reaches Gong unchanged, is
    written to a .csv results file behind an apostrophe (a spreadsheet shows it as text), reads
    back unchanged, and stays as it is in .jsonl."""
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    src = _formula_rows(tmp_path)
    path = tmp_path / out
    res = CliRunner().invoke(main, ["run", str(src), *SANDBOX, "--rate", "1000",
                                    "--out", str(path)])
    assert res.exit_code == 0, res.output
    assert set(read_results(path).keys) == set(FORMULAS)
    if out.endswith(".csv"):
        with open(path, newline="", encoding="utf-8") as f:
            cells = [c for row in csv.reader(f) for c in row]
        risky = [c for c in cells if c[:1] in ("=", "+", "-", "@", "\t", "\r")]
        assert risky == []
        assert "'=1+2" in cells and "'@SUM(A1)" in cells
        payloads = [orjson.loads(c) for c in cells if c.startswith("{")]
        assert payloads and all(p["title"].startswith("=HYPERLINK(") for p in payloads)
    else:
        sent: list[dict[str, Any]] = [e for e in entries(path) if e["status"] == "sending"]
        assert sorted(e["key"] for e in sent) == sorted(FORMULAS)
        assert {e["payload"]["externalId"] for e in sent} == set(FORMULAS)
        assert all(e["payload"]["title"].startswith("=HYPERLINK(") for e in sent)


@pytest.mark.parametrize(("url", "flags", "code", "message"), [
    ("http://gong.example.com", [], 2,
     "bulkmeet: error: base URL http://gong.example.com is not https: credentials would travel "
     "in clear text (use https, a loopback sandbox, or --insecure)\n"),
    ("http://gong.example.com", ["--insecure"], 1, None),
    ("https://gong.example.com", [], 1, None),
    ("http://localhost:1", [], 1, None),
    ("http://[::1]:1", [], 1, None),
])
def test_plain_http_needs_loopback_or_insecure(tmp_path: Path, url: str, flags: list[str],
                                               code: int, message: str | None,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """The base URL check, through the CLI. The input's one row is invalid (exit 1), so an
    accepted URL is never contacted (only loopback traffic in tests). (An input without rows is
    refused before the URL is looked at.)"""
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    src = tmp_path / "in.csv"
    src.write_text(",".join(HEADER) + "\n" + ",".join(meeting_row(0, invalid=True)) + "\n")
    res = CliRunner().invoke(main, ["run", str(src), *flags],
                             env={**CREDS, "GONG_BASE_URL": url})
    assert res.exit_code == code, res.output
    if message is not None:
        assert res.stderr.endswith(message)
    else:
        assert "not https" not in res.stderr
