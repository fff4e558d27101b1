"""Reports for CI: --junit (valid JUnit XML, one testcase per row of this input in its final
state), --summary (JSON), and the Markdown appended to $GITHUB_STEP_SUMMARY."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from functools import cache
from pathlib import Path
from typing import Any

import click
import orjson
import pytest
import xmlschema
import yaml
from click.testing import CliRunner, Result
from hypothesis import given, settings
from hypothesis import strategies as st

from bulkmeet.cli import main
from bulkmeet.models import FINAL_STATUSES, Record, Status
from bulkmeet.report import RowResult, junit_xml, markdown, md_cell, xml_safe
from bulkmeet.sandbox import SandboxSettings, SandboxThread

from .helpers import CREDS, SANDBOX, meeting_row, write_csv

XSD = Path(__file__).parent / "data" / "junit.xsd"


@cache
def schema() -> xmlschema.XMLSchema:
    return xmlschema.XMLSchema(str(XSD))


def cases(path: Path) -> dict[str, ET.Element]:
    """testcase name -> element, after validating the file against the JUnit schema."""
    schema().validate(str(path))
    root = ET.parse(path).getroot()
    return {c.attrib["name"]: c for c in root.iter("testcase")}


def outcome(case: ET.Element) -> str:
    child = next((c for c in case if c.tag in ("failure", "error", "skipped")), None)
    return "passed" if child is None else child.tag


@pytest.fixture(autouse=True)
def no_step_summary(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Tests run in CI must not write into the real step summary, nor the real quota file."""
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))


def run(*args: str) -> Result:
    return CliRunner().invoke(main, ["run", *args])


def test_junit_has_one_valid_testcase_per_row_with_errors_and_request_id(tmp_path: Path) -> None:
    """created passes; invalid, failed (404) and duplicate fail, each failure carrying Gong's
    error, httpStatus and requestId; the file validates against the JUnit schema."""
    rows = [meeting_row(0), meeting_row(1, invalid=True),
            meeting_row(2, organizer="ghost@unknown.example"), meeting_row(0)]
    src = write_csv(tmp_path / "in.csv", rows)
    junit = tmp_path / "reports" / "junit.xml"
    res = run(str(src), *SANDBOX, "--rate", "1000", "--junit", str(junit))
    assert res.exit_code == 1, res.output
    assert f"  JUnit: {junit}" in res.stderr
    got = cases(junit)
    assert list(got) == ["line 2: ext-0", f"line 3: {_key(got, 3)}", "line 4: ext-2",
                         "line 5: ext-0"]
    assert [outcome(c) for c in got.values()] == ["passed", "failure", "failure", "failure"]
    assert "meetingId: " in (got["line 2: ext-0"].findtext("system-out") or "")
    failed = got["line 4: ext-2"].find("failure")
    assert failed is not None
    assert failed.attrib == {"message": "No Gong user found corresponding to the provided "
                                        "organizer email", "type": "failed"}
    assert "httpStatus: 404" in (failed.text or "")
    assert "requestId: " in (failed.text or "")
    root = ET.parse(junit).getroot()
    assert (root.attrib["tests"], root.attrib["failures"], root.attrib["errors"]) == ("4", "3",
                                                                                     "0")
    assert {c.attrib["classname"] for c in root.iter("testcase")} == {"bulkmeet.in"}


def _key(got: dict[str, ET.Element], line: int) -> str:
    return next(n for n in got if n.startswith(f"line {line}: ")).split(": ", 1)[1]


def test_junit_describes_this_input_final_state_after_a_resume(tmp_path: Path) -> None:
    """Run twice on one results file: the second JUnit has exactly the rows of the second input
    (a row dropped from the input is gone), rows created by the first run are skipped, the
    unchanged 404 row still fails (noted as from an earlier run), the new row passes."""
    out = tmp_path / "r.jsonl"
    first = [meeting_row(0), meeting_row(1), meeting_row(2, organizer="ghost@unknown.example"),
             meeting_row(9)]
    src = write_csv(tmp_path / "in.csv", first)
    assert run(str(src), *SANDBOX, "--rate", "1000", "--out", str(out)).exit_code == 1
    write_csv(src, first[:3] + [meeting_row(3)])
    junit = tmp_path / "j.xml"
    res = run(str(src), *SANDBOX, "--rate", "1000", "--out", str(out), "--junit", str(junit))
    # Exit 1: the 404 row was not sent again (it cannot pass unchanged) but it is still not a
    # meeting, so the run is not all good; the JUnit shows its state, which is failed.
    assert res.exit_code == 1, res.output
    assert "1 refused by Gong in an earlier run" in res.output
    got = cases(junit)
    assert {n: outcome(c) for n, c in got.items()} == {
        "line 2: ext-0": "skipped", "line 3: ext-1": "skipped", "line 4: ext-2": "failure",
        "line 5: ext-3": "passed"}
    skipped = got["line 2: ext-0"].find("skipped")
    assert skipped is not None and skipped.attrib["message"] == "already created in an earlier run"
    assert "from an earlier run" in (got["line 4: ext-2"].findtext("failure") or "")


