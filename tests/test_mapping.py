"""Mapping: RawRow -> Row (payload or named errors), the mapping language, presets, row keys."""

from __future__ import annotations

import copy
import hashlib
import re
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from bulkmeet import contract
from bulkmeet.config import Config
from bulkmeet.errors import ConfigError
from bulkmeet.mapping import API_FIELDS, Mapper, row_key
from bulkmeet.models import RawRow, Row
from bulkmeet.presets import PRESETS


def _strict_schema() -> dict[str, Any]:
    """NewMeetingRequest with additionalProperties off, so extra keys fail too."""
    components = copy.deepcopy(contract.spec()["components"])
    for name in ("NewMeetingRequest", "MeetingInvitee"):
        components["schemas"][name]["additionalProperties"] = False
    components["schemas"]["MeetingInvitee"]["required"] = ["email"]
    return {"$ref": "#/components/schemas/NewMeetingRequest", "components": components}


VALIDATOR = Draft202012Validator(_strict_schema())
SENT_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}[+-]\d{2}:\d{2}")
KEY = re.compile(r"h:[0-9a-f]{32}")

BASE = {
    "startTime": "2024-03-15T10:00:00+01:00",
    "endTime": "2024-03-15T11:00:00+01:00",
    "organizerEmail": "org@example.com",
    "invitees": "ann@example.com",
}


def make(mapping: dict[str, Any] | None = None, tz: str | None = "Europe/Berlin",
         **kw: Any) -> Mapper:
    return Mapper(mapping or {}, timezone=tz, **kw)


def run(fields: dict[str, Any], mapping: dict[str, Any] | None = None,
        tz: str | None = "Europe/Berlin", line: int = 5) -> Row:
    return make(mapping, tz).map(RawRow(line, fields))


def ok(row: Row) -> dict[str, Any]:
    """Assert the row is valid and its payload is a strict NewMeetingRequest; return it."""
    assert row.errors == ()
    assert row.payload is not None
    VALIDATOR.validate(row.payload)
    assert SENT_TIME.fullmatch(row.payload["startTime"])
    assert SENT_TIME.fullmatch(row.payload["endTime"])
    assert row.key == row_key(row.payload)
    return row.payload


def bad(row: Row) -> tuple[str, ...]:
    assert row.payload is None
    assert row.errors
    return row.errors


# --- Part 1: the basic contract ---------------------------------------------------------------


def test_default_columns_are_api_field_names() -> None:
    """With no mapping, columns are named like the API fields and the payload is exactly theirs."""
    row = run({**BASE, "title": " Demo ", "externalId": "ext-1"})
    assert ok(row) == {
        "startTime": "2024-03-15T10:00:00+01:00",
        "endTime": "2024-03-15T11:00:00+01:00",
        "title": "Demo",
        "invitees": [{"email": "ann@example.com"}],
        "externalId": "ext-1",
        "organizerEmail": "org@example.com",
    }
    assert row.line == 5 and row.key == "ext-1" and row.fields is not None


def test_rename_form_maps_api_fields_to_columns() -> None:
    """`mapping: {apiField: "Column"}` reads that column; unmentioned fields keep default names."""
    fields = {"Start": BASE["startTime"], "End": BASE["endTime"],
              "organizerEmail": "org@example.com", "Topic": "Q1"}
    mapping = {"startTime": "Start", "endTime": {"column": "End"}, "title": "Topic"}
    payload = ok(run(fields, mapping))
    assert payload["title"] == "Q1" and payload["invitees"] == []


def test_from_config_uses_mapping_and_timezone() -> None:
    """Mapper.from_config reads Config.mapping and Config.timezone."""
    cfg = Config(timezone="America/New_York", mapping={"startTime": "Start"})
    fields = {**BASE, "Start": "2024-03-15 05:00", "endTime": "2024-03-15 06:00"}
    row = Mapper.from_config(cfg).map(RawRow(2, fields))
    assert ok(row)["startTime"] == "2024-03-15T05:00:00-04:00"


def test_empty_optional_fields_are_omitted_and_cells_stripped() -> None:
    """Whitespace is stripped; "" title/externalId are left out; a missing invitees column is []."""
    fields = {k: f"  {v}\t" for k, v in BASE.items() if k != "invitees"}
    payload = ok(run({**fields, "title": "   ", "externalId": ""}))
    assert set(payload) == {"startTime", "endTime", "invitees", "organizerEmail"}
    assert payload["invitees"] == [] and payload["organizerEmail"] == "org@example.com"


@pytest.mark.parametrize(
    ("value", "sent"),
    [
        ("2024-03-15T10:00:00+01:00", "2024-03-15T10:00:00+01:00"),
        ("2024-03-15T09:00:00Z", "2024-03-15T09:00:00+00:00"),
        ("2024-03-15T10:00:00.987654+01:00", "2024-03-15T10:00:00+01:00"),
        ("2024-03-15T10:00-05:00", "2024-03-15T10:00:00-05:00"),
        ("2024-03-15 10:00", "2024-03-15T10:00:00+01:00"),
        ("2024-07-15T10:00:00", "2024-07-15T10:00:00+02:00"),
        (datetime(2024, 3, 15, 10, 0), "2024-03-15T10:00:00+01:00"),
        (datetime(2024, 3, 15, 10, 0, tzinfo=timezone(timedelta(hours=-3))),
         "2024-03-15T10:00:00-03:00"),
        ("2024-03-15T10:00:00+01:00:30", "2024-03-15T08:59:30+00:00"),
    ],
)
def test_start_time_is_normalised(value: Any, sent: str) -> None:
    """Offsets are kept, Z becomes +00:00, fractions drop, naive times get the config zone's
    offset (DST-aware), datetimes from xlsx work, an offset with seconds is sent as UTC."""
    fields = {**BASE, "startTime": value, "endTime": "2030-01-01T00:00:00Z"}
    assert ok(run(fields))["startTime"] == sent


