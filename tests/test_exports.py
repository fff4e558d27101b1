"""Real export layouts without surprises (issue 15): one decision per file for its encoding,
all-day words in the languages Outlook writes, layouts recognised, no requests that cannot pass,
people's names from columns and directories."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import CliRunner, Result

from bulkmeet.cli import main

from .helpers import HEADER, finals
from .sandbox_run import run_against_sandbox

OUTLOOK_HEADER = ["Subject", "Start Date", "Start Time", "End Date", "End Time", "All day event",
                  "Meeting Organizer", "Required Attendees", "Optional Attendees"]


def validate(*args: str) -> Result:
    return CliRunner().invoke(main, ["validate", *args])


def payloads(stdout: str) -> list[dict[str, Any]]:
    lines = stdout.splitlines()
    return [orjson.loads(lines[i + 1]) for i, line in enumerate(lines)
            if line.endswith("would send POST /v2/meetings")]


def write(path: Path, header: list[str], rows: list[list[str]], *, encoding: str = "utf-8",
          delimiter: str = ",", bom: bool = False) -> Path:
    text = "\r\n".join(delimiter.join(cells) for cells in [header, *rows]) + "\r\n"
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode(encoding))
    return path


def meeting(i: int, title: str) -> list[str]:
    return [f"2026-12-01T{9 + i % 8:02d}:00:00Z", f"2026-12-01T{9 + i % 8:02d}:30:00Z", title,
            "ana@seller.example", f"crm-{i}", "bo@acme.example"]


# --- 2. encoding: one decision per file --------------------------------------------------------


def test_a_cp1252_file_with_and_without_umlaut_rows_sends_nothing_and_says_what_to_set(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Once the rows without umlauts were sent and the others refused, each with the hint: now
    the file is refused whole, once, exit 2, no request; with --encoding cp1252 all are sent."""
    titles = ["Plain", "Müller Demo", "Also plain", "Große Runde", "Last"]
    src = write(tmp_path / "in.csv", HEADER, [meeting(i, t) for i, t in enumerate(titles)],
                encoding="cp1252")
    out = tmp_path / "r.jsonl"
    res, requests = run_against_sandbox(monkeypatch, ["run", str(src), "--rate", "1000",
                                                      "--out", str(out)])
    assert res.exit_code == 2, res.output
    assert requests == 0
    assert res.stderr.count("is not valid utf-8") == 1
    assert f"{src}: line 3: byte 0xFC is not valid utf-8" in res.stderr
    assert "set `encoding: cp1252` in the config (or pass --encoding cp1252)" in res.stderr
    res = validate(str(src))
    assert res.exit_code == 2 and res.stdout == ""
    res, requests = run_against_sandbox(monkeypatch, ["run", str(src), "--rate", "1000",
                                                      "--out", str(out), "--encoding", "cp1252"])
    assert res.exit_code == 0, res.output
    assert requests == 5
    assert [f["status"] for f in finals(out)] == ["created"] * 5


def test_a_bom_wins_over_a_contradicting_encoding_with_a_warning(tmp_path: Path) -> None:
    """`encoding: cp1252` on a UTF-8 file with a BOM: read as UTF-8 (not 'ChloÃ© Dubois'),
    and a warning says why."""
    cfg = tmp_path / "c.yaml"
    cfg.write_text("encoding: cp1252\n")
    for n, args in enumerate((["--config", str(cfg)], ["--encoding", "cp1252"])):
        # (a new file each time: the warning is said once a process for a file)
        src = write(tmp_path / f"in{n}.csv", HEADER, [meeting(0, "Chloé Dubois")], bom=True)
        res = validate(str(src), *args)
        assert res.exit_code == 0, res.output
        assert payloads(res.stdout)[0]["title"] == "Chloé Dubois"
        assert "starts with a UTF-8 byte-order mark: read as UTF-8, not cp1252" in res.stderr


def test_utf8_read_as_cp1252_is_warned_about(tmp_path: Path) -> None:
    src = write(tmp_path / "in.csv", HEADER, [meeting(0, "Chloé Dubois")])
    res = validate(str(src), "--encoding", "cp1252")
    assert res.exit_code == 0, res.output
    assert "decodes as UTF-8 and holds non-ASCII text, but `encoding` says cp1252" in res.stderr


