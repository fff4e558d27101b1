"""Reports of one run for CI: JUnit XML, a JSON summary, a Markdown summary for GitHub.

The rows reported are the rows of this input that the run read, each in its final state:
- the row's final record written by this run, read back from the results file (entries past
  the ones it held before the run: a resumed file also holds earlier runs' records);
- or, for a row this run settled without a record (created, or rejected with the same payload,
  by an earlier run), that earlier run's record.
Which rows the run read comes from the engine's row events (`RunReport.read`).

JUnit, as Jenkins, GitLab and GitHub test reporters read it: one testcase per row named
`line N: key`. created/updated/deleted pass; invalid, failed and duplicate are <failure>s;
uncertain and not_sent are <error>s (the row's fate is unknown or it was never tried);
skipped and deferred are <skipped>. Every text passes through `xml_safe` (XML 1.0 forbids most
control characters, which a spreadsheet cell may hold) and every output through `redact`.
"""

from __future__ import annotations

import os
import re
import socket
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from . import __version__
from .engine import RowEvents, RunStats
from .exits import EXIT_MEANINGS
from .logs import env_secrets, redact
from .models import FINAL_STATUSES, Record, Status
from .planner import Known, Send, Work
from .results import iter_entries, now_iso
from .words import plural

PASSED = frozenset({Status.CREATED, Status.UPDATED, Status.DELETED})
FAILURES = frozenset({Status.INVALID, Status.FAILED, Status.DUPLICATE})
ERRORS = frozenset({Status.UNCERTAIN, Status.NOT_SENT})
SKIPS = frozenset({Status.SKIPPED, Status.DEFERRED})
STEP_SUMMARY_ROWS = 50  # rows listed in the Markdown summary; the JUnit file has them all
# Characters XML 1.0 does not allow (https://www.w3.org/TR/xml/#charsets).
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


@dataclass(frozen=True, slots=True)
class RowResult:
    """One row of the input and its final state."""

    line: int
    key: str
    record: Record | None  # None: no outcome was recorded (should not happen)
    this_run: bool  # False: settled by an earlier run, nothing sent for it now
    seconds: float | None = None  # first request to outcome, this run


def xml_safe(text: str) -> str:
    """Text XML 1.0 can carry: each forbidden character becomes a visible \\xNN escape."""
    return _NOT_XML.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def _seconds_between(start: str | None, end: str | None) -> float | None:
    if not start or not end:
        return None
    try:
        return max(0.0, (datetime.fromisoformat(end) - datetime.fromisoformat(start))
                   .total_seconds())
    except ValueError:
        return None