@pytest.mark.parametrize(
    ("tz", "value", "sent"),
    [
        ("America/New_York", "2024-03-10 01:59", "2024-03-10T01:59:00-05:00"),
        ("America/New_York", "2024-03-10 03:00", "2024-03-10T03:00:00-04:00"),
        ("America/New_York", "2024-11-03 01:30", "2024-11-03T01:30:00-04:00"),  # repeated hour
        ("America/New_York", "2024-11-03 02:30", "2024-11-03T02:30:00-05:00"),
        ("Europe/Berlin", "2024-03-31 01:59", "2024-03-31T01:59:00+01:00"),
        ("Europe/Berlin", "2024-03-31 03:00", "2024-03-31T03:00:00+02:00"),
        ("Europe/Berlin", "2024-10-27 02:30", "2024-10-27T02:30:00+02:00"),  # repeated hour
        ("Europe/Berlin", "2024-10-27 03:30", "2024-10-27T03:30:00+01:00"),
    ],
)
def test_dst_offsets_and_ambiguous_times(tz: str, value: str, sent: str) -> None:
    """Local times get the offset in force; in the repeated hour the first (earlier) one wins."""
    fields = {**BASE, "startTime": value, "endTime": "2030-01-01T00:00:00Z"}
    assert ok(run(fields, tz=tz))["startTime"] == sent


@pytest.mark.parametrize(
    ("tz", "value"),
    [("America/New_York", "2024-03-10 02:30"), ("Europe/Berlin", "2024-03-31 02:30:00")],
)
def test_nonexistent_local_time_is_an_error(tz: str, value: str) -> None:
    """A wall time skipped by the spring-forward gap is invalid, naming the zone and the value."""
    (error,) = bad(run({**BASE, "startTime": value, "endTime": "2030-01-01T00:00:00Z"}, tz=tz))
    assert error == (f"line 5, column 'startTime' (startTime): {value!r} does not exist in {tz} "
                     "(the clocks skip it at the DST change); give an explicit UTC offset")


def test_naive_time_without_timezone_says_to_set_timezone() -> None:
    """No config timezone and no offset: the error tells the user to set `timezone`."""
    errors = bad(run({**BASE, "startTime": "2024-03-15 10:00"}, tz=None))
    assert errors == ("line 5, column 'startTime' (startTime): '2024-03-15 10:00' has no UTC "
                      "offset and no time zone is set; pass --timezone (an IANA name such as "
                      "Europe/Berlin) or set `timezone:` in the config",)


def test_a_date_cell_in_a_message_shows_as_written_not_as_a_python_repr() -> None:
    """Issue 11 item 9: an xlsx date cell without a zone reads '2027-02-01 09:00:00' in the
    error, not datetime.datetime(2027, 2, 1, 9, 0)."""
    errors = bad(run({**BASE, "startTime": datetime(2027, 2, 1, 9, 0)}, tz=None))
    assert errors == ("line 5, column 'startTime' (startTime): '2027-02-01 09:00:00' has no UTC "
                      "offset and no time zone is set; pass --timezone (an IANA name such as "
                      "Europe/Berlin) or set `timezone:` in the config",)
    assert "datetime." not in errors[0]


def test_brief_example_message() -> None:
    """The message format is `line N, column 'C' (apiField): 'value' problem`."""
    errors = bad(run({**BASE, "Start": "2024-13-01 10:00"}, {"startTime": "Start"}))
    assert errors == ("line 5, column 'Start' (startTime): '2024-13-01 10:00' is not an ISO-8601 "
                      "time",)


ERROR_CASES: list[tuple[str, dict[str, Any], str]] = [
    ("not iso", {"startTime": "15.03.2024 10:00"},
     "column 'startTime' (startTime): '15.03.2024 10:00' is not an ISO-8601 time"),
    ("date only", {"startTime": "2024-03-15"},
     "column 'startTime' (startTime): '2024-03-15' is not an ISO-8601 time"),
    ("number", {"endTime": 1710496800},
     "column 'endTime' (endTime): 1710496800 is not an ISO-8601 time"),
    ("xlsx date", {"startTime": date(2024, 3, 15)},
     "column 'startTime' (startTime): '2024-03-15' has no time of day"),
    ("absent start", {"startTime": None},
     "column 'startTime' (startTime): no such column in this row; startTime is required"),
    ("blank end", {"endTime": "  "},
     "column 'endTime' (endTime): '  ' is empty; endTime is required"),
    ("end before start", {"endTime": "2024-03-15T09:00:00+01:00"},
     "column 'endTime' (endTime): '2024-03-15T09:00:00+01:00' is not after the start time "
     "(2024-03-15T10:00:00+01:00)"),
    ("end equals start", {"endTime": "2024-03-15T09:00:00Z"},
     "column 'endTime' (endTime): '2024-03-15T09:00:00Z' is not after the start time"),
    ("blank organizer", {"organizerEmail": ""},
     "column 'organizerEmail' (organizerEmail): '' is empty; organizerEmail is required"),
    ("bad organizer", {"organizerEmail": "org@example"},
     "column 'organizerEmail' (organizerEmail): 'org@example' is not a valid email address"),
    ("organizer name", {"organizerEmail": "Olga Org"},
     "column 'organizerEmail' (organizerEmail): 'Olga Org' is not an email address; map names "
     "to emails with mapping.invitee_directory, or set mapping.organizerEmail: {const: "
     "you@example.com} or pass --organizer you@example.com"),
    ("organizer list", {"organizerEmail": ["org@example.com"]},
     "column 'organizerEmail' (organizerEmail): ['org@example.com'] is not an email address"),
    ("invitee no tld", {"invitees": "ann@example.com; bob@localhost"},
     "column 'invitees' (invitees): 'bob@localhost' is not a valid email address"),
    ("invitee one-letter tld", {"invitees": "bob@example.c"},
     "column 'invitees' (invitees): 'bob@example.c' is not a valid email address"),
    ("invitee space", {"invitees": "bob smith@example.com"},
     "column 'invitees' (invitees): 'bob smith@example.com' is not a valid email address"),
    ("invitee bad in brackets", {"invitees": "Bob <bob@@example.com>"},
     "column 'invitees' (invitees): 'Bob <bob@@example.com>' is not a valid email address"),
    ("invitee name only", {"invitees": "Bob Smith"},
     "column 'invitees' (invitees): 'Bob Smith' is not an email address (names need "
     "mapping.invitee_directory"),
    ("organizer invited", {"invitees": "ann@example.com, ORG@example.com"},
     "column 'invitees' (invitees): 'ORG@example.com' is the organizer; Gong's invitees exclude "
     "the organizer (set mapping.organizer_in_invitees: drop to remove it)"),
    ("invitees number", {"invitees": 7},
     "column 'invitees' (invitees): 7 is not a list of email addresses"),
    ("invitee object", {"invitees": [{"displayName": "Ann"}]},
     "column 'invitees' (invitees): {'displayName': 'Ann'} has no valid email address"),
    ("invitee object name", {"invitees": [{"email": "a@example.com", "firstName": 3}]},
     "column 'invitees' (invitees): firstName 3 of 'a@example.com' is not text"),
    ("invitee item type", {"invitees": [True]},
     "column 'invitees' (invitees): True is not an email address"),
    ("title type", {"title": ["x"]}, "column 'title' (title): ['x'] is not text"),
]


