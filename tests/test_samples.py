"""The files in samples/: each is valid under `bulkmeet validate` with its preset (and nothing
else but the organizer where the layout has none), and `bulkmeet run --sandbox` creates every
row of it, sending exactly the payloads validate printed. Run from another working directory,
so the example configs' directory paths must resolve from the config file's folder."""

from __future__ import annotations

import csv
import re
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import CliRunner

from bulkmeet.cli import main

from .helpers import SANDBOX, entries, finals

SAMPLES = Path(__file__).resolve().parents[1] / "samples"
ORGANIZER = "ana@seller.example"
# (sample, arguments, rows): the preset alone, or the example config next to it.
CASES = [
    ("outlook.csv", ["--preset", "outlook", "--timezone", "America/New_York"], 4),
    ("outlook-tricky.csv", ["--preset", "outlook", "--timezone", "America/New_York"], 3),
    ("google.csv", ["--preset", "google", "--organizer", ORGANIZER, "--timezone",
                    "America/Chicago"], 3),
    ("salesforce.csv", ["--preset", "salesforce", "--organizer", ORGANIZER], 3),
    ("outlook-de.csv", ["--preset", "outlook-de", "--encoding", "cp1252", "--timezone",
                        "Europe/Berlin"], 3),
    ("outlook-names.csv", ["--config", "outlook-names.yaml"], 3),
    ("outlook-de.csv", ["--config", "outlook-de.yaml"], 3),
    ("google.csv", ["--config", "google.yaml"], 3),
    ("salesforce.csv", ["--config", "salesforce.yaml"], 3),
]
IDS = [f"{name}{' ' + args[1] if args[0] == '--config' else ''}" for name, args, _ in CASES]
OUTLOOK_COLUMNS = [
    "Subject", "Start Date", "Start Time", "End Date", "End Time", "All day event",
    "Reminder on/off", "Reminder Date", "Reminder Time", "Meeting Organizer",
    "Required Attendees", "Optional Attendees", "Meeting Resources", "Billing Information",
    "Categories", "Description", "Location", "Mileage", "Priority", "Private", "Sensitivity",
    "Show time as",
]


@pytest.fixture(autouse=True)
def elsewhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Not in the repository: relative paths only work through the config's folder. $TZ is
    set to a zone no sample names: it must never be applied."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TZ", "Asia/Kolkata")


def _args(args: list[str]) -> list[str]:
    return [str(SAMPLES / a) if a.endswith(".yaml") else a for a in args]


def _printed_payloads(stdout: str) -> dict[int, dict[str, Any]]:
    found = re.findall(r"^line (\d+): would send POST /v2/meetings\n  (.*)$", stdout, re.M)
    return {int(line): orjson.loads(body) for line, body in found}


@pytest.mark.parametrize(("name", "args", "rows"), CASES, ids=IDS)
def test_validate_finds_every_row_valid(name: str, args: list[str], rows: int) -> None:
    """Exit 0, every row valid, nothing skipped."""
    res = CliRunner().invoke(main, ["validate", str(SAMPLES / name), *_args(args),
                                    "--show", "100"])
    assert res.exit_code == 0, res.output
    assert res.stdout.endswith(f"bulkmeet: {rows} rows read: {rows} valid\n")
    assert len(_printed_payloads(res.stdout)) == rows