class RunReport(RowEvents):
    """Collects what the reports need from one run: make it before the run starts and
    subscribe it to the run's row events."""

    def __init__(self, input: str, out: str, *, fresh: bool = False) -> None:
        self.input = input
        self.out = out
        self.started_at = now_iso()
        self.finished_at: str | None = None
        self.rows: list[tuple[int, str]] = []
        self._earlier: dict[tuple[int, str], Record | None] = {}  # rows settled before
        # Entries the results file holds before this run; everything after them is this run's.
        self._before = 0
        if not fresh and Path(out).exists():
            self._before = sum(1 for _ in iter_entries(out, []))

    def read(self, work: Work) -> None:
        """A row the run read; one an earlier run settled keeps that run's record."""
        if isinstance(work, Known):
            where = (work.line, work.key)
            self._earlier[where] = work.earlier
        elif isinstance(work, Send):
            where = (work.row.line, work.row.key)
        else:
            where = (work.record.line, work.record.key)
        self.rows.append(where)

    def results(self) -> list[RowResult]:
        """Every row read, in input order, with its final state."""
        self.finished_at = self.finished_at or now_iso()
        mine: dict[tuple[int, str], Record] = {}
        first_sent: dict[tuple[int, str], str] = {}
        if Path(self.out).exists():
            for n, data in enumerate(iter_entries(self.out, [])):
                if n < self._before:
                    continue
                where = (int(data["line"]), str(data["key"]))
                if data["status"] == Status.SENDING.value:
                    first_sent.setdefault(where, str(data.get("finishedAt") or ""))
                    continue
                if data["status"] == Status.ANSWERED.value:
                    continue
                try:
                    mine[where] = Record.from_json(data)
                except (KeyError, ValueError, TypeError):
                    continue
        out = []
        for where in self.rows:
            rec = mine.get(where)
            if rec is not None:
                secs = _seconds_between(first_sent.get(where), rec.finished_at)
                out.append(RowResult(*where, rec, True, secs))
                continue
            out.append(RowResult(*where, self._earlier.get(where), False))
        return out

    def summary(self, stats: RunStats, exit_code: int,
                error: str | None = None) -> dict[str, Any]:
        """The JSON summary: counts by status, timings, rate, 429 pauses, quota, exit code."""
        self.finished_at = self.finished_at or now_iso()
        quota = stats.quota
        counts = {s.value: stats.counts.get(s.value, 0) for s in Status if s in FINAL_STATUSES}
        if error is None and stats.auth_error is not None:
            error = str(stats.auth_error)
        if error is None and stats.stopped_by is not None:
            error = str(stats.stopped_by)
        return {
            "bulkmeet": __version__,
            "input": self.input,
            "results": self.out,
            "exitCode": exit_code,
            "exitMeaning": EXIT_MEANINGS.get(exit_code, "unknown"),
            "counts": counts,
            "rows": {
                "read": stats.rows_read,
                "settledEarlier": stats.settled,
                "uncertainBefore": stats.uncertain_before,
                "uncertainLines": sorted(stats.uncertain_lines),
                "unread": stats.unread,
            },
            "startedAt": self.started_at,
            "finishedAt": self.finished_at,
            "wallSeconds": round(stats.wall, 3),
            "requests": stats.requests,
            "organizerChecks": stats.organizer_checks,
            "achievedRate": round(stats.achieved_rate, 3),
            "finalRate": stats.final_rate,
            "rateLimited": stats.rate_limited,
            "pauses": stats.pauses,
            "pausedSeconds": round(stats.paused_seconds, 3),
            "quota": None if quota is None else {
                "day": quota.day, "budget": quota.budget, "usedToday": quota.used,
                "usedThisRun": stats.requests + stats.organizer_checks,
                "remaining": max(0, quota.budget - quota.used),
            },
            "stopReason": stats.stop_reason,
            "interrupted": stats.interrupted,
            "error": error,
        }


# -- writing ---------------------------------------------------------------------------------