@pytest.mark.parametrize(("fields", "message"), [c[1:] for c in ERROR_CASES],
                         ids=[c[0] for c in ERROR_CASES])
def test_each_rule_has_a_named_error(fields: dict[str, Any], message: str) -> None:
    """Each rule fails with one message naming the line, the column, the API field and value."""
    merged = {k: v for k, v in {**BASE, **fields}.items() if v is not None}
    (error,) = bad(run(merged))
    assert error.startswith("line 5, " + message)


def test_all_errors_are_reported_at_once() -> None:
    """A row with several problems lists each of them, not just the first."""
    errors = bad(run({"startTime": "soon", "endTime": "", "organizerEmail": "x",
                      "invitees": "a@b; c@example.com; d"}))
    assert [e.split(":")[0] for e in errors] == [
        "line 5, column 'startTime' (startTime)",
        "line 5, column 'endTime' (endTime)",
        "line 5, column 'organizerEmail' (organizerEmail)",
        "line 5, column 'invitees' (invitees)",
        "line 5, column 'invitees' (invitees)",
    ]


def test_reader_errors_pass_through() -> None:
    """A RawRow the reader could not parse becomes an invalid Row carrying that error."""
    mapper = make()
    row = mapper.map(RawRow(9, None, "line 9: unterminated quote"))
    assert row == Row(9, "line:9", None, ("line 9: unterminated quote",))
    row = mapper.map(RawRow(10, {"a": "1"}, "line 10: 3 cells, header has 2"))
    assert row.errors == ("line 10: 3 cells, header has 2",) and row.key.startswith("r:")


@pytest.mark.parametrize(
    ("cell", "invitees"),
    [
        ("", []),
        ("a@example.com", [{"email": "a@example.com"}]),
        ("a@example.com; b@example.com,c@example.com ,",
         [{"email": "a@example.com"}, {"email": "b@example.com"}, {"email": "c@example.com"}]),
        ("Jane Doe <jane@example.com>", [{"email": "jane@example.com", "displayName": "Jane Doe"}]),
        ('"Doe, Jane" <jane@example.com>, bob@example.com',
         [{"email": "jane@example.com", "displayName": "Doe, Jane"},
          {"email": "bob@example.com"}]),
        ('"Say \\"hi\\"; ok" <s@example.com>', [{"email": "s@example.com",
                                                   "displayName": 'Say "hi"; ok'}]),
        ("a@example.com; A@EXAMPLE.com", [{"email": "a@example.com"}]),
        ("a@example.com; Ann <A@example.com>", [{"email": "a@example.com", "displayName": "Ann"}]),
        (["Jane <jane@example.com>", " b@example.com ", "", None],
         [{"email": "jane@example.com", "displayName": "Jane"}, {"email": "b@example.com"}]),
        ([{"email": "j@example.com", "firstName": "Jo", "lastName": "Ng", "rsvp": "yes"}],
         [{"email": "j@example.com", "firstName": "Jo", "lastName": "Ng"}]),
    ],
)
def test_invitee_cells(cell: Any, invitees: list[dict[str, str]]) -> None:
    """Invitees split on ; and , outside quotes, accept `Name <email>`, JSON lists of strings or
    objects (unknown keys ignored), and merge case-insensitive duplicates keeping the first."""
    assert ok(run({**BASE, "invitees": cell}))["invitees"] == invitees


def test_organizer_in_invitees_can_be_dropped() -> None:
    """organizer_in_invitees: drop removes the organizer from the invitees silently."""
    row = run({**BASE, "invitees": "Org@Example.com; ann@example.com"},
              {"organizer_in_invitees": "drop"})
    assert ok(row)["invitees"] == [{"email": "ann@example.com"}]


# --- keys --------------------------------------------------------------------------------------


def test_key_is_external_id_when_present() -> None:
    """externalId is the key as given."""
    assert run({**BASE, "externalId": "SF-00U1"}).key == "SF-00U1"


def test_key_ignores_cosmetic_differences() -> None:
    """Offset style, email case, invitee order and display names do not change the content key."""
    a = run({**BASE, "invitees": "ann@example.com; Bob <bob@example.com>"})
    b = run({"startTime": "2024-03-15T09:00:00Z", "endTime": "2024-03-15 11:00",
             "organizerEmail": "ORG@example.com", "invitees": "BOB@example.com, Ann@Example.com"})
    assert KEY.fullmatch(a.key) and a.key == b.key
    c = run({**BASE, "title": "Other"})
    d = run({**BASE, "invitees": "ann@example.com; carl@example.com"})
    assert len({a.key, c.key, d.key}) == 3


def test_keys_do_not_depend_on_row_order_or_neighbours() -> None:
    """Mapping rows in another order, among other rows, or on other lines gives the same keys."""
    rows = [{**BASE, "title": f"Meeting {i}"} for i in range(5)]
    first = [make().map(RawRow(i + 2, r)).key for i, r in enumerate(rows)]
    mapper = make()
    shuffled = {r["title"]: mapper.map(RawRow(50 - i, r)).key
                for i, r in enumerate(reversed([*rows, {**BASE, "title": "new"}]))}
    assert first == [shuffled[r["title"]] for r in rows]
    assert len(set(first)) == 5


def test_row_key_function_matches_and_normalises() -> None:
    """row_key(payload) equals Row.key and reads offsets, so a Z payload keys like +01:00."""
    payload = ok(run(BASE))
    same = {**payload, "startTime": "2024-03-15T09:00:00Z", "organizerEmail": "Org@Example.COM"}
    assert row_key(same) == row_key(payload)
    assert row_key({**payload, "externalId": "x"}) == "x"


def test_content_key_is_pinned() -> None:
    """The canonical form is part of the results file's contract: a resumed run made by another
    version must compute the same keys, so this exact value may only change deliberately."""
    payload = {"startTime": "2024-03-15T10:00:00+01:00", "endTime": "2024-03-15T11:00:00+01:00",
               "title": "Demo", "organizerEmail": "Org@Example.com",
               "invitees": [{"email": "B@example.com"}, {"email": "a@example.com"}]}
    canonical = (b'{"endTime":"2024-03-15T10:00:00Z","invitees":["a@example.com","b@example.com"],'
                 b'"organizerEmail":"org@example.com","startTime":"2024-03-15T09:00:00Z",'
                 b'"title":"Demo"}')
    assert row_key(payload) == "h:" + hashlib.sha256(canonical).hexdigest()[:32]
    assert row_key(payload) == "h:acfd146c7fca396ce212e2e1a021c781"