def test_directory_csvs_follow_the_encoding_rules(tmp_path: Path) -> None:
    """invitee_directory is read with `encoding:` (once: a bare "'utf-8' codec can't decode"),
    and one that does not decode is one error naming the key, the file and what to set."""
    people = tmp_path / "people.csv"
    people.write_bytes("name,email\nJürgen Groß,juergen@acme.example\nAna Silva,"
                       "ana@seller.example\n".encode("cp1252"))
    src = write(tmp_path / "in.csv", OUTLOOK_HEADER, [[
        "Demo", "12/1/2026", "9:00:00 AM", "12/1/2026", "10:00:00 AM", "False", "Ana Silva",
        "Jürgen Groß", ""]], encoding="cp1252")
    cfg = tmp_path / "c.yaml"
    cfg.write_text("timezone: Europe/Berlin\nmapping:\n  preset: outlook\n"
                   "  invitee_directory: people.csv\n")
    res = validate(str(src), "--config", str(cfg))
    assert res.exit_code == 2
    assert res.stderr.startswith(f"bulkmeet: error: mapping.invitee_directory: {people}: line 2: "
                                 "byte 0xFC is not valid utf-8")
    assert "--encoding cp1252" in res.stderr
    res = validate(str(src), "--config", str(cfg), "--encoding", "cp1252")
    assert res.exit_code == 0, res.output
    assert payloads(res.stdout)[0]["invitees"] == [
        {"email": "juergen@acme.example", "displayName": "Jürgen Groß"}]


def test_an_unknown_encoding_is_one_error(tmp_path: Path) -> None:
    src = write(tmp_path / "in.csv", HEADER, [meeting(0, "x")])
    res = validate(str(src), "--encoding", "klingon")
    assert res.exit_code == 2
    assert "encoding 'klingon' is not a text codec" in res.stderr


# --- 3. all-day words ----------------------------------------------------------------------------


def outlook(path: Path, flags: list[str]) -> Path:
    return write(path, OUTLOOK_HEADER, [[
        f"M{i}", "12/1/2026", "9:00:00 AM", "12/1/2026", "10:00:00 AM", flag,
        "ana@seller.example", "bo@acme.example", ""] for i, flag in enumerate(flags)])


def test_ein_is_not_false_and_an_unknown_word_lists_the_accepted_ones(tmp_path: Path) -> None:
    """German Outlook writes Ein/Aus: "Ein" once counted as false and the all-day row went out
    as a 24-hour meeting. Now each language's words count, and any other word is invalid."""
    words = ["Ein", "Aus", "Vrai", "Faux", "Verdadero", "Falso", "Waar", "Onwaar", "True",
             "false", "", "Maybe"]
    src = outlook(tmp_path / "in.csv", words)
    res = validate(str(src), "--preset", "outlook", "--timezone", "Europe/Berlin",
                   "--show", "0")
    assert res.exit_code == 1
    invalid = {int(line.split()[1].rstrip(":")) for line in res.stdout.splitlines()
               if line.endswith(": invalid")}
    all_day = {2, 4, 6, 8, 10}  # Ein, Vrai, Verdadero, Waar, True
    assert invalid == all_day | {13}  # and Maybe
    assert "line 2, column 'All day event' (all day): 'Ein' marks an all-day event" in res.stdout
    assert ("line 13, column 'All day event' (all day): 'Maybe' is neither a true nor a false "
            "word (true: 1, ein, ja, on, oui, si, sí, true, verdadero, vrai, waar, wahr, x, y, "
            "yes; false: 0, aus, falsch, false, falso, faux, n, nee, nein, no, non, off, onwaar"
            ", or empty)") in res.stdout


@pytest.mark.parametrize(("choice", "valid", "skipped"), [
    ("reject", 1, 0), ("skip", 1, 1), ("allow", 2, 0)])
def test_all_day_flag_chooses_what_happens_to_all_day_rows(
        tmp_path: Path, choice: str, valid: int, skipped: int) -> None:
    src = outlook(tmp_path / "in.csv", ["Ein", "Aus"])
    res = validate(str(src), "--preset", "outlook", "--timezone", "Europe/Berlin",
                   "--all-day", choice, "--show", "5")
    assert res.exit_code == (0 if choice != "reject" else 1), res.output
    assert f"{valid} valid" in res.stdout.splitlines()[-1]
    assert (f"{skipped} skipped" in res.stdout) == bool(skipped)
    if choice == "allow":
        assert payloads(res.stdout)[0]["startTime"] == "2026-12-01T00:00:00+01:00"