def write_text(path: str | Path, text: str, secrets: Iterable[str] | None = None) -> None:
    """Write whole or not at all (a CI step never uploads half a report); secrets redacted."""
    text = redact(text, env_secrets() if secrets is None else secrets)
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    # Not mkstemp: its 0600 would ignore the umask the user's other files get.
    tmp = p.with_name(f".{p.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
        os.replace(tmp, p)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def summary_json(summary: dict[str, Any]) -> str:
    return orjson.dumps(summary, option=orjson.OPT_INDENT_2).decode() + "\n"


def _failure_text(rec: Record, note: str | None) -> str:
    lines = list(rec.errors)
    for label, value in (("httpStatus", rec.http_status), ("requestId", rec.request_id),
                         ("meetingId", rec.meeting_id), ("attempts", rec.attempts or None),
                         ("finishedAt", rec.finished_at)):
        if value is not None:
            lines.append(f"{label}: {value}")
    if note:
        lines.append(note)
    return "\n".join(lines)


def _classname(input: str) -> str:
    stem = Path(input).stem if input != "-" else "stdin"
    return "bulkmeet." + (re.sub(r"[^A-Za-z0-9_-]", "_", stem) or "input")


def junit_xml(rows: Sequence[RowResult], *, input: str, started_at: str,
              wall: float) -> str:
    """The JUnit XML document for `rows` (see the module docstring for the mapping)."""
    counts: Counter[str] = Counter()
    suite = ET.Element("testsuite")
    classname = _classname(input)
    for r in rows:
        case = ET.SubElement(suite, "testcase", classname=classname,
                             name=xml_safe(f"line {r.line}: {r.key}"))
        if r.seconds is not None:
            case.set("time", f"{r.seconds:.3f}")
        counts["tests"] += 1
        rec = r.record
        note = None if r.this_run else "(from an earlier run: nothing was sent for it this time)"
        if rec is None:
            counts["errors"] += 1
            ET.SubElement(case, "error", message="no outcome was recorded for this row",
                          type="missing")
            continue
        status = rec.status
        first = rec.errors[0] if rec.errors else status.value
        if not r.this_run and status in PASSED:
            counts["skipped"] += 1
            ET.SubElement(case, "skipped", message=f"already {status.value} in an earlier run")
        elif status in PASSED:
            pass
        elif status in SKIPS:
            counts["skipped"] += 1
            ET.SubElement(case, "skipped", message=xml_safe(f"{status.value}: {first}"))
        else:
            tag = "error" if status in ERRORS else "failure"
            counts["errors" if tag == "error" else "failures"] += 1
            elem = ET.SubElement(case, tag, message=xml_safe(first), type=status.value)
            elem.text = xml_safe(_failure_text(rec, note))
            continue
        out = [f"status: {status.value}"]
        out += [f"{k}: {v}" for k, v in (("meetingId", rec.meeting_id),
                                         ("meetingUrl", rec.meeting_url),
                                         ("requestId", rec.request_id)) if v]
        if note:
            out.append(note)
        ET.SubElement(case, "system-out").text = xml_safe("\n".join(out))
    attrs = {"tests": str(counts["tests"]), "failures": str(counts["failures"]),
             "errors": str(counts["errors"]), "skipped": str(counts["skipped"]),
             "time": f"{wall:.3f}"}
    suite.attrib.update(name=xml_safe(f"bulkmeet run {input}"), **attrs,
                        timestamp=started_at.rstrip("Z")[:19], hostname=socket.gethostname())
    root = ET.Element("testsuites", {"name": "bulkmeet", **attrs})
    root.append(suite)
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


# -- Markdown for $GITHUB_STEP_SUMMARY --------------------------------------------------------

_MD_SPECIAL = re.compile(r"([\\`*_\[\]|#~])")


def md_cell(text: object) -> str:
    """Text that stays inside one table cell and renders as itself (no markup, no HTML)."""
    s = str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    s = _MD_SPECIAL.sub(r"\\\1", s)
    return " ".join(s.split())  # newlines would end the row


def markdown(summary: dict[str, Any], rows: Sequence[RowResult]) -> str:
    s = summary
    lines = [f"## bulkmeet run {md_cell(s['input'])}", "",
             f"**Exit {s['exitCode']}**: {md_cell(s['exitMeaning'])}", ""]
    if s.get("error"):
        lines += [f"Error: {md_cell(s['error'])}", ""]
    lines += ["| status | rows |", "|---|---:|"]
    lines += [f"| {k} | {v} |" for k, v in s["counts"].items() if v]
    if s["rows"]["settledEarlier"]:
        lines.append(f"| done in an earlier run | {s['rows']['settledEarlier']} |")
    lines.append("")
    quota = s.get("quota") or {}
    lines.append(
        f"{plural(s['rows']['read'], 'row')} read in {s['wallSeconds']:.1f}s; "
        f"{plural(s['requests'], 'request')} at {s['achievedRate']:.2f}/s; "
        f"{s['rateLimited']} answered 429; paused {plural(s['pauses'], 'time')} "
        f"for {s['pausedSeconds']:.1f}s"
        + (f"; quota {quota['usedToday']}/{quota['budget']} used today" if quota else ""))
    if s.get("stopReason"):
        lines += ["", f"Stopped: {md_cell(s['stopReason'])}"]
    bad = [r for r in rows if r.record is None or r.record.status not in PASSED | SKIPS]
    if bad:
        shown = bad[:STEP_SUMMARY_ROWS]
        more = f" (first {len(shown)} of {len(bad)})" if len(bad) > len(shown) else ""
        lines += ["", f"### Rows that need attention{more}", "",
                  "| line | key | status | error | requestId |", "|---:|---|---|---|---|"]
        for r in shown:
            rec = r.record
            status = rec.status.value if rec else "missing"
            error = "; ".join(rec.errors) if rec else "no outcome recorded"
            rid = rec.request_id if rec and rec.request_id else ""
            lines.append(f"| {r.line} | {md_cell(r.key)} | {status} | {md_cell(error)} | "
                         f"{md_cell(rid)} |")
    return "\n".join(lines) + "\n\n"


def append_step_summary(path: str | Path, text: str,
                        secrets: Iterable[str] | None = None) -> None:
    """Append to $GITHUB_STEP_SUMMARY (other steps write there too: never truncate it)."""
    text = redact(text, env_secrets() if secrets is None else secrets)
    with open(path, "a", encoding="utf-8") as f:
        f.write(text)