def test_invalid_row_keys_hash_raw_fields() -> None:
    """Invalid rows key as r:<hash of raw fields>, the same for the same fields on another line."""
    a = make().map(RawRow(3, {"startTime": "nope"}))
    b = make().map(RawRow(8, {"startTime": "nope"}))
    assert a.key == b.key and re.fullmatch(r"r:[0-9a-f]{32}", a.key)
    assert make().map(RawRow(3, {"startTime": "nope", "x": 2**70})).key.startswith("r:")


# --- config errors -----------------------------------------------------------------------------


CONFIG_ERRORS: list[tuple[dict[str, Any], str]] = [
    ({"startTim": "S"}, "mapping.startTim: unknown key"),
    ({"startTime": 5}, "mapping.startTime: must be a column name or a mapping, not 5"),
    ({"startTime": ""}, "mapping.startTime: must be a column name"),
    ({"startTime": None}, "mapping.startTime: not mapped, and it is required"),
    ({"title": {"column": "a", "const": "b"}}, "mapping.title: give exactly one of"),
    ({"title": {"colum": "a"}}, "mapping.title: unknown key 'colum'"),
    ({"title": {"const": 3}}, "mapping.title: a constant must be a string"),
    ({"title": {"template": "{A"}}, "mapping.title.template: unbalanced '{'"),
    ({"title": {"template": "{} x"}}, "mapping.title.template: empty placeholder"),
    ({"startTime": {"column": "S", "format": "%Q"}}, "mapping.startTime.format: '%Q' is not"),
    ({"startTime": {"date": "D"}}, "mapping.startTime: give both date and time"),
    ({"startTime": {"duration_minutes": "D"}}, "mapping.startTime: unknown key 'duration_minutes'"),
    ({"endTime": {"duration_minutes": ""}}, "mapping.endTime.duration_minutes: must be a column"),
    ({"organizerEmail": {"const": "nope"}}, "mapping.organizerEmail (organizerEmail): 'nope' is"),
    ({"invitees": {"const": ["x@y"]}}, "mapping.invitees (invitees): 'x@y' is not a valid"),
    ({"invitees": {"columns": "A"}}, "mapping.invitees.columns: must be a list"),
    ({"invitees": {"column": "A", "separator": ""}}, "mapping.invitees.separator: must be"),
    ({"preset": "teams"}, "mapping.preset: unknown preset 'teams' (known: google, outlook"),
    ({"preset": "google"}, "mapping.organizerEmail: not mapped, and it is required; Google "
     "Calendar's CSV export has no organizer column; pass --organizer you@example.com, or set "
     "mapping.organizerEmail: {const: "),
    ({"preset": "salesforce"}, "set mapping.organizerEmail: {column: OwnerId, directory: "),
    ({"unresolved_invitees": "maybe"}, "mapping.unresolved_invitees: must be error or drop"),
    ({"all_day": "yes"}, "mapping.all_day: must be reject or skip or allow"),
    ({"timezone_column": 3}, "mapping.timezone_column: must be a column name"),
    ({"filter": {"skip_if": {"column": "C"}}}, "mapping.filter.skip_if.equals: must be"),
    ({"filter": {"skip": {}}}, "mapping.filter: unknown key 'skip'"),
    ({"invitee_directory": "no-such-file.csv"}, "mapping.invitee_directory: cannot read"),
    ({"invitee_directory": {"Ann": "ann@"}}, "mapping.invitee_directory: entry 'Ann': 'ann@'"),
]


@pytest.mark.parametrize(("mapping", "message"), CONFIG_ERRORS,
                         ids=[m for _, m in CONFIG_ERRORS])
def test_bad_mapping_config_names_the_key(mapping: dict[str, Any], message: str,
                                          tmp_path: Path) -> None:
    """A bad mapping raises ConfigError whose message starts with (or names) the config key."""
    with pytest.raises(ConfigError) as info:
        Mapper(mapping, base_dir=tmp_path)
    assert message in str(info.value)


def test_bad_timezone_is_a_config_error() -> None:
    """A timezone that is not an IANA name fails at construction, naming `timezone`."""
    with pytest.raises(ConfigError, match="^timezone: 'Mars/Olympus' is not an IANA"):
        Mapper({}, timezone="Mars/Olympus")


def test_mapping_must_be_a_mapping() -> None:
    """A mapping that is not a dict is a ConfigError naming `mapping`."""
    with pytest.raises(ConfigError, match="^mapping: must be a mapping"):
        Mapper(["startTime"])  # type: ignore[arg-type]


# --- Part 2: the mapping language -----------------------------------------------------------


def test_const_and_template_fields() -> None:
    """Fields may be constants or templates over columns; empty placeholders render as ""."""
    mapping = {"organizerEmail": {"const": "boss@example.com"},
               "title": {"template": "{Subject} - {Account} {{x}}"},
               "externalId": {"template": "crm-{Id}"}}
    payload = ok(run({**BASE, "Subject": "Demo", "Account": 42.0, "Id": "7"}, mapping))
    assert payload["organizerEmail"] == "boss@example.com"
    assert payload["title"] == "Demo - 42 {x}" and payload["externalId"] == "crm-7"
    assert ok(run({**BASE, "Subject": "Demo", "Id": "7"}, mapping))["title"] == "Demo -  {x}"


def test_external_id_template_with_empty_placeholder_is_an_error() -> None:
    """An externalId built from an empty column would collide: the row is invalid, naming it."""
    errors = bad(run({**BASE, "Id": " "}, {"externalId": {"template": "crm-{Id}"}}))
    assert errors == ("line 5, template 'crm-{Id}' (externalId): column 'Id' is ' ', so the id "
                      "would be incomplete",)


US = {"date_format": "%m/%d/%Y", "time_format": ["%I:%M:%S %p", "%I:%M %p"]}
DATE_TIME = {"startTime": {"date": "Start Date", "time": "Start Time", **US},
             "endTime": {"date": "End Date", "time": "End Time", **US}}


