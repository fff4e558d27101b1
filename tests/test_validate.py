"""`bulkmeet validate`, and the input options it shares with run and check: --preset,
--organizer, --timezone, mapping paths relative to the config file, the local-time default of
the Outlook and Google presets. Plus the end-to-end property: reader + mapping never lose a row."""

from __future__ import annotations

import csv
import io
import re
from collections import Counter
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import pytest
from click.testing import CliRunner, Result
from hypothesis import given, settings
from hypothesis import strategies as st

from bulkmeet.cli import main
from bulkmeet.config import anchor_paths, local_zone
from bulkmeet.errors import InputError
from bulkmeet.mapping import Mapper
from bulkmeet.models import RawRow
from bulkmeet.preflight import Triage
from bulkmeet.reader import read_rows

from .helpers import HEADER, SANDBOX, finals, meeting_row, write_csv
from .sandbox_run import run_against_sandbox

OUTLOOK_HEADER = ["Subject", "Start Date", "Start Time", "End Date", "End Time", "All day event",
                  "Meeting Organizer", "Required Attendees", "Optional Attendees"]


def validate(*args: str) -> Result:
    return CliRunner().invoke(main, ["validate", *args])


def outlook_csv(path: Path, rows: list[list[str]]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(OUTLOOK_HEADER)
        w.writerows(rows)
    return path


def outlook_row(subject: str = "Demo", organizer: str = "ana@seller.example",
                attendees: str = "bo@acme.example", start: str = "9:00:00 AM") -> list[str]:
    return [subject, "12/1/2026", start, "12/1/2026", "10:00:00 AM", "False", organizer,
            attendees, ""]


@pytest.fixture(autouse=True)
def new_york(monkeypatch: pytest.MonkeyPatch) -> None:
    """This computer's zone, as the local-time presets read it: the same on every machine."""
    monkeypatch.setenv("TZ", "America/New_York")


# --- the report and the exit code --------------------------------------------------------------


def test_valid_input_prints_the_first_payloads_exactly_as_sent_and_exits_0(
        tmp_path: Path) -> None:
    """Exit 0; the first 3 payloads (the default) are the mapper's, byte for byte as the client
    serialises them; no network, no file written."""
    src = write_csv(tmp_path / "in.csv", [meeting_row(i) for i in range(5)])
    res = validate(str(src))
    assert res.exit_code == 0, res.output
    mapper = Mapper()
    with read_rows(str(src)) as rows:
        payloads = [mapper.map(r).payload for r in rows]
    for line, payload in zip(range(2, 5), payloads, strict=False):
        assert f"line {line}: would send POST /v2/meetings\n  " \
            f"{orjson.dumps(payload).decode()}\n" in res.stdout
    assert res.stdout.count("would send") == 3
    assert res.stdout.endswith("bulkmeet: 5 rows read: 5 valid\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv"]


@pytest.mark.parametrize(("show", "count"), [("0", 0), ("1", 1), ("10", 4)])
def test_show_sets_how_many_payloads_are_printed(tmp_path: Path, show: str, count: int) -> None:
    """--show N prints the first N payloads (all of them when fewer)."""
    src = write_csv(tmp_path / "in.csv", [meeting_row(i) for i in range(4)])
    res = validate(str(src), "--show", show)
    assert res.exit_code == 0 and res.stdout.count("would send") == count


def test_problems_are_printed_per_row_and_exit_1(tmp_path: Path) -> None:
    """Each invalid row names its line and every problem; a duplicate names the line whose key
    it repeats; exit 1."""
    src = write_csv(tmp_path / "in.csv", [
        meeting_row(0), meeting_row(1, invalid=True),
        meeting_row(2, organizer="not-an-email", invalid=True), meeting_row(3, ext="ext-0")])
    res = validate(str(src), "--show", "0")
    assert res.exit_code == 1, res.output
    lines = res.stdout.splitlines()
    assert lines[0] == "line 3: invalid"
    assert lines[1].startswith("  line 3, column 'endTime' (endTime): ")
    assert lines[2] == "line 4: invalid"
    assert {lines[3][:25], lines[4][:25]} == {"  line 4, column 'endTime",
                                              "  line 4, column 'organiz"}
    assert lines[5] == ("line 5: duplicate: same key 'ext-0' as line 2; run would not send it")
    assert lines[6] == "bulkmeet: 4 rows read: 1 valid, 2 invalid, 1 duplicate"


def test_filtered_rows_are_reported_but_do_not_fail(tmp_path: Path) -> None:
    """Rows the mapping's filter leaves out are listed as skipped, with the reason; exit 0."""
    rows = [[*meeting_row(0), ""], [*meeting_row(1), "yes"]]
    src = tmp_path / "in.csv"
    with open(src, "w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([[*HEADER, "Canceled"], *rows])
    cfg = tmp_path / "c.yaml"
    cfg.write_text("mapping:\n  filter: {skip_if: {column: Canceled, equals: ['yes']}}\n")
    res = validate(str(src), "--config", str(cfg))
    assert res.exit_code == 0, res.output
    assert "line 3: skipped: line 3, column 'Canceled': 'yes' matches mapping.filter.skip_if" \
        in res.stdout
    assert res.stdout.endswith("2 rows read: 1 valid, 1 skipped\n")


def test_missing_required_columns_are_named_once_up_front(tmp_path: Path) -> None:
    """A header without a column the mapping needs: one line naming it and the columns found,
    exit 2, and no row-by-row report."""
    src = tmp_path / "in.csv"
    src.write_text("startTime,title\n" + "2026-12-01T09:00:00Z,x\n" * 50)
    res = validate(str(src))
    assert res.exit_code == 2, res.output
    assert res.stdout == ""
    assert res.stderr == (
        f"bulkmeet: error: {src}: the input has no columns 'endTime' (mapping.endTime), "
        "'organizerEmail' (mapping.organizerEmail), 'externalId' (mapping.externalId), "
        "'invitees' (mapping.invitees); its columns are 'startTime', 'title'. Nothing was sent: "
        "name the input's columns under `mapping:` in the config, or pass --preset for a known "
        "export (google, outlook, outlook-de, salesforce)\n")


@pytest.mark.parametrize("title", ["Subject", '{template: "{Type}: {Account}"}'])
def test_an_optional_field_mapped_to_a_missing_column_is_a_header_error(
        tmp_path: Path, title: str) -> None:
    """title: Subject (or a template of absent columns) on a file without them is refused up
    front, not sent as an empty or ':' title on every row (issue 11 item 3)."""
    src = write_csv(tmp_path / "in.csv", [meeting_row(i) for i in range(3)])
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"mapping:\n  title: {title}\n")
    res = validate(str(src), "--config", str(cfg))
    assert res.exit_code == 2, res.output
    assert "the input has no column" in res.stderr and "(mapping.title)" in res.stderr
    assert res.stderr.count("\n") == 1 and res.stdout == ""


@pytest.mark.parametrize(("data", "name", "message"), [
    (b"", "in.csv", "no header row: the file has no data"),
    ("\ufeff" + ",".join(HEADER) + "\r\n", "in.csv",
     "no data rows: the file has a header and nothing else"),
    (b"", "in.jsonl", "no data rows: the file is empty"),
    (b"\n\n", "in.jsonl", "no data rows: the file is empty"),
])
def test_an_input_without_rows_is_one_line_and_exit_2(tmp_path: Path, data: bytes | str,
                                                        name: str, message: str) -> None:
    """An empty CSV, a header-only CSV and an empty JSONL all say so in one line, exit 2."""
    src = tmp_path / name
    if isinstance(data, str):
        src.write_text(data, encoding="utf-8")
    else:
        src.write_bytes(data)
    res = validate(str(src))
    assert res.exit_code == 2, res.output
    assert res.stderr == f"bulkmeet: error: {src}: {message}\n"


def test_dropped_invitees_are_printed_as_warnings_of_their_row(tmp_path: Path) -> None:
    """unresolved_invitees: drop keeps the row valid but says who was left out, and where."""
    src = outlook_csv(tmp_path / "in.csv", [outlook_row(attendees="Bo Chen;Nobody")])
    cfg = tmp_path / "c.yaml"
    cfg.write_text("timezone: America/New_York\n"
                   "mapping:\n  preset: outlook\n  invitee_directory: {Bo Chen: bo@acme.example}"
                   "\n  unresolved_invitees: drop\n")
    res = validate(str(src), "--config", str(cfg))
    assert res.exit_code == 0, res.output
    assert re.search(r"^line 2: warning: line 2, .*'Nobody' is not in mapping.invitee_directory"
                     r"; dropped$", res.stdout, re.M)


def test_jsonl_from_stdin(tmp_path: Path) -> None:
    """INPUT may be - with --format, as for run."""
    row = dict(zip(HEADER, meeting_row(0), strict=True))
    res = CliRunner().invoke(main, ["validate", "-", "--format", "jsonl"],
                             input=orjson.dumps(row) + b"\n")
    assert res.exit_code == 0, res.output
    assert "1 row read: 1 valid" in res.stdout


# --- --out -------------------------------------------------------------------------------------


def test_out_holds_the_records_run_writes_for_rows_it_does_not_send(tmp_path: Path) -> None:
    """validate --out and run --sandbox record the same invalid, duplicate and skipped rows:
    same line, key, status and errors."""
    rows = [[*meeting_row(0), ""], [*meeting_row(1, invalid=True), ""],
            [*meeting_row(2, ext="ext-0"), ""], [*meeting_row(3), "yes"],
            [*meeting_row(4, organizer="x"), ""]]
    src = tmp_path / "in.csv"
    with open(src, "w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([[*HEADER, "Canceled"], *rows])
    cfg = tmp_path / "c.yaml"
    cfg.write_text("mapping:\n  filter: {skip_if: {column: Canceled, equals: ['yes']}}\n")
    checked, ran = tmp_path / "v.jsonl", tmp_path / "r.jsonl"
    res = validate(str(src), "--config", str(cfg), "--out", str(checked))
    assert res.exit_code == 1 and f"records of rows not sent: {checked}" in res.stdout
    res = CliRunner().invoke(main, ["run", str(src), "--config", str(cfg), *SANDBOX,
                                    "--rate", "1000", "--out", str(ran)])
    assert res.exit_code == 1, res.output

    def fields(path: Path) -> list[tuple[Any, ...]]:
        return sorted((r["line"], r["key"], r["status"], tuple(r["errors"]))
                      for r in finals(path) if r["status"] != "created")

    assert fields(checked) == fields(ran)
    assert Counter(r[2] for r in fields(checked)) == {"invalid": 2, "duplicate": 1, "skipped": 1}


def test_out_csv_is_started_anew(tmp_path: Path) -> None:
    """A second validate replaces its own earlier file instead of appending to it."""
    src = write_csv(tmp_path / "in.csv", [meeting_row(0, invalid=True)])
    out = tmp_path / "v.csv"
    for _ in range(2):
        assert validate(str(src), "--out", str(out)).exit_code == 1
    with open(out, newline="", encoding="utf-8") as f:
        records = list(csv.DictReader(f))
    assert [(r["line"], r["status"]) for r in records] == [("2", "invalid")]


def test_out_refuses_a_runs_results_file(tmp_path: Path) -> None:
    """A results file with created meetings is never overwritten: exit 2, the file intact."""
    src = write_csv(tmp_path / "in.csv", [meeting_row(0)])
    out = tmp_path / "r.jsonl"
    assert CliRunner().invoke(main, ["run", str(src), *SANDBOX, "--rate", "1000",
                                     "--out", str(out)]).exit_code == 0
    before = out.read_bytes()
    res = validate(str(src), "--out", str(out))
    assert res.exit_code == 2
    assert "holds the results of a run" in res.stderr
    assert out.read_bytes() == before


# --- exit 2 ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("args", "message"), [
    (["missing.csv"], "input file missing.csv does not exist"),
    (["{src}", "--config", "{cfg}"], "unknown key 'rat'"),
    (["{src}", "--preset", "lotus"], "Invalid value for '--preset'"),
    (["{src}", "--timezone", "Mars/Olympus"], "not an IANA time zone name"),
    (["{src}", "--organizer", "someone"], "mapping.organizerEmail"),
    (["{src}", "--preset", "salesforce"], "Salesforce exports OwnerId, a user id, not an email"),
    (["{src}", "--preset", "google"], "Google Calendar's CSV export has no organizer column"),
    (["{cp1252}"], "if the file was saved by Excel on Windows, set `encoding: cp1252`"),
    (["{src}", "--out", "{src}"], "is the input file"),
])
def test_usage_config_and_unreadable_input_exit_2(tmp_path: Path, args: list[str],
                                                  message: str) -> None:
    """Bad flags, config, preset without an organizer, or an undecodable header: exit 2 with
    one clear line, before any row is looked at."""
    src = write_csv(tmp_path / "in.csv", [meeting_row(0)])
    cfg = tmp_path / "c.yaml"
    cfg.write_text("rat: 3\n")
    cp1252 = tmp_path / "win.csv"
    cp1252.write_bytes("Début,Fin\n1,2\n".encode("cp1252"))
    res = validate(*(a.format(src=src, cfg=cfg, cp1252=cp1252) for a in args))
    assert res.exit_code == 2, res.output
    assert message in res.output
    assert "rows read" not in res.stdout