def test_summary_json_counts_timings_rate_pauses_quota_and_exit_code(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """--summary: a JSON object a CI step can read; 429s and the pause they caused are in it."""
    for k, v in CREDS.items():
        monkeypatch.setenv(k, v)
    src = write_csv(tmp_path / "in.csv", [meeting_row(i) for i in range(4)]
                    + [meeting_row(4, invalid=True)])
    summary = tmp_path / "s.json"
    # 3 calls per clock second with Retry-After: 0, so a 429 costs no waiting in the test.
    with SandboxThread(SandboxSettings(rate=3, window="fixed", retry_after_fixed=0)) as sb:
        monkeypatch.setenv("GONG_BASE_URL", sb.url)
        res = run(str(src), "--rate", "1000", "--concurrency", "1", "--summary", str(summary))
        limited = sb.state.rate_limited
    assert res.exit_code == 1, res.output
    data = orjson.loads(summary.read_bytes())
    assert data["exitCode"] == 1
    assert data["counts"]["created"] == 4 and data["counts"]["invalid"] == 1
    assert data["counts"]["failed"] == 0
    assert data["rows"]["read"] == 5
    assert data["requests"] == 4 + limited
    assert data["rateLimited"] == limited and limited >= 1
    assert data["pauses"] >= 1
    assert data["quota"]["usedThisRun"] == data["requests"]
    assert data["quota"]["usedToday"] >= data["requests"]
    assert data["quota"]["budget"] == 10_000
    assert data["wallSeconds"] > 0 and data["startedAt"] <= data["finishedAt"]
    assert data["error"] is None


def test_summary_is_written_when_the_run_cannot_start(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """No credentials: exit 2, and the summary still says so (no JUnit: no row was read)."""
    for k in (*CREDS, "GONG_BEARER_TOKEN"):
        monkeypatch.delenv(k, raising=False)
    src = write_csv(tmp_path / "in.csv", [meeting_row(0)])
    summary, junit = tmp_path / "s.json", tmp_path / "j.xml"
    res = run(str(src), "--summary", str(summary), "--junit", str(junit))
    assert res.exit_code == 2
    data = orjson.loads(summary.read_bytes())
    assert data["exitCode"] == 2
    assert data["error"].startswith("no credentials: set GONG_ACCESS_KEY")
    assert not junit.exists()


def test_github_step_summary_is_appended_as_markdown(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """With $GITHUB_STEP_SUMMARY set, a Markdown report is appended (what other steps wrote
    stays), listing the rows that need attention with markup in them escaped."""
    step = tmp_path / "step.md"
    step.write_text("# earlier step\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(step))
    rows = [meeting_row(0), meeting_row(1, organizer="ghost@unknown.example",
                                        ext="a|b<script>")]
    src = write_csv(tmp_path / "in.csv", rows)
    res = run(str(src), *SANDBOX, "--rate", "1000")
    assert res.exit_code == 1, res.output
    text = step.read_text()
    assert text.startswith("# earlier step\n## bulkmeet run ")
    assert "**Exit 1**" in text
    assert "| created | 1 |" in text and "| failed | 1 |" in text
    row = next(line for line in text.splitlines() if line.startswith("| 3 |"))
    assert "a\\|b&lt;script&gt;" in row and "<script>" not in text
    assert row.count(" | ") == 4  # five cells: the key's | did not split it


def test_md_cell_keeps_markup_inert() -> None:
    """Pipes, HTML and Markdown emphasis are shown as text; newlines do not end the row."""
    assert md_cell("a|b\n<b>*x*</b> [l](u)") == r"a\|b &lt;b&gt;\*x\*&lt;/b&gt; \[l\](u)"


def test_xml_safe_escapes_what_xml_cannot_carry() -> None:
    """Control characters become visible escapes; tabs, newlines and non-ASCII stay."""
    assert xml_safe("a\x00b\x1bc\td\né\ufffe") == "a\\x00b\\x1bc\td\né\\xfffe"


_TEXT = st.text(st.characters(codec="utf-8"), max_size=30)


@settings(max_examples=40, deadline=None)
@given(key=_TEXT, errors=st.lists(_TEXT, max_size=3), request_id=st.none() | _TEXT,
       status=st.sampled_from([s for s in Status if s in FINAL_STATUSES]),
       this_run=st.booleans())
def test_any_row_text_gives_valid_junit(key: str, errors: list[str], request_id: str | None,
                                        status: Status, this_run: bool) -> None:
    """Whatever a cell or Gong's answer holds (control characters, surrogates' neighbours,
    markup), the JUnit document is well-formed and valid, and counts the row once."""
    rec = Record(2, key, status, errors=tuple(errors), request_id=request_id)
    doc = junit_xml([RowResult(2, key, rec, this_run)], input="in.csv",
                    started_at="2026-01-02T03:04:05.678Z", wall=1.5)
    schema().validate(doc)
    root = ET.fromstring(doc)
    assert root.attrib["tests"] == "1"
    bad = sum(int(root.attrib[k]) for k in ("failures", "errors", "skipped"))
    passed = status in (Status.CREATED, Status.UPDATED, Status.DELETED) and this_run
    assert bad == (0 if passed else 1)


def test_markdown_lists_at_most_50_rows() -> None:
    """A big failing run keeps the step summary short: 50 rows and a count."""
    rows = [RowResult(i, f"k{i}", Record(i, f"k{i}", Status.FAILED, errors=("x",)), True)
            for i in range(120)]
    summary: dict[str, Any] = {
        "input": "in.csv", "exitCode": 1, "exitMeaning": "m", "counts": {"failed": 120},
        "rows": {"read": 120, "settledEarlier": 0}, "wallSeconds": 1.0, "requests": 120,
        "achievedRate": 3.0, "rateLimited": 0, "pauses": 0, "pausedSeconds": 0.0,
        "quota": None, "stopReason": None, "error": None}
    text = markdown(summary, rows)
    assert "### Rows that need attention (first 50 of 120)" in text
    assert sum(line.startswith(f"| {i} | k{i} | failed |") for i in range(120)
               for line in text.splitlines()) == 50


def test_a_report_that_cannot_be_written_fails_a_clean_run(tmp_path: Path) -> None:
    """CI relies on the report: when it cannot be written the error is named and the run's exit
    0 becomes 2 (the results file is complete all the same)."""
    src = write_csv(tmp_path / "in.csv", [meeting_row(0)])
    blocker = tmp_path / "file"
    blocker.write_text("")
    res = run(str(src), *SANDBOX, "--rate", "1000", "--junit", str(blocker / "j.xml"))
    assert res.exit_code == 2, res.output
    assert f"bulkmeet: error: cannot write the JUnit {blocker / 'j.xml'}: " in res.stderr
    assert "1 created" in res.stderr


def test_sample_nightly_workflow_uses_real_options_and_keeps_secrets_in_env() -> None:
    """samples/ci/nightly.yml: scheduled; credentials only in `env` from secrets; the state
    restored and saved (always) with actions/cache; the run refuses a lost store unless it is
    the first run; results, JUnit and summary uploaded; every option of its `bulkmeet run`
    exists."""
    wf = yaml.safe_load((Path(__file__).parents[1] / "samples/ci/nightly.yml").read_text())
    triggers = wf.get("on", wf.get(True))  # YAML 1.1 reads a bare `on` as true
    assert triggers["schedule"][0]["cron"]
    job = wf["jobs"]["meetings"]
    for var in ("GONG_ACCESS_KEY", "GONG_ACCESS_KEY_SECRET"):
        assert job["env"][var] == "${{ secrets." + var + " }}"
    steps = {s.get("name", s.get("uses")): s for s in job["steps"]}
    assert steps["Restore the state"]["uses"].startswith("actions/cache/restore@")
    save = steps["Save the state"]
    assert save["uses"].startswith("actions/cache/save@") and save["if"] == "always()"
    assert save["with"]["path"] == "state/"
    script = steps["Create meetings"]["run"]
    assert "secrets." not in script and "GONG_ACCESS" not in script
    run_cmd = main.commands["run"]
    assert isinstance(run_cmd, click.Command)
    known = {o for p in run_cmd.params for o in getattr(p, "opts", [])}
    used = set(re.findall(r"\s(--[a-z-]+)", script))
    assert {"--state", "--junit", "--summary", "--out"} <= used <= known
    assert 'guard="--state-must-exist"' in script and "--state-must-exist" in known
    assert steps["Create meetings"]["env"]["MUST_EXIST"] == \
        "${{ inputs.first_run && 'no' || 'yes' }}"
    upload = steps["Upload results, JUnit and summary"]
    assert upload["uses"].startswith("actions/upload-artifact@") and upload["if"] == "always()"
    assert "out/" in upload["with"]["path"]
    assert all(f"out/{f}" in script for f in ("results.jsonl", "junit.xml", "summary.json"))