def test_date_and_time_columns_with_formats() -> None:
    """Start/end from a date column plus a time column, each with its own strptime formats."""
    fields = {"Start Date": "3/9/2024", "Start Time": "11:30:00 PM", "End Date": "3/10/2024",
              "End Time": "12:15 AM", "organizerEmail": "org@example.com"}
    payload = ok(run(fields, DATE_TIME, tz="America/New_York"))
    assert payload["startTime"] == "2024-03-09T23:30:00-05:00"
    assert payload["endTime"] == "2024-03-10T00:15:00-05:00"


def test_date_and_time_errors_name_the_failing_column() -> None:
    """A bad date or time names its own column and the formats it expected."""
    fields = {"Start Date": "15/3/2024", "Start Time": "2:30 PM", "End Date": "3/15/2024",
              "End Time": "25:00", "organizerEmail": "org@example.com"}
    assert bad(run(fields, DATE_TIME)) == (
        "line 5, column 'Start Date' (startTime): '15/3/2024' is not a date like '%m/%d/%Y'",
        "line 5, column 'End Time' (endTime): '25:00' is not a time like '%I:%M:%S %p' or "
        "'%I:%M %p'",
    )


def test_date_and_time_from_xlsx_objects() -> None:
    """xlsx gives date and time objects; they combine without formats."""
    fields = {"D": datetime(2024, 3, 15), "T": datetime(1899, 12, 30, 14, 30).time(),
              "E": "2024-03-15T15:00:00+01:00", "organizerEmail": "org@example.com"}
    row = run(fields, {"startTime": {"date": "D", "time": "T"}, "endTime": "E"})
    assert ok(row)["startTime"] == "2024-03-15T14:30:00+01:00"


def test_single_column_with_format() -> None:
    """A datetime column may give strptime formats, %z included."""
    mapping = {"startTime": {"column": "S", "format": "%d.%m.%Y %H:%M"},
               "endTime": {"column": "E", "format": ["%d.%m.%Y %H:%M %z"]}}
    fields = {"S": "15.03.2024 10:00", "E": "15.03.2024 11:00 +0100", "organizerEmail": "o@x.io"}
    payload = ok(run(fields, mapping))
    assert (payload["startTime"], payload["endTime"]) == ("2024-03-15T10:00:00+01:00",
                                                          "2024-03-15T11:00:00+01:00")
    assert bad(run({**fields, "S": "2024-03-15 10:00"}, mapping)) == (
        "line 5, column 'S' (startTime): '2024-03-15 10:00' does not match '%d.%m.%Y %H:%M'",)


@pytest.mark.parametrize(
    ("tz", "start", "minutes", "end"),
    [
        ("Europe/Berlin", "2024-10-27 02:30", "60", "2024-10-27T02:30:00+01:00"),
        ("America/New_York", "2024-03-10 01:30", "60", "2024-03-10T03:30:00-04:00"),
        ("America/New_York", "2024-03-15T10:00:00Z", 90.5, "2024-03-15T11:30:30+00:00"),
    ],
)
def test_end_from_duration_is_dst_correct(tz: str, start: str, minutes: Any, end: str) -> None:
    """endTime = start + DurationInMinutes of elapsed time, across DST changes."""
    mapping = {"endTime": {"duration_minutes": "Dur"}}
    fields = {**BASE, "startTime": start, "Dur": minutes}
    assert ok(run(fields, mapping, tz=tz))["endTime"] == end


@pytest.mark.parametrize("minutes", ["0", "-5", "ten", "nan", "1e9", True])
def test_bad_duration(minutes: Any) -> None:
    """A duration that is not a positive number of minutes (at most 14 days) is named."""
    errors = bad(run({**BASE, "Dur": minutes}, {"endTime": {"duration_minutes": "Dur"}}))
    assert errors == (f"line 5, column 'Dur' (endTime): {minutes!r} is not a duration in minutes "
                      "(more than 0, at most 20160)",)


def test_timezone_column() -> None:
    """A per-row IANA zone column wins over the config zone; empty falls back; junk is named."""
    mapping = {"timezone_column": "TZ"}
    fields = {**BASE, "startTime": "2024-03-15 10:00"}
    assert ok(run({**fields, "TZ": "Asia/Tokyo"}, mapping))["startTime"].endswith("+09:00")
    assert ok(run({**fields, "TZ": " "}, mapping))["startTime"].endswith("+01:00")
    assert bad(run({**fields, "TZ": "Mars/Base"}, mapping)) == (
        "line 5, column 'TZ' (time zone): 'Mars/Base' is not an IANA time zone name (for example "
        "Europe/Berlin)",)
    assert bad(run({**fields, "TZ": ""}, mapping, tz=None))[0].endswith(
        "pass --timezone (an IANA name such as Europe/Berlin) or set `timezone:` in the config "
        "or fill column 'TZ'")


def test_invitees_from_several_columns_with_separator() -> None:
    """Invitees may come from several columns; a custom separator keeps commas inside names."""
    mapping = {"invitees": {"columns": ["Req", "Opt"], "separator": ";"}}
    fields = {**BASE, "Req": "Doe, Jane <jane@example.com>; bob@example.com",
              "Opt": "jane@example.com;carl@example.com"}
    assert ok(run(fields, mapping))["invitees"] == [
        {"email": "jane@example.com", "displayName": "Doe, Jane"},
        {"email": "bob@example.com"}, {"email": "carl@example.com"}]
    errors = bad(run({**fields, "Opt": "nobody"}, mapping))
    assert errors[0].startswith("line 5, column 'Opt' (invitees): 'nobody' is not an email")


def test_invitee_directory_resolves_names(tmp_path: Path) -> None:
    """A name,email CSV resolves bare names (case/space-insensitive, "Last, First" too)."""
    (tmp_path / "people.csv").write_text(
        "name,email\nJane Doe,jane@example.com\nOlga Org,org@example.com\n", encoding="utf-8")
    mapping = {"invitee_directory": "people.csv", "organizerEmail": "Org",
               "invitees": {"column": "Who", "separator": ";"}}
    mapper = Mapper(mapping, timezone="UTC", base_dir=tmp_path)
    row = mapper.map(RawRow(2, {**BASE, "Org": "olga  org", "Who": "Doe, Jane; bob@example.com"}))
    assert ok(row)["organizerEmail"] == "org@example.com"
    assert ok(row)["invitees"] == [{"email": "jane@example.com", "displayName": "Doe, Jane"},
                                   {"email": "bob@example.com"}]
    row = mapper.map(RawRow(3, {**BASE, "Org": "Nobody", "Who": "Ghost"}))
    assert bad(row) == (
        "line 3, column 'Org' (organizerEmail): 'Nobody' is not in mapping.invitee_directory, or "
        "set mapping.organizerEmail: {const: you@example.com} or pass --organizer you@example.com",
        "line 3, column 'Who' (invitees): 'Ghost' is not in mapping.invitee_directory (add the "
        "person, or set mapping.unresolved_invitees: drop)",
    )