@pytest.mark.parametrize(("name", "args", "rows"), CASES, ids=IDS)
def test_run_sandbox_creates_every_row_with_the_payload_validate_showed(
        tmp_path: Path, name: str, args: list[str], rows: int) -> None:
    """run --sandbox creates every row (exit 0), and what it sent for each line is the payload
    validate printed for it."""
    shown = CliRunner().invoke(main, ["validate", str(SAMPLES / name), *_args(args),
                                      "--show", "100"])
    out = tmp_path / "results.jsonl"
    res = CliRunner().invoke(main, ["run", str(SAMPLES / name), *_args(args), *SANDBOX,
                                    "--rate", "1000", "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert Counter(r["status"] for r in finals(out)) == {"created": rows}
    sent = {e["line"]: e["payload"] for e in entries(out) if e["status"] == "sending"}
    assert sent == _printed_payloads(shown.stdout)


@pytest.mark.parametrize(("name", "args", "rows"), CASES, ids=IDS)
def test_check_sandbox_finds_every_organizer_ok(name: str, args: list[str], rows: int) -> None:
    """The preflight passes on every sample: all organizers are Gong users."""
    res = CliRunner().invoke(main, ["check", str(SAMPLES / name), *_args(args), *SANDBOX])
    assert res.exit_code == 0, res.output
    assert " 0 with problems" in res.stdout


def test_every_sample_file_has_a_case() -> None:
    """A sample added without a case here would go untested."""
    exports = {p.name for p in SAMPLES.glob("*.csv")} - {"meetings.csv", "people.csv",
                                                         "sf-owners.csv", "sf-contacts.csv"}
    configs = {p.name for p in SAMPLES.glob("*.yaml")}
    assert exports == {name for name, _, _ in CASES}
    assert configs == {args[1] for _, args, _ in CASES if args[0] == "--config"}


def _header(name: str) -> list[str]:
    with open(SAMPLES / name, encoding="utf-8-sig", newline="") as f:
        return next(csv.reader(f))


def _records(name: str) -> list[dict[str, str]]:
    with open(SAMPLES / name, encoding="utf-8-sig", newline="") as f:
        return list(csv.DictReader(f))


def test_outlook_sample_is_outlooks_layout_in_us_formats() -> None:
    """Outlook's 22 columns in its order, every field quoted, CRLF, US dates and 12-hour
    times with seconds, True/False flags."""
    assert _header("outlook.csv") == OUTLOOK_COLUMNS
    raw = (SAMPLES / "outlook.csv").read_bytes()
    assert raw.startswith(b'"Subject","Start Date",') and b"\r\n" in raw
    assert raw.count(b"\n") == raw.count(b"\r\n")
    for record in _records("outlook.csv"):
        assert re.fullmatch(r"\d{1,2}/\d{1,2}/\d{4}", record["Start Date"])
        assert re.fullmatch(r"\d{1,2}:\d{2}:\d{2} [AP]M", record["Start Time"])
        assert record["All day event"] in ("True", "False")


def test_google_and_salesforce_samples_have_their_exports_columns() -> None:
    """Google's CSV columns; the Salesforce Event fields the preset reads, ISO UTC times."""
    assert _header("google.csv") == ["Subject", "Start Date", "Start Time", "End Date",
                                     "End Time", "All Day Event", "Description", "Location",
                                     "Private"]
    assert {"Id", "Subject", "ActivityDateTime", "DurationInMinutes", "IsAllDayEvent",
            "OwnerId", "WhoId"} <= set(_header("salesforce.csv"))
    for record in _records("salesforce.csv"):
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.000Z", record["ActivityDateTime"])
        assert len(record["Id"]) == 18


@pytest.mark.parametrize("stamp", ["2026-12-16 15:00:00", "2026-12-16T15:00:00.000Z"])
def test_a_salesforce_data_export_maps_to_utc_with_only_preset_and_organizer(
        tmp_path: Path, stamp: str) -> None:
    """Salesforce stores and exports ActivityDateTime in UTC: with nothing but --preset
    salesforce --organizer, a time without an offset is UTC (once every row was refused, and
    following the hint to set a zone made it an hour off)."""
    rows = _records("salesforce.csv")
    for record in rows:
        record["ActivityDateTime"] = stamp
    src = tmp_path / "Event.csv"
    with open(src, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, list(rows[0]), quoting=csv.QUOTE_ALL)
        writer.writeheader()
        writer.writerows(rows)
    res = CliRunner().invoke(main, ["validate", str(src), "--preset", "salesforce",
                                    "--organizer", ORGANIZER, "--show", "1"])
    assert res.exit_code == 0, res.output
    payload = _printed_payloads(res.stdout)[2]
    assert payload["startTime"] == "2026-12-16T15:00:00+00:00"
    assert payload["endTime"] == "2026-12-16T15:30:00+00:00"
    assert "note:" not in res.stderr


def test_tricky_sample_is_tricky_and_reads_right() -> None:
    """BOM, CRLF, a quoted description with newlines, commas and quotes, non-ASCII names; the
    records still start on their own lines, and names come through intact."""
    raw = (SAMPLES / "outlook-tricky.csv").read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf") and b"\r\n" in raw
    text = raw.decode("utf-8-sig")
    description = _records("outlook-tricky.csv")[0]["Description"]
    assert "\r\n" in description and "," in description and '"' in description
    assert not text.isascii()
    res = CliRunner().invoke(main, ["validate", str(SAMPLES / "outlook-tricky.csv"),
                                    "--preset", "outlook", "--timezone", "America/New_York",
                                    "--show", "10"])
    payloads = _printed_payloads(res.stdout)
    assert sorted(payloads) == [2, 7, 9]  # the first record spans lines 2-6, the second 7-8
    assert payloads[2]["title"] == "Café con José – Q1 planning"
    assert {"email": "jose.nunez@acme.example", "displayName": "Núñez, José"} in \
        payloads[2]["invitees"]
    assert payloads[9]["invitees"] == [{"email": "taro.tanaka@example.jp",
                                        "displayName": "田中 太郎"}]
    assert all(i["email"] != payloads[2]["organizerEmail"] for i in payloads[2]["invitees"])


def test_directories_turn_names_and_ids_into_emails() -> None:
    """outlook-names.yaml maps display names, salesforce.yaml OwnerId and WhoId, through the
    CSVs beside them."""
    res = CliRunner().invoke(main, ["validate", str(SAMPLES / "outlook-names.csv"), "--config",
                                    str(SAMPLES / "outlook-names.yaml"), "--show", "1"])
    payload = _printed_payloads(res.stdout)[2]
    assert payload["organizerEmail"] == ORGANIZER
    assert [i["email"] for i in payload["invitees"]] == ["bo.chen@acme.example",
                                                         "carla@acme.example"]
    res = CliRunner().invoke(main, ["validate", str(SAMPLES / "salesforce.csv"), "--config",
                                    str(SAMPLES / "salesforce.yaml"), "--show", "3"])
    payloads = _printed_payloads(res.stdout)
    assert [p["organizerEmail"] for p in payloads.values()] == [
        ORGANIZER, "raj@seller.example", ORGANIZER]
    assert [[i["email"] for i in p["invitees"]] for p in payloads.values()] == [
        ["bo.chen@acme.example"], ["dan@globex.example"], []]