# --- 5. no calls that cannot pass ----------------------------------------------------------------


def test_100_rows_of_an_unknown_organizer_cost_at_most_1_request(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Gong's 404 "No Gong user found" holds for every row of that organizer: the rest are
    recorded failed without a request (once: 100 rows, 100 requests), naming the line where
    Gong refused; the other organizer's rows are all sent, at the usual concurrency."""
    from bulkmeet.sandbox import SandboxSettings

    rows = [meeting(i, f"M{i}") for i in range(110)]
    for i, row in enumerate(rows):
        if i % 11:  # 100 rows of gone@, 10 of ana@
            row[3] = "gone@seller.example"
    src = write(tmp_path / "in.csv", HEADER, rows)
    out = tmp_path / "r.jsonl"
    settings = SandboxSettings(rate=None, unknown_organizers=frozenset({"gone@seller.example"}))
    res, requests = run_against_sandbox(monkeypatch, ["run", str(src), "--rate", "1000",
                                                      "--out", str(out)], settings)
    assert res.exit_code == 1, res.output
    assert requests == 1 + 10
    records = finals(out)
    gone = [r for r in records if r["status"] == "failed"]
    assert len(gone) == 100
    refused = [r for r in gone if r.get("httpStatus") == 404]
    assert len(refused) == 1
    line = refused[0]["line"]
    for r in gone:
        if r is not refused[0]:
            assert r["errors"][0].startswith(f"not sent: Gong refused this organizer on line "
                                             f"{line} (No Gong user found")
    assert sum(r["status"] == "created" for r in records) == 10


# --- 4. layouts ----------------------------------------------------------------------------------

SAMPLES = Path(__file__).resolve().parents[1] / "samples"


@pytest.mark.parametrize(("sample", "args", "preset"), [
    ("outlook.csv", [], "outlook"),
    ("google.csv", [], "google"),
    ("outlook-de.csv", ["--encoding", "cp1252"], "outlook-de"),
    ("outlook-de.csv", ["--encoding", "cp1252", "--preset", "outlook"], "outlook-de"),
    ("salesforce.csv", [], "salesforce"),
])
def test_a_known_layout_gets_the_preset_to_use(sample: str, args: list[str],
                                               preset: str) -> None:
    """A header that is a known export's layout: the error names the preset, not only the
    missing columns."""
    res = validate(str(SAMPLES / sample), *args)
    assert res.exit_code == 2
    assert f"its header is the {preset} export's layout: try --preset {preset}" in res.stderr


def test_the_german_outlook_sample_reads_right() -> None:
    res = validate(str(SAMPLES / "outlook-de.csv"), "--config", str(SAMPLES / "outlook-de.yaml"))
    assert res.exit_code == 0, res.output
    first = payloads(res.stdout)[0]
    assert first["title"] == "Erstgespräch - Müller GmbH"
    assert first["startTime"] == "2026-12-01T09:00:00+01:00"
    assert first["organizerEmail"] == "ana@seller.example"
    assert first["invitees"] == [{"email": "juergen.gross@mueller.example"},
                                 {"email": "petra@mueller.example"}]


# --- 6. people -----------------------------------------------------------------------------------


def test_a_directory_of_ids_never_sends_the_id_as_a_display_name() -> None:
    """samples/salesforce.yaml looks WhoId up in sf-contacts.csv: the invitee is the email
    alone, not {displayName: '0035e00000Xy1abAAA'}; a name looked up keeps its name."""
    res = validate(str(SAMPLES / "salesforce.csv"), "--config", str(SAMPLES / "salesforce.yaml"))
    assert res.exit_code == 0, res.output
    assert payloads(res.stdout)[0]["invitees"] == [
        {"email": "bo.chen@acme.example", "firstName": "Bo", "lastName": "Chen"}]
    res = validate(str(SAMPLES / "outlook-names.csv"), "--config",
                   str(SAMPLES / "outlook-names.yaml"), "--show", "1")
    assert {"email": "bo.chen@acme.example", "displayName": "Bo Chen"} in \
        payloads(res.stdout)[0]["invitees"]


def test_invitees_with_their_names_from_the_rows_own_columns(tmp_path: Path) -> None:
    """A CRM report with a contact per row, in columns of its own: `invitees.people` sends
    each with the names its cells hold; an empty email cell is no invitee; a bad one makes the
    row invalid naming its columns; a column the header lacks is one file-level error."""
    header = "Start,End,Subject,Owner,Contact Email,First,Last,Helper\n"
    rows = ("2026-12-01T09:00:00Z,2026-12-01T09:30:00Z,Kickoff,ana@seller.example,"
            "bo@client.example,Bo,Chen,cy@client.example\n"
            "2026-12-02T09:00:00Z,2026-12-02T09:30:00Z,Review,ana@seller.example,,,,\n"
            "2026-12-03T09:00:00Z,2026-12-03T09:30:00Z,Demo,ana@seller.example,"
            "not-an-email,Di,,\n")
    src = tmp_path / "crm.csv"
    src.write_text(header + rows, encoding="utf-8")
    cfg = tmp_path / "crm.yaml"
    cfg.write_text("mapping:\n  title: Subject\n  startTime: Start\n  endTime: End\n"
                   "  organizerEmail: Owner\n  externalId: null\n  invitees:\n    people:\n"
                   "      - {email: Contact Email, firstName: First, lastName: Last}\n"
                   "      - {email: Helper}\n", encoding="utf-8")
    res = validate(str(src), "--config", str(cfg), "--show", "2")
    assert res.exit_code == 1, res.output
    shown = payloads(res.stdout)
    assert shown[0]["invitees"] == [
        {"email": "bo@client.example", "firstName": "Bo", "lastName": "Chen"},
        {"email": "cy@client.example"}]
    assert shown[1]["invitees"] == []
    assert "line 4, columns 'Contact Email', 'First', 'Last' (invitees)" in res.output
    assert "not-an-email" in res.output

    cfg.write_text(cfg.read_text().replace("lastName: Last", "lastName: Surname"))
    res = validate(str(src), "--config", str(cfg))
    assert res.exit_code == 2
    assert "no column 'Surname' (mapping.invitees)" in res.output

    cfg.write_text("mapping:\n  invitees:\n    people:\n      - {firstName: First}\n")
    res = validate(str(src), "--config", str(cfg))
    assert res.exit_code == 2 and "must name at least the email column" in res.output


def test_a_directory_header_gives_the_invitees_names(tmp_path: Path) -> None:
    """Directory columns after name and email named FirstName/LastName/DisplayName (in any of
    the usual spellings) go into the invitee; an id still never becomes a display name."""
    people = tmp_path / "people.csv"
    people.write_text("name,email,Full Name,first_name\nBo,bo@client.example,Bo Chen (Acme),Bo\n",
                      encoding="utf-8")
    src = tmp_path / "in.csv"
    src.write_text("Start,End,Subject,Owner,Who\n2026-12-01T09:00:00Z,2026-12-01T09:30:00Z,"
                   "Kickoff,ana@seller.example,Bo\n", encoding="utf-8")
    cfg = tmp_path / "c.yaml"
    cfg.write_text("mapping:\n  title: Subject\n  startTime: Start\n  endTime: End\n"
                   "  organizerEmail: Owner\n  externalId: null\n  invitees: Who\n"
                   "  invitee_directory: people.csv\n",
                   encoding="utf-8")
    res = validate(str(src), "--config", str(cfg))
    assert res.exit_code == 0, res.output
    assert payloads(res.stdout)[0]["invitees"] == [
        {"email": "bo@client.example", "displayName": "Bo Chen (Acme)", "firstName": "Bo"}]


def test_a_workbook_read_as_csv_says_it_is_a_workbook(tmp_path: Path) -> None:
    """--format csv on an .xlsx (or a workbook saved as .csv): the hint names the format, not
    an encoding that would not help."""
    from openpyxl import Workbook

    book = Workbook()
    book.active.append(["startTime", "endTime", "title", "organizerEmail"])
    path = tmp_path / "export.csv"  # a workbook under a CSV's name
    book.save(path)
    res = validate(str(path))
    assert res.exit_code == 2
    assert "this is a ZIP file, as an Excel workbook is: read it with --format xlsx" in res.output
    assert "cp1252" not in res.output