def test_unresolved_invitees_drop_with_a_warning() -> None:
    """unresolved_invitees: drop removes unknown names and records a warning naming the row."""
    mapper = make({"invitee_directory": {"Jane Doe": "jane@example.com"},
                   "unresolved_invitees": "drop"})
    row = mapper.map(RawRow(4, {**BASE, "invitees": "Jane Doe; Ghost"}))
    assert ok(row)["invitees"] == [{"email": "jane@example.com", "displayName": "Jane Doe"}]
    assert mapper.drain_warnings() == [
        "line 4, column 'invitees' (invitees): 'Ghost' is not in mapping.invitee_directory; "
        "dropped"]
    assert mapper.warnings == []


def test_directory_conflicts_are_config_errors(tmp_path: Path) -> None:
    """A name listed with two different emails is a ConfigError naming file and line."""
    path = tmp_path / "p.csv"
    path.write_text("Jane Doe,jane@example.com\njane doe,jd@example.com\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"p\.csv line 2: 'jane doe' is listed with two emails"):
        Mapper({"invitee_directory": "p.csv"}, base_dir=tmp_path)


def test_organizer_from_id_directory() -> None:
    """organizerEmail: {column: OwnerId, directory: ...} looks ids up exactly."""
    mapping = {"organizerEmail": {"column": "OwnerId", "directory": {"005A": "a@example.com"}}}
    assert ok(run({**BASE, "OwnerId": "005A"}, mapping))["organizerEmail"] == "a@example.com"
    assert bad(run({**BASE, "OwnerId": "005B"}, mapping))[0].startswith(
        "line 5, column 'OwnerId' (organizerEmail): '005B' is not in "
        "mapping.organizerEmail.directory")


def test_filter_skips_rows_without_errors() -> None:
    """filter.skip_if matches case-insensitively; a skipped row has no payload and no errors."""
    mapping = {"filter": {"skip_if": [{"column": "Canceled", "equals": ["true", "yes", 1]},
                                      {"column": "Status", "equals": "draft"}]}}
    for extra in ({"Canceled": "YES"}, {"Canceled": 1}, {"Status": " Draft "}):
        row = run({"startTime": "garbage", **extra}, mapping)
        assert (row.payload, row.errors, row.line) == (None, (), 5)
    ok(run({**BASE, "Canceled": "no"}, mapping))


@pytest.mark.parametrize(
    ("policy", "expect"),
    [
        ("reject", "line 5, column 'AllDay' (all day): 'True' marks an all-day event, which Gong "
                   "does not record; set mapping.all_day: skip or allow"),
        ("skip", None),
        ("allow", ("2024-03-31T00:00:00+01:00", "2024-04-01T00:00:00+02:00")),
    ],
)
def test_all_day_events(policy: str, expect: Any) -> None:
    """All-day rows are rejected by default, or skipped, or sent as local midnight to midnight."""
    mapping = {**DATE_TIME, "all_day_column": "AllDay", "all_day": policy}
    fields = {"Start Date": "3/31/2024", "Start Time": "", "End Date": "3/31/2024",
              "End Time": "", "AllDay": "True", "organizerEmail": "org@example.com"}
    row = run(fields, mapping)
    if policy == "reject":
        assert row.errors == (expect,)
    elif policy == "skip":
        assert (row.payload, row.errors) == (None, ())
    else:
        payload = ok(row)
        assert (payload["startTime"], payload["endTime"]) == expect


def test_columns_and_missing_columns() -> None:
    """The mapper reports the columns it reads and which required ones a header lacks."""
    mapper = make({"preset": "outlook", "invitee_directory": {}})
    assert {"Subject", "Required Attendees", "All day event"} <= mapper.columns
    assert mapper.missing_columns(["Subject", "Start Date", "Start Time"]) == [
        "End Date", "End Time", "Meeting Organizer"]


# --- presets -----------------------------------------------------------------------------------


OUTLOOK_HEADER = ["Subject", "Start Date", "Start Time", "End Date", "End Time", "All day event",
                  "Reminder on/off", "Reminder Date", "Reminder Time", "Meeting Organizer",
                  "Required Attendees", "Optional Attendees", "Meeting Resources",
                  "Billing Information", "Categories", "Description", "Location", "Mileage",
                  "Priority", "Private", "Sensitivity", "Show time as"]


def test_outlook_preset() -> None:
    """Outlook CSV: US dates, `;` attendees by name via the directory, organizer dropped."""
    row = dict.fromkeys(OUTLOOK_HEADER, "")
    row.update({"Subject": "Pipeline review", "Start Date": "3/15/2024",
                "Start Time": "2:30:00 PM",
                "End Date": "3/15/2024", "End Time": "3:15:00 PM", "All day event": "False",
                "Meeting Organizer": "Olga Org",
                "Required Attendees": "Olga Org;Doe, Jane;bob@example.com",
                "Optional Attendees": "Carl Client <carl@client.com>"})
    directory = {"Olga Org": "org@example.com", "Jane Doe": "jane@example.com"}
    mapper = make({"preset": "outlook", "invitee_directory": directory}, tz="America/Chicago")
    assert mapper.missing_columns(OUTLOOK_HEADER) == []
    assert ok(mapper.map(RawRow(2, row))) == {
        "startTime": "2024-03-15T14:30:00-05:00",
        "endTime": "2024-03-15T15:15:00-05:00",
        "title": "Pipeline review",
        "invitees": [{"email": "jane@example.com", "displayName": "Doe, Jane"},
                     {"email": "bob@example.com"},
                     {"email": "carl@client.com", "displayName": "Carl Client"}],
        "organizerEmail": "org@example.com",
    }


def test_google_preset_needs_and_uses_a_constant_organizer() -> None:
    """Google CSV: 05/30/2020 10:00 AM; no organizer column, so a constant one; no invitees."""
    mapper = make({"preset": "google", "organizerEmail": {"const": "me@example.com"}},
                  tz="America/Los_Angeles")
    row = {"Subject": "Call", "Start Date": "05/30/2020", "Start Time": "10:00 AM",
           "End Date": "05/30/2020", "End Time": "10:30 AM", "All Day Event": "False",
           "Description": "", "Location": "", "Private": "False"}
    assert ok(mapper.map(RawRow(2, row))) == {
        "startTime": "2020-05-30T10:00:00-07:00", "endTime": "2020-05-30T10:30:00-07:00",
        "title": "Call", "invitees": [], "organizerEmail": "me@example.com"}


def test_salesforce_preset() -> None:
    """Salesforce Event: ActivityDateTime + DurationInMinutes, Id as externalId, OwnerId lookup."""
    mapper = make({"preset": "salesforce",
                   "organizerEmail": {"column": "OwnerId",
                                      "directory": {"0058d00000AbCdE": "rep@example.com"}}},
                  tz="America/New_York")
    row = {"Id": "00U8d00000XyZ", "Subject": "Demo", "ActivityDateTime": "2023-01-18 15:00:00",
           "DurationInMinutes": "45", "OwnerId": "0058d00000AbCdE", "WhoId": "0038d00000Q",
           "IsAllDayEvent": "false"}
    row_out = mapper.map(RawRow(2, row))
    assert ok(row_out) == {
        "startTime": "2023-01-18T15:00:00-05:00", "endTime": "2023-01-18T15:45:00-05:00",
        "title": "Demo", "invitees": [], "externalId": "00U8d00000XyZ",
        "organizerEmail": "rep@example.com"}
    assert row_out.key == "00U8d00000XyZ"


def test_user_config_overrides_preset_keys() -> None:
    """The user's keys replace the preset's, key by key; null unmaps a preset field."""
    mapper = make({"preset": "salesforce", "organizerEmail": {"const": "me@example.com"},
                   "title": None, "startTime": "StartDateTime", "all_day_column": None})
    row = {"Subject": "Demo", "StartDateTime": "2023-01-18T20:00:00.000Z",
           "DurationInMinutes": 30, "IsAllDayEvent": "true"}
    assert ok(mapper.map(RawRow(2, row))) == {
        "startTime": "2023-01-18T20:00:00+00:00", "endTime": "2023-01-18T20:30:00+00:00",
        "invitees": [], "organizerEmail": "me@example.com"}


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_compiles_with_an_organizer(name: str) -> None:
    """Each preset builds a Mapper once an organizer is supplied."""
    assert make({"preset": name, "organizerEmail": {"const": "me@example.com"}}).columns


# --- never raises ------------------------------------------------------------------------------


MAPPERS = {
    "default": make(),
    "default-no-tz": make(tz=None),
    "outlook": make({"preset": "outlook", "invitee_directory": {"Jane Doe": "jane@example.com"},
                     "unresolved_invitees": "drop", "all_day": "allow"}),
    "salesforce": make({"preset": "salesforce", "organizerEmail": {"template": "{OwnerId}@x.io"},
                        "timezone_column": "startTime"}),
    "templates": make({"title": {"template": "{a} {b}"}, "externalId": {"template": "{a}"},
                       "filter": {"skip_if": {"column": "b", "equals": "x"}}}),
}
COLUMNS = sorted({*API_FIELDS, *OUTLOOK_HEADER, "ActivityDateTime", "DurationInMinutes", "Id",
                  "OwnerId", "a", "b"})
SPECIAL = st.sampled_from([
    "", " ", "0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-05:00", "2024-03-10 02:30",
    "2024-03-15T10:00:00Z", "2024-03-15 11:00", "true", "3/15/2024", "2:30:00 PM", "45",
    "org@example.com", '"Doe, Jane" <j@x.io>; b@x.io', "Jane Doe", '"a', "<>", "{}",
])
CELLS = st.one_of(
    st.text(max_size=30),
    SPECIAL,
    st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30)).map(str),
    st.builds("{0}@{1}.com; N <{1}@{0}.org>, {0}".format,
              st.text("abAB.-_", min_size=1, max_size=4), st.text("xyz-", min_size=1, max_size=4)),
)
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10) | SPECIAL,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                  max_size=3),
    max_leaves=6,
)