# --- --preset, --organizer, --timezone, config paths ---------------------------------------------


def _payload(res: Result, line: int = 2) -> dict[str, Any]:
    match = re.search(rf"^line {line}: would send POST /v2/meetings\n  (.*)$", res.stdout, re.M)
    assert match, res.output
    payload: dict[str, Any] = orjson.loads(match.group(1))
    return payload


def test_config_mapping_keys_override_the_preset_and_the_flag_overrides_the_config(
        tmp_path: Path) -> None:
    """--preset outlook beats the file's mapping.preset; the file's other mapping keys (title
    here) still override the preset's."""
    src = outlook_csv(tmp_path / "in.csv", [outlook_row("Kickoff")])
    cfg = tmp_path / "c.yaml"
    cfg.write_text("timezone: America/New_York\n"
                   "mapping:\n  preset: google\n  title: {template: 'Call: {Subject}'}\n")
    res = validate(str(src), "--config", str(cfg), "--preset", "outlook")
    assert res.exit_code == 0, res.output
    payload = _payload(res)
    assert payload["title"] == "Call: Kickoff"
    assert payload["invitees"] == [{"email": "bo@acme.example"}]  # outlook's, not google's


def test_organizer_flag_replaces_the_organizer_of_every_row(tmp_path: Path) -> None:
    """--organizer EMAIL is mapping.organizerEmail: {const: EMAIL}, over the preset's column."""
    src = outlook_csv(tmp_path / "in.csv", [outlook_row(organizer="someone@else.example")])
    res = validate(str(src), "--preset", "outlook", "--organizer", "ana@seller.example",
                   "--timezone", "America/New_York")
    assert res.exit_code == 0, res.output
    assert _payload(res)["organizerEmail"] == "ana@seller.example"