def _check(mapper: Mapper, line: int, fields: dict[str, Any]) -> None:
    row = mapper.map(RawRow(line, fields))
    assert isinstance(row, Row) and row.line == line
    assert not any("internal error" in e for e in row.errors), row.errors
    if row.payload is not None:
        ok(row)
    for error in row.errors:
        assert error.startswith(f"line {line}")


@settings(max_examples=100, deadline=None)
@given(name=st.sampled_from(sorted(MAPPERS)), line=st.integers(1, 10**6),
       fields=st.dictionaries(st.sampled_from(COLUMNS) | st.text(max_size=5), CELLS, max_size=12))
def test_map_never_raises_on_text_cells(name: str, line: int, fields: dict[str, str]) -> None:
    """For any dict of text cells, map returns one Row with the same line; errors name the line,
    and whatever is valid is a schema-valid payload."""
    _check(MAPPERS[name], line, fields)


@settings(max_examples=100, deadline=None)
@given(name=st.sampled_from(sorted(MAPPERS)), line=st.integers(1, 10**6),
       fields=st.dictionaries(st.sampled_from(COLUMNS) | st.text(max_size=5), JSON, max_size=12))
def test_map_never_raises_on_json_values(name: str, line: int, fields: dict[str, Any]) -> None:
    """The same for arbitrary JSON values, as JSONL rows can hold."""
    _check(MAPPERS[name], line, fields)


NAMES = st.text("abcdefgh", min_size=1, max_size=6)
EMAILS = st.lists(st.builds("{}@{}.com".format, NAMES, NAMES), min_size=0, max_size=4,
                  unique_by=str.lower)


@settings(max_examples=100, deadline=None)
@given(start=st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1)),
       minutes=st.integers(1, 600), tz=st.sampled_from(["Europe/Berlin", "America/New_York"]),
       emails=EMAILS, data=st.data())
def test_valid_rows_and_their_keys(start: datetime, minutes: int, tz: str, emails: list[str],
                                   data: st.DataObject) -> None:
    """Plausible rows map to schema-valid payloads (or a DST-gap error), and the same meeting
    written with UTC times, shuffled upper-cased invitees and display names keys the same."""
    fields = {"startTime": start.isoformat(), "endTime": (start + timedelta(minutes=minutes))
              .isoformat(), "organizerEmail": "org@example.com", "invitees": ", ".join(emails)}
    row = make(tz=tz).map(RawRow(2, fields))
    if row.payload is None:
        assert all("does not exist in" in e for e in bad(row))
        return
    payload = ok(row)
    utc = {k: datetime.fromisoformat(payload[k]).astimezone(UTC).strftime(
        "%Y-%m-%dT%H:%M:%SZ") for k in ("startTime", "endTime")}
    shuffled = data.draw(st.permutations(emails))
    again = {**utc, "organizerEmail": "ORG@example.com",
             "invitees": "; ".join(f"Name {i} <{e.upper()}>" for i, e in enumerate(shuffled))}
    assert make(tz=None).map(RawRow(99, again)).key == row.key


# -- the fast path for plain mappings (mapping/plain.py) ----------------------------------------

OFFSETS = st.sampled_from(["Z", "+00:00", "+01:00", "-05:30", "+14:00", "", "+01:00:30"])
ISO_TIMES = st.builds(
    lambda dt, sep, offset, pad: f"{pad}{dt.isoformat(sep=sep)}{offset}{pad}",
    st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30)),
    st.sampled_from(["T", " ", "t"]), OFFSETS, st.sampled_from(["", " "]))
ADDRESSES = st.builds("{}@{}.com".format, NAMES, NAMES) | st.sampled_from(
    ["ORG@example.com", "org@example.com", "Jane <jane@x.io>", '"Doe, J" <j@x.io>', "Jane Doe",
     "a@b", " ", "", "x@y.com>"])
PLAIN_CELLS = {
    "startTime": ISO_TIMES | CELLS,
    "endTime": ISO_TIMES | CELLS,
    "title": st.none() | st.text(max_size=8) | st.integers() | st.just("  "),
    "externalId": st.none() | st.text(max_size=8) | st.floats() | st.just(""),
    "organizerEmail": st.none() | ADDRESSES | st.integers(),
    "invitees": st.none() | st.lists(ADDRESSES, max_size=4).map("; ".join)
    | st.lists(ADDRESSES, max_size=3).map(", ".join) | st.lists(ADDRESSES, max_size=2),
}


@st.composite
def plain_rows(draw: st.DrawFn) -> dict[str, Any]:
    """A valid row of a plain sheet, then (most of the time) one or two cells swapped for
    something from PLAIN_CELLS, or dropped."""
    start = draw(st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30)))
    end = start + timedelta(minutes=draw(st.integers(-30, 600)))
    offset = draw(st.sampled_from(["Z", "+01:00", "-05:30"]))
    valid = st.builds("{}@{}.com".format, NAMES, NAMES)
    fields: dict[str, Any] = {
        "startTime": start.replace(microsecond=0).isoformat() + offset,
        "endTime": end.replace(microsecond=0).isoformat() + draw(st.just(offset) | OFFSETS),
        "organizerEmail": draw(valid),
        "invitees": "; ".join(draw(st.lists(valid | ADDRESSES, max_size=4)))
        + draw(st.sampled_from(["", "; ", " ", " / "])),
        "title": draw(st.text(max_size=8)),
        "externalId": draw(st.sampled_from(["", "ext-1"]) | st.text(max_size=4)),
    }
    for name in draw(st.lists(st.sampled_from(sorted(PLAIN_CELLS)), max_size=2)):
        if draw(st.booleans()):
            fields[name] = draw(PLAIN_CELLS[name])
        else:
            fields.pop(name, None)
    return fields


@settings(max_examples=400, deadline=None)
@given(tz=st.sampled_from([None, "Europe/Berlin"]), line=st.integers(1, 10**6),
       separator=st.sampled_from([None, "; ", " / ", "\n", ","]), fields=plain_rows())
def test_the_plain_fast_path_gives_the_rows_the_general_path_gives(
        tz: str | None, line: int, separator: str | None, fields: dict[str, Any]) -> None:
    """For rows of a plain mapping, map() (fast path first) returns exactly the Row of the
    general path: the same payload, key and errors, or the general path's own errors."""
    mapping = {} if separator is None else {
        "invitees": {"column": "invitees", "separator": separator}}
    fast, general = make(mapping, tz=tz), make(mapping, tz=tz)
    assert fast._plain is not None  # noqa: SLF001
    general._plain = None  # noqa: SLF001 - the general path alone, as the reference
    assert fast.map(RawRow(line, fields)) == general.map(RawRow(line, fields))


def test_the_fast_path_serves_plain_rows_and_only_plain_mappings() -> None:
    """A sheet named after the API fields takes it; a row it does not handle, and a mapping
    with a rule of its own, go the general way."""
    plain = make()
    assert plain._plain is not None  # noqa: SLF001
    row = {"startTime": "2027-01-04T09:00:00Z", "endTime": "2027-01-04T09:30:00Z",
           "title": "Intro", "organizerEmail": "rep@seller.example", "externalId": "e-1",
           "invitees": "a@client.example; B@client.example, a@CLIENT.example"}
    fast = plain._plain.map(2, row)  # noqa: SLF001
    assert fast == plain.map(RawRow(2, row))
    assert fast is not None and fast.payload is not None
    assert fast.payload["invitees"] == [{"email": "a@client.example"},
                                        {"email": "B@client.example"}]
    assert plain._plain.map(2, {**row, "invitees": "Jane <j@x.io>"}) is None  # noqa: SLF001
    assert make({"filter": {"skip_if": {"column": "title", "equals": "x"}}})._plain is None  # noqa: SLF001
    assert make({"preset": "outlook"})._plain is None  # noqa: SLF001


def test_the_fast_path_splits_the_cell_the_general_path_splits() -> None:
    """With separator "; " a cell ending in "; " reads "b@x.com;" as its last item in the
    general path (the cell is stripped first), which is not an address: the fast path must not
    send that row (found by a review fuzzing both paths)."""
    mapper = make({"invitees": {"column": "invitees", "separator": "; "}})
    assert mapper._plain is not None  # noqa: SLF001
    fields = {"startTime": "2027-01-04T09:00:00Z", "endTime": "2027-01-04T09:30:00Z",
              "organizerEmail": "rep@seller.example", "invitees": "a@x.com; b@x.com; "}
    general = make({"invitees": {"column": "invitees", "separator": "; "}})
    general._plain = None  # noqa: SLF001
    row = mapper.map(RawRow(2, fields))
    assert row == general.map(RawRow(2, fields))
    assert row.payload is None and "'b@x.com;'" in " ".join(row.errors)