def test_an_outlook_export_with_no_zone_is_refused_once_with_the_suggestion(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Outlook's times carry no zone, and this computer's is never applied unasked (on a CI
    runner in UTC a US export would land hours off, exit 0): with no zone named, validate and
    run stop on the file (exit 2), say it once whatever the number of rows, suggest this
    computer's zone ($TZ here) as the flag, and run sends nothing."""
    src = outlook_csv(tmp_path / "in.csv", [outlook_row(f"M{i}") for i in range(20)])
    suggestion = "--timezone America/New_York"
    res = validate(str(src), "--preset", "outlook")
    assert res.exit_code == 2, res.output
    assert res.stderr.count("has no UTC offset") == 1
    assert suggestion in res.stderr
    assert "line 2, columns 'Start Date' + 'Start Time' (startTime)" in res.stderr
    assert res.stdout == ""
    res, requests = run_against_sandbox(monkeypatch, [
        "run", str(src), "--preset", "outlook", "--rate", "1000", "--out",
        str(tmp_path / "r.jsonl")])
    assert requests == 0
    assert res.exit_code == 2, res.output
    assert res.stderr.count("has no UTC offset") == 1
    assert suggestion in res.stderr
    res = validate(str(src), "--preset", "outlook", "--timezone", "America/Chicago")
    assert res.exit_code == 0, res.output
    assert _payload(res)["startTime"] == "2026-12-01T09:00:00-06:00"
    assert "note:" not in res.stderr


@pytest.mark.parametrize(("args", "config", "start"), [
    (["--timezone", "Europe/Berlin"], "", "2026-12-01T09:00:00+01:00"),
    ([], "timezone: Asia/Tokyo\n", "2026-12-01T09:00:00+09:00"),
    (["--timezone", "Europe/Berlin"], "timezone: Asia/Tokyo\n", "2026-12-01T09:00:00+01:00"),
])
def test_a_configured_zone_wins_without_a_note(tmp_path: Path, args: list[str], config: str,
                                               start: str) -> None:
    """`timezone:` or --timezone (the flag first) replaces the local default, silently."""
    src = outlook_csv(tmp_path / "in.csv", [outlook_row()])
    cfg = tmp_path / "c.yaml"
    cfg.write_text(config + "mapping: {preset: outlook}\n")
    res = validate(str(src), "--config", str(cfg), *args)
    assert res.exit_code == 0, res.output
    assert _payload(res)["startTime"] == start
    assert "note:" not in res.stderr


def test_other_inputs_get_no_local_default(tmp_path: Path) -> None:
    """Without a preset, a file whose first time has no offset stops the same way, once; one
    whose first time has an offset goes on, and a later row without one is that row's error."""
    rows = [["2026-12-01T09:00:00", "2026-12-01T10:00:00", "T", "ana@seller.example", f"e{i}",
             ""] for i in range(5)]
    res = validate(str(write_csv(tmp_path / "in.csv", rows)))
    assert res.exit_code == 2
    assert res.stderr.count("has no UTC offset") == 1
    assert "note:" not in res.stderr
    first = ["2026-12-01T09:00:00Z", "2026-12-01T10:00:00Z", "T", "ana@seller.example", "z", ""]
    res = validate(str(write_csv(tmp_path / "mixed.csv", [first, *rows[:1]])))
    assert res.exit_code == 1
    assert "no UTC offset and no time zone is set" in res.stdout


def test_directory_paths_are_read_from_the_config_files_folder(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """invitee_directory and a field's directory: relative to the config file, whatever the
    working directory; the same config then works for run and its --errors-out."""
    conf = tmp_path / "conf"
    conf.mkdir()
    (conf / "people.csv").write_text("name,email\nAna Silva,ana@seller.example\n"
                                     "Bo Chen,bo@acme.example\n")
    (conf / "extra.csv").write_text("Carla,carla@acme.example\n")
    cfg = conf / "c.yaml"
    cfg.write_text("timezone: America/New_York\n"
                   "mapping:\n  preset: outlook\n  invitee_directory: people.csv\n"
                   "  invitees: {columns: [Required Attendees], separator: ';', "
                   "directory: extra.csv}\n")
    src = outlook_csv(tmp_path / "in.csv", [outlook_row(organizer="Ana Silva",
                                                        attendees="Carla")])
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    res = validate(str(src), "--config", str(cfg))
    assert res.exit_code == 0, res.output
    payload = _payload(res)
    assert payload["organizerEmail"] == "ana@seller.example"
    assert payload["invitees"] == [{"email": "carla@acme.example", "displayName": "Carla"}]
    res = CliRunner().invoke(main, ["run", str(src), "--config", str(cfg), *SANDBOX, "--rate",
                                    "1000", "--out", "r.jsonl", "--errors-out", "fix.csv"])
    assert res.exit_code == 0, res.output


def test_anchor_paths_rewrites_only_relative_csv_paths() -> None:
    """Relative directory paths move under the base; absolute ones, inline directories and
    other keys stay; the original mapping is left as it was."""
    mapping = {"invitee_directory": "people.csv",
               "organizerEmail": {"column": "OwnerId", "directory": "/abs/owners.csv"},
               "invitees": {"column": "WhoId", "directory": {"Bo": "bo@acme.example"}},
               "title": "people.csv"}
    before = repr(mapping)
    out = anchor_paths(mapping, Path("/base"))
    assert out["invitee_directory"] == str(Path("/base/people.csv"))
    assert out["organizerEmail"] == {"column": "OwnerId", "directory": "/abs/owners.csv"}
    assert out["invitees"] == mapping["invitees"] and out["title"] == "people.csv"
    assert repr(mapping) == before
    assert anchor_paths({"organizerEmail": "Owner"}, Path("/b")) == {"organizerEmail": "Owner"}


def test_local_zone_reads_tz_in_its_forms() -> None:
    """$TZ as a name or as a :path into a zoneinfo tree; junk falls through to the system's
    setting (a real zone or None, never junk)."""
    assert local_zone({"TZ": "Europe/Berlin"}) == "Europe/Berlin"
    assert local_zone({"TZ": ":/usr/share/zoneinfo/Asia/Tokyo"}) == "Asia/Tokyo"
    fallback = local_zone({"TZ": "Nowhere/Land"})
    assert fallback != "Nowhere/Land"
    if fallback is not None:
        ZoneInfo(fallback)


# --- properties: the reader and the mapping never lose a row -----------------------------------


MAPPERS = {
    "default": Mapper(timezone="UTC"),
    "outlook": Mapper({"preset": "outlook"}, timezone="America/New_York"),
    "google": Mapper({"preset": "google", "organizerEmail": {"const": "a@b.example"}},
                     timezone="Europe/Berlin"),
    "salesforce": Mapper({"preset": "salesforce", "organizerEmail": {"const": "a@b.example"}}),
}
KNOWN_COLUMNS = sorted({c for m in MAPPERS.values() for c in m.columns})
# Cells: any text, undecodable bytes (kept by surrogateescape), and values the mappers can read.
cells = st.one_of(
    st.text(max_size=12),
    st.binary(max_size=6).map(lambda b: b.decode("utf-8", "surrogateescape")),
    st.sampled_from(["", " ", "\r\n", '"', "a,b", "x;y", "12/1/2026", "9:00:00 AM", "True",
                     "2026-12-01T09:00:00Z", "30", "ana@seller.example", "Bo <bo@acme.example>"]),
)
names = st.one_of(st.sampled_from(KNOWN_COLUMNS),
                  st.from_regex(r"[A-Za-z][A-Za-z0-9 ]{0,6}[A-Za-z0-9]", fullmatch=True))
_NEWLINE = re.compile(r"\r\n|\r|\n")


@st.composite
def csv_files(draw: st.DrawFn) -> tuple[bytes, str, list[int]]:
    """A CSV file (header, records of any width and content, BOM and line ends drawn) and the
    lines where its non-blank records start."""
    header = draw(st.lists(names, min_size=1, max_size=8, unique_by=str.strip))
    delimiter = draw(st.sampled_from([",", ";", "\t"]))
    ending = draw(st.sampled_from(["\r\n", "\n"]))
    records = draw(st.lists(st.lists(cells, min_size=1, max_size=len(header) + 2), max_size=8))
    quote_all = draw(st.booleans())
    if ending == "\n" and any("\r" in cell for record in records for cell in record):
        quote_all = True  # csv.writer leaves a bare \r unquoted unless it ends lines
    out = io.StringIO(newline="")
    writer = csv.writer(out, delimiter=delimiter, lineterminator=ending,
                        quoting=csv.QUOTE_ALL if quote_all else csv.QUOTE_MINIMAL)
    writer.writerow(header)
    starts = []
    for record in records:
        line = len(_NEWLINE.findall(out.getvalue())) + 1
        writer.writerow(record)
        if "".join(record).strip():
            starts.append(line)
    bom = b"\xef\xbb\xbf" if draw(st.booleans()) else b""
    return bom + out.getvalue().encode("utf-8", "surrogateescape"), delimiter, starts


@settings(max_examples=150, deadline=None)
@given(data=csv_files(), name=st.sampled_from(sorted(MAPPERS)))
def test_reader_and_mapping_give_one_row_per_non_blank_record(
        data: tuple[bytes, str, list[int]], name: str) -> None:
    """Whatever the CSV holds, read_rows + Mapper.map yield exactly one Row per non-blank record,
    at the line it starts on; each is sendable, invalid with reasons naming its line, or
    skipped; never an internal error. Triage counts every one of them once."""
    blob, delimiter, starts = data
    mapper = MAPPERS[name]
    triage = Triage(mapper)
    rows: list[Any] = []
    with read_rows("-", fmt="csv", delimiter=delimiter, stdin=io.BytesIO(blob)) as raws:
        try:
            rows.extend(mapper.map(raw) for raw in raws)
        except InputError as exc:  # no data row at all: said once, at the end
            assert not starts and ": no data rows: " in str(exc)
    assert [row.line for row in rows] == starts
    for row in rows:
        assert row.valid or row.errors or row.skipped_reason
        assert not any("internal error" in e for e in row.errors), row.errors
        assert all(e.startswith(f"line {row.line}") for e in row.errors)
        triage(RawRow(row.line, row.fields, None if row.fields is not None else "x"))
    assert triage.counts["rows"] == len(rows) == sum(
        triage.counts[k] for k in ("valid", "invalid", "duplicate", "skipped"))


@settings(max_examples=150, deadline=None)
@given(body=st.binary(max_size=400), name=st.sampled_from(sorted(MAPPERS)))
def test_any_bytes_under_a_header_map_row_for_row(body: bytes, name: str) -> None:
    """Arbitrary bytes after a header of the mapper's columns: reading raises nothing, and the
    mapping turns each RawRow into one Row at the same line, none lost or added."""
    mapper = MAPPERS[name]
    header = ",".join(f'"{c}"' for c in sorted(mapper.columns)).encode() + b"\r\n"
    raws: list[RawRow] = []
    try:
        raws.extend(read_rows("-", fmt="csv", delimiter=",", stdin=io.BytesIO(header + body)))
    except InputError as exc:  # utf-8 fails mid-stream only when there is no data row at all
        assert not raws and ": no data rows: " in str(exc), exc
    rows = [mapper.map(raw) for raw in raws]
    assert [r.line for r in rows] == [r.line for r in raws]
    assert all(not any("internal error" in e for e in r.errors) for r in rows)
