"""The sandbox speaks the contract in bulkmeet/contract/openapi-meetings.json; its faults are exact.

Every test runs a real sandbox on a loopback port and talks to it with aiohttp; time-dependent
behaviour (rate windows, the daily budget, HTTP-dates) is driven by injected fake clocks.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import functools
import json
import os
import re
import select
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Awaitable, Callable
from datetime import timedelta
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any, NamedTuple, cast

import aiohttp
import jsonschema
import pytest

from bulkmeet import contract
from bulkmeet.sandbox import (
    ASSISTANT,
    DAY,
    MSG_DAILY_LIMITED,
    MSG_FAILED,
    MSG_FORBIDDEN,
    MSG_NO_MEETING,
    MSG_NO_USER,
    MSG_NOT_ORGANIZER,
    Sandbox,
    SandboxSettings,
    SandboxThread,
    loopback_host,
    serve,
    start_sandbox,
)

REPO = Path(__file__).resolve().parents[1]
MEETINGS, MEETING = "/v2/meetings", "/v2/meetings/{meetingId}"
STATUS = "/v2/meetings/integration/status"


def basic(text: str) -> str:
    return "Basic " + base64.b64encode(text.encode()).decode()


AUTH = {"Authorization": basic("key:secret")}
ORGANIZER = "ada@acme.example"
VALID: dict[str, Any] = {
    "startTime": "2024-05-02T10:00:00+02:00",
    "endTime": "2024-05-02T11:00:00+02:00",
    "title": "Kickoff",
    "invitees": [
        {"email": "cy@customer.example", "displayName": "Cy D", "firstName": "Cy", "lastName": "D"}
    ],
    "organizerEmail": ORGANIZER,
    "externalId": "row-1",
}
REQUEST_ID = re.compile(r"[a-z0-9]{19}")
IMF_FIXDATE = re.compile(r"[A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} GMT")


class FakeClock:
    """A clock that only moves when told to."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Answer(NamedTuple):
    status: int
    headers: dict[str, str]
    body: Any


Scenario = Callable[[Sandbox, aiohttp.ClientSession], Awaitable[None]]


def drive(scenario: Scenario, **settings: Any) -> None:
    """Run `scenario` against a fresh sandbox on a loopback port, with one client session."""

    async def main() -> None:
        async with await start_sandbox(SandboxSettings(**settings)) as sandbox:
            async with aiohttp.ClientSession(sandbox.url) as http:
                await scenario(sandbox, http)

    asyncio.run(main())


async def call(
    http: aiohttp.ClientSession, method: str, path: str, body: Any = None, *,
    raw: bytes | None = None, headers: dict[str, str] = AUTH,
) -> Answer:
    data = raw if raw is not None else json.dumps(body).encode()
    sent = {"Content-Type": "application/json", **headers}
    async with http.request(method, path, data=data, headers=sent) as resp:
        return Answer(resp.status, dict(resp.headers), await resp.json())


async def create(http: aiohttp.ClientSession, **changes: Any) -> Answer:
    return await call(http, "POST", MEETINGS, {**VALID, **changes})


# --- the contract ---------------------------------------------------------------------------


@functools.cache
def spec() -> dict[str, Any]:
    return copy.deepcopy(contract.spec())


@functools.cache
def closed_components() -> dict[str, Any]:
    """The spec's schemas with additionalProperties: false, so an answer holding a field the
    contract does not declare (say a requestId on DELETE) fails too."""
    components = json.loads(json.dumps(spec()["components"]))
    for schema in components["schemas"].values():
        if schema.get("type") == "object":
            schema["additionalProperties"] = False
    return cast(dict[str, Any], components)


def assert_schema(schema: dict[str, Any], data: Any) -> None:
    """Validate against a (possibly $ref) schema, resolving refs into the spec's components."""
    jsonschema.Draft4Validator({**schema, "components": closed_components()}).validate(data)


def assert_contract(path: str, method: str, answer: Answer) -> None:
    """The answer's status is documented for the operation, and its body fits that schema."""
    responses = spec()["paths"][path][method.lower()]["responses"]
    assert str(answer.status) in responses, f"{answer.status} is not documented for {method} {path}"
    content = responses[str(answer.status)]["content"]["application/json"]
    assert_schema(content["schema"], answer.body)
    if answer.status != 200 or "requestId" in answer.body:
        assert REQUEST_ID.fullmatch(answer.body["requestId"])


def test_create_answer_follows_the_contract() -> None:
    """POST /v2/meetings answers 200 with a NewMeetingResponse and stores the meeting."""

    async def scenario(sandbox: Sandbox, http: aiohttp.ClientSession) -> None:
        answer = await create(http)
        assert answer.status == 200
        assert_contract(MEETINGS, "POST", answer)
        meeting_id = answer.body["meetingId"]
        assert meeting_id.isdigit() and len(meeting_id) <= 20
        assert answer.body["additionalInvitees"] == [ASSISTANT]
        assert answer.body["meetingUrl"].startswith("https://")
        stored = sandbox.state.meetings[meeting_id]
        assert stored == {**VALID, "meetingId": meeting_id, "meetingUrl": answer.body["meetingUrl"]}
        assert sandbox.state.created_by_external_id["row-1"] == 1
        assert sandbox.state.creates == 1

    drive(scenario, rate=None)


def test_meeting_ids_and_request_ids_are_unique() -> None:
    """Each create gets its own meetingId, and each answer its own requestId."""

    async def scenario(sandbox: Sandbox, http: aiohttp.ClientSession) -> None:
        answers = [await create(http, externalId=f"row-{i}") for i in range(50)]
        assert len({a.body["meetingId"] for a in answers}) == 50
        assert len({a.body["requestId"] for a in answers}) == 50
        assert len(sandbox.state.meetings) == 50

    drive(scenario, rate=None)


def test_update_answer_follows_the_contract_and_updates_the_meeting() -> None:
    """PUT /v2/meetings/{id} answers 200 {requestId, meetingId} and changes the stored fields."""

    async def scenario(sandbox: Sandbox, http: aiohttp.ClientSession) -> None:
        created = await create(http)
        meeting_id = created.body["meetingId"]
        answer = await call(http, "PUT", f"{MEETINGS}/{meeting_id}", {**VALID, "title": "Moved"})
        assert answer.status == 200
        assert_contract(MEETING, "PUT", answer)
        assert answer.body["meetingId"] == meeting_id
        stored = sandbox.state.meetings[meeting_id]
        assert stored["title"] == "Moved"
        assert stored["meetingUrl"] == created.body["meetingUrl"]
        assert sandbox.state.updates == 1
        assert sandbox.state.created_by_external_id["row-1"] == 1  # an update is not a create

    drive(scenario, rate=None)


def test_delete_echoes_the_organizer_and_removes_the_meeting() -> None:
    """DELETE answers exactly {organizerEmail} (its 200 schema) and the meeting is gone after."""

    async def scenario(sandbox: Sandbox, http: aiohttp.ClientSession) -> None:
        meeting_id = (await create(http)).body["meetingId"]
        path = f"{MEETINGS}/{meeting_id}"
        answer = await call(http, "DELETE", path, {"organizerEmail": ORGANIZER})
        assert answer.status == 200
        assert_contract(MEETING, "DELETE", answer)
        assert answer.body == {"organizerEmail": ORGANIZER}
        assert meeting_id not in sandbox.state.meetings
        assert sandbox.state.deletes == 1
        again = await call(http, "DELETE", path, {"organizerEmail": ORGANIZER})
        assert again.status == 404
        assert again.body["errors"] == [MSG_NO_MEETING]

    drive(scenario, rate=None)


def test_integration_status_follows_the_contract() -> None:
    """integration/status reports exists/valid per email, with the error and URLs when invalid."""
    settings = {"rate": None, "invalid_integration": frozenset({"bo@acme.example"})}

    async def scenario(sandbox: Sandbox, http: aiohttp.ClientSession) -> None:
        emails = [ORGANIZER, "BO@acme.example", "who@unknown.example"]
        answer = await call(http, "POST", STATUS, {"emails": emails})
        assert answer.status == 200
        assert_contract(STATUS, "POST", answer)
        users = answer.body["users"]
        assert [(u["email"], u["exists"], u["valid"]) for u in users] == [
            (ORGANIZER, True, True),
            ("BO@acme.example", True, False),
            ("who@unknown.example", False, False),
        ]
        assert "userFacingError" not in users[0]
        for user in users[1:]:
            assert user["userFacingError"] and user["fixUrl"] and user["helpUrl"]

    drive(scenario, **settings)


# --- 400: every kind of bad body --------------------------------------------------------------


def without(name: str) -> dict[str, Any]:
    return {k: v for k, v in VALID.items() if k != name}


BAD_CREATES: list[tuple[str, Any, str]] = [
    ("array", [VALID], "must be a JSON object"),
    ("null", None, "must be a JSON object"),
    *[(f"no-{n}", without(n), f"{n} is required")
      for n in ("startTime", "endTime", "invitees", "organizerEmail")],
    ("start-number", {**VALID, "startTime": 1714636800}, "startTime must be a string"),
    ("title-null", {**VALID, "title": None}, "title must be a string"),
    ("external-number", {**VALID, "externalId": 7}, "externalId must be a string"),
    ("organizer-list", {**VALID, "organizerEmail": [ORGANIZER]}, "organizerEmail must be a string"),
    ("invitees-string", {**VALID, "invitees": "cy@customer.example"}, "invitees must be an array"),
    ("invitee-string", {**VALID, "invitees": ["cy@customer.example"]}, "invitees[0] must be an"),
    ("invitee-email-number", {**VALID, "invitees": [{"email": 5}]}, "invitees[0].email must be"),
    ("no-offset", {**VALID, "startTime": "2024-05-02T10:00:00"}, "startTime must be an ISO-8601"),
    ("date-only", {**VALID, "endTime": "2024-05-02"}, "endTime must be an ISO-8601"),
    ("space", {**VALID, "startTime": "2024-05-02 10:00:00Z"}, "startTime must be an ISO-8601"),
    ("month-13", {**VALID, "startTime": "2024-13-02T10:00:00Z"}, "startTime must be an ISO-8601"),
    ("prose", {**VALID, "startTime": "tomorrow at ten"}, "startTime must be an ISO-8601"),
    ("end-before-start", {**VALID, "endTime": "2024-05-02T07:59:00Z"}, "endTime must be after"),
    ("end-equals-start", {**VALID, "endTime": "2024-05-02T08:00:00Z"}, "endTime must be after"),
]


@pytest.mark.parametrize(("body", "expected"), [c[1:] for c in BAD_CREATES],
                         ids=[c[0] for c in BAD_CREATES])
def test_bad_create_body_is_400_naming_the_problem(body: Any, expected: str) -> None:
    """Each way a NewMeetingRequest can be malformed gets a 400 whose errors name it."""

    async def scenario(sandbox: Sandbox, http: aiohttp.ClientSession) -> None:
        answer = await call(http, "POST", MEETINGS, body)
        assert answer.status == 400
        assert_contract(MEETINGS, "POST", answer)
        assert any(expected in e for e in answer.body["errors"]), answer.body["errors"]
        assert sandbox.state.creates == 0 and not sandbox.state.meetings

    drive(scenario, rate=None)


@pytest.mark.parametrize(
    "raw", [b"{not json", b"", b'{"startTime": '], ids=["junk", "empty", "cut"]
)
def test_unparsable_json_is_400(raw: bytes) -> None:
    """A body that is not JSON at all is a 400 that says so, and the log keeps no body."""

    async def scenario(sandbox: Sandbox, http: aiohttp.ClientSession) -> None:
        answer = await call(http, "POST", MEETINGS, raw=raw)
        assert answer.status == 400
        assert answer.body["errors"] == ["the request body is not valid JSON"]
        assert sandbox.state.log[-1].body is None

    drive(scenario, rate=None)


def test_every_problem_is_named_at_once() -> None:
    """A body with several problems gets one 400 listing all of them."""

    async def scenario(sandbox: Sandbox, http: aiohttp.ClientSession) -> None:
        body = {**without("startTime"), "invitees": {}, "title": 3}
        answer = await call(http, "POST", MEETINGS, body)
        assert answer.status == 400
        assert answer.body["errors"] == [
            "startTime is required",
            "title must be a string",
            "invitees must be an array of objects",
        ]

    drive(scenario, rate=None)


def test_bad_update_and_delete_requests_are_400() -> None:
    """PUT checks UpdateMeetingRequest and the integer meetingId; DELETE needs organizerEmail."""

    async def scenario(sandbox: Sandbox, http: aiohttp.ClientSession) -> None:
        meeting_id = (await create(http)).body["meetingId"]
        path = f"{MEETINGS}/{meeting_id}"
        answer = await call(http, "PUT", path, without("endTime"))
        assert (answer.status, answer.body["errors"]) == (400, ["endTime is required"])
        assert_contract(MEETING, "PUT", answer)
        answer = await call(http, "PUT", f"{MEETINGS}/abc", VALID)
        assert answer.status == 400 and "meetingId must be an integer" in answer.body["errors"][0]
        answer = await call(http, "DELETE", path, {})
        assert answer.status == 400 and "organizerEmail is required" in answer.body["errors"][0]
        assert_contract(MEETING, "DELETE", answer)
        answer = await call(http, "DELETE", path, raw=b"")
        assert answer.status == 400
        assert sandbox.state.meetings[meeting_id]["title"] == "Kickoff"
        assert (sandbox.state.updates, sandbox.state.deletes) == (0, 0)

    drive(scenario, rate=None)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({}, "emails is required"),
        ({"emails": ORGANIZER}, "emails must be an array"),
        ({"emails": [ORGANIZER, 3]}, "emails[1] must be a string"),
        ({"emails": [f"u{i}@acme.example" for i in range(101)]}, "at most 100"),
    ],
    ids=["missing", "string", "item-number", "101-emails"],
)
def test_bad_status_body_is_400(body: Any, expected: str) -> None:
    """integration/status takes an array of at most 100 email strings."""

    async def scenario(sandbox: Sandbox, http: aiohttp.ClientSession) -> None:
        answer = await call(http, "POST", STATUS, body)
        assert answer.status == 400
        assert_contract(STATUS, "POST", answer)
        assert any(expected in e for e in answer.body["errors"]), answer.body["errors"]
        full = await call(http, "POST", STATUS, {"emails": [ORGANIZER] * 100})
        assert full.status == 200 and len(full.body["users"]) == 100

    drive(scenario, rate=None)


# --- 401 / 403 --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": ""},
        {"Authorization": "Basic"},
        {"Authorization": "Basic !!!not-base64!!!"},
        {"Authorization": basic("key:")},
        {"Authorization": basic(":secret")},
        {"Authorization": basic("no-colon")},
        {"Authorization": "Basic " + base64.b64encode(b"\xff\xfe:x").decode()},
        {"Authorization": "Bearer"},
        {"Authorization": "Token abc"},
    ],
    ids=["none", "empty", "basic-bare", "not-base64", "no-secret", "no-key", "no-colon",
         "not-utf8", "bearer-bare", "other-scheme"],
)
def test_missing_or_malformed_auth_is_401(headers: dict[str, str]) -> None:
    """Without a well-formed Basic key:secret or Bearer token every endpoint answers 401."""

    async def scenario(sandbox: Sandbox, http: aiohttp.ClientSession) -> None:
        for method, path, body in [("POST", MEETINGS, VALID), ("PUT", f"{MEETINGS}/1", VALID),
                                   ("DELETE", f"{MEETINGS}/1", {"organizerEmail": ORGANIZER}),
                                   ("POST", STATUS, {"emails": [ORGANIZER]})]:
            answer = await call(http, method, path, body, headers=headers)
            assert answer.status == 401
            assert answer.headers["WWW-Authenticate"].startswith("Basic")
            assert_schema({"$ref": "#/components/schemas/ErrorResponse"}, answer.body)
        assert sandbox.state.creates == 0

    drive(scenario, rate=None)


@pytest.mark.parametrize(
    "authorization", [basic("key:secret"), "basic " + basic("k:s")[6:], "Bearer tok", "bearer tok"]
)
def test_any_well_formed_credentials_pass_by_default(authorization: str) -> None:
    """With no credentials configured any Basic key:secret or Bearer token is accepted,
    whatever the case of the scheme name."""

    async def scenario(sandbox: Sandbox, http: aiohttp.ClientSession) -> None:
        answer = await call(http, "POST", MEETINGS, VALID, headers={"Authorization": authorization})
        assert answer.status == 200

    drive(scenario, rate=None)


def test_configured_credentials_must_match() -> None:
    """With credentials and a bearer set only those pass; other well-formed ones are 401."""

    async def scenario(sandbox: Sandbox, http: aiohttp.ClientSession) -> None:
        cases = [(basic("k:s"), 200), (basic("k:wrong"), 401), (basic("other:s"), 401),
                 ("Bearer tok", 200), ("Bearer other", 401)]
        for authorization, status in cases:
            answer = await call(http, "POST", STATUS, {"emails": []},
                                headers={"Authorization": authorization})
            assert answer.status == status, authorization

    drive(scenario, rate=None, credentials=("k", "s"), bearer="tok")


def test_forbidden_answers_403_limited_release_everywhere_after_auth() -> None:
    """forbidden=True: every operation answers the documented 403; a missing auth is still 401."""

    async def scenario(sandbox: Sandbox, http: aiohttp.ClientSession) -> None:
        for method, path, template, body in [
            ("POST", MEETINGS, MEETINGS, VALID),
            ("PUT", f"{MEETINGS}/1", MEETING, VALID),
            ("DELETE", f"{MEETINGS}/1", MEETING, {"organizerEmail": ORGANIZER}),
            ("POST", STATUS, STATUS, {"emails": [ORGANIZER]}),
        ]:
            answer = await call(http, method, path, body)
            assert answer.status == 403
            assert_contract(template, method, answer)
            assert answer.body["errors"] == [MSG_FORBIDDEN]
        assert (await call(http, "POST", MEETINGS, VALID, headers={})).status == 401
        assert sandbox.state.creates == 0

    drive(scenario, rate=None, forbidden=True)


# --- 404 --------------------------------------------------------------------------------------


def test_unknown_organizer_is_404() -> None:
    """Organizers in unknown_organizers (any case) or at unknown.example get the documented 404."""

    async def scenario(sandbox: Sandbox, http: aiohttp.ClientSession) -> None:
        for organizer in ["nobody@unknown.example", "gone@acme.example", "not-an-email"]:
            answer = await create(http, organizerEmail=organizer)
            assert answer.status == 404, organizer
            assert_contract(MEETINGS, "POST", answer)
            assert answer.body["errors"] == [MSG_NO_USER]
        assert sandbox.state.creates == 0
        meeting_id = (await create(http)).body["meetingId"]
        answer = await call(http, "PUT", f"{MEETINGS}/{meeting_id}",
                            {**VALID, "organizerEmail": "x@unknown.example"})
        assert (answer.status, answer.body["errors"]) == (404, [MSG_NO_USER])

    drive(scenario, rate=None, unknown_organizers=frozenset({"GONE@acme.example"}))


def test_unknown_meeting_is_404() -> None:
    """PUT and DELETE of an id never issued, or by another organizer, answer 404 and change
    nothing."""

    async def scenario(sandbox: Sandbox, http: aiohttp.ClientSession) -> None:
        answer = await call(http, "PUT", f"{MEETINGS}/123", VALID)
        assert (answer.status, answer.body["errors"]) == (404, [MSG_NO_MEETING])
        assert_contract(MEETING, "PUT", answer)
        answer = await call(http, "DELETE", f"{MEETINGS}/123", {"organizerEmail": ORGANIZER})
        assert (answer.status, answer.body["errors"]) == (404, [MSG_NO_MEETING])
        assert_contract(MEETING, "DELETE", answer)
        meeting_id = (await create(http)).body["meetingId"]
        answer = await call(http, "DELETE", f"{MEETINGS}/{meeting_id}",
                            {"organizerEmail": "eve@acme.example"})
        assert (answer.status, answer.body["errors"]) == (404, [MSG_NOT_ORGANIZER])
        assert meeting_id in sandbox.state.meetings

    drive(scenario, rate=None)


# --- 429: rate windows, daily budget, Retry-After ---------------------------------------------


async def statuses_at(
    http: aiohttp.ClientSession, clock: FakeClock, times: list[float]
) -> list[tuple[int, str | None]]:
    """(status, Retry-After) of one status call at each clock time."""
    seen = []
    for t in times:
        clock.now = t
        answer = await call(http, "POST", STATUS, {"emails": []})
        seen.append((answer.status, answer.headers.get("Retry-After")))
    return seen


OK, LIMITED = (200, None), (429, "1")
WINDOW_CASES = {
    # requests in (t-1, t]: the slot held by 100.0 frees at 101.0, the one held by 100.2 at 101.2
    "sliding": (3.0, [100.0, 100.2, 100.4, 100.5, 100.99, 101.0, 101.0, 101.2],
                [OK, OK, OK, LIMITED, LIMITED, OK, LIMITED, OK]),
    # whole clock seconds: a burst at the end of one and the start of the next is allowed
    "fixed": (3.0, [100.7, 100.8, 100.9, 100.95, 101.0, 101.0, 101.0, 101.5],
              [OK, OK, OK, LIMITED, OK, OK, OK, LIMITED]),
    # capacity 2, refilled at 2/s, never above capacity
    "bucket": (2.0, [100.0, 100.0, 100.0, 100.5, 100.5, 110.0, 110.0, 110.0],
               [OK, OK, LIMITED, OK, LIMITED, OK, OK, LIMITED]),
}


@pytest.mark.parametrize("window", list(WINDOW_CASES))
def test_rate_windows_answer_429_and_rejections_spend_nothing(window: str) -> None:
    """Each window mode counts as documented; a 429 does not use up capacity."""
    rate, times, expected = WINDOW_CASES[window]
    clock = FakeClock(0.0)

    async def scenario(sandbox: Sandbox, http: aiohttp.ClientSession) -> None:
        assert await statuses_at(http, clock, times) == expected
        assert sandbox.state.rate_limited == expected.count(LIMITED)
        assert [e.status for e in sandbox.state.log] == [status for status, _ in expected]

    drive(scenario, rate=rate, window=window, clock=clock)


def test_429_body_follows_the_contract() -> None:
    """The 429 answer is a documented ErrorResponse with an integer Retry-After."""
    clock = FakeClock(5.0)

    async def scenario(sandbox: Sandbox, http: aiohttp.ClientSession) -> None:
        await create(http)
        answer = await create(http)
        assert answer.status == 429
        assert_contract(MEETINGS, "POST", answer)
        assert_schema({"type": "integer"}, int(answer.headers["Retry-After"]))
        assert sandbox.state.creates == 1

    drive(scenario, rate=1.0, clock=clock)


def test_retry_after_is_the_ceiling_of_the_wait() -> None:
    """Retry-After counts whole seconds until a slot frees, rounded up (bucket at 0.25/s: 4 s,
    and 2 s once half of it has passed)."""
    clock = FakeClock(0.0)

    async def scenario(sandbox: Sandbox, http: aiohttp.ClientSession) -> None:
        assert await statuses_at(http, clock, [0.0, 0.0, 2.0, 3.9, 4.0]) == [
            (200, None), (429, "4"), (429, "2"), (429, "1"), (200, None)
        ]

    drive(scenario, rate=0.25, window="bucket", clock=clock)


def test_retry_after_as_http_date() -> None:
    """retry_after="date" sends an IMF-fixdate: the wall-clock time the slot frees, rounded up."""
    clock, wall = FakeClock(50.0), FakeClock(1_700_000_000.25)

    async def scenario(sandbox: Sandbox, http: aiohttp.ClientSession) -> None:
        (_, first), (status, header) = await statuses_at(http, clock, [50.0, 50.4])
        assert (first, status) == (None, 429)
        assert header is not None and IMF_FIXDATE.fullmatch(header)
        when = parsedate_to_datetime(header)
        assert when.utcoffset() == timedelta(0)
        assert when.timestamp() == 1_700_000_001  # 0.25 + 0.6 s rounded up to the next second

    drive(scenario, rate=1.0, retry_after="date", clock=clock, wall_clock=wall)


def test_retry_after_fixed_and_omitted() -> None:
    """retry_after_fixed forces the value (as seconds or as a date); "none" omits the header."""
    wall = FakeClock(1_700_000_000.0)

    async def fixed(sandbox: Sandbox, http: aiohttp.ClientSession) -> None:
        await create(http)
        assert (await create(http)).headers["Retry-After"] == "7"

    async def fixed_date(sandbox: Sandbox, http: aiohttp.ClientSession) -> None:
        await create(http)
        header = (await create(http)).headers["Retry-After"]
        assert parsedate_to_datetime(header).timestamp() == 1_700_000_007

    async def omitted(sandbox: Sandbox, http: aiohttp.ClientSession) -> None:
        await create(http)
        answer = await create(http)
        assert answer.status == 429 and "Retry-After" not in answer.headers

    drive(fixed, rate=1.0, retry_after_fixed=7, clock=FakeClock(0.0))
    drive(fixed_date, rate=1.0, retry_after="date", retry_after_fixed=7, clock=FakeClock(0.0),
          wall_clock=wall)
    drive(omitted, rate=1.0, retry_after="none", clock=FakeClock(0.0))


def test_daily_budget_answers_429_until_utc_midnight() -> None:
    """Past `daily` accepted calls: 429 with Retry-After = seconds to the next UTC midnight;
    the budget is whole again after it."""
    wall = FakeClock(19_000 * DAY + DAY - 3600.5)  # 22:59:59.5 UTC

    async def scenario(sandbox: Sandbox, http: aiohttp.ClientSession) -> None:
        clock = FakeClock(0.0)
        assert await statuses_at(http, clock, [0.0, 0.0, 0.0, 0.0]) == [
            (200, None), (200, None), (429, "3601"), (429, "3601")
        ]
        wall.now = 19_001 * DAY
        assert await statuses_at(http, clock, [0.0, 0.0, 0.0]) == [
            (200, None), (200, None), (429, str(DAY))
        ]

    drive(scenario, rate=None, daily=2, wall_clock=wall)


def test_rate_and_daily_rejections_spend_neither_budget() -> None:
    """A rate 429 does not spend the daily budget, and a daily 429 does not spend the rate."""
    clock, wall = FakeClock(0.0), FakeClock(19_000 * DAY + 10.0)

    async def scenario(sandbox: Sandbox, http: aiohttp.ClientSession) -> None:
        seen = await statuses_at(http, clock, [0.0, 0.5, 1.0, 2.0])
        assert [s for s, _ in seen] == [200, 429, 200, 429]  # the last one is the daily limit
        wall.now += DAY
        assert [s for s, _ in await statuses_at(http, clock, [2.5])] == [200]

    drive(scenario, rate=1.0, daily=2, clock=clock, wall_clock=wall)


def test_checks_run_in_the_documented_order() -> None:
    """auth before rate (a 401 spends nothing), rate before validation (a bad body can be 429)."""
    clock = FakeClock(0.0)

    async def scenario(sandbox: Sandbox, http: aiohttp.ClientSession) -> None:
        assert (await call(http, "POST", MEETINGS, VALID, headers={})).status == 401
        assert (await create(http)).status == 200
        clock.now = 0.5
        assert (await call(http, "POST", MEETINGS, {})).status == 429
        clock.now = 1.0
        assert (await call(http, "POST", MEETINGS, {})).status == 400

    drive(scenario, rate=1.0, clock=clock)


# --- injected faults --------------------------------------------------------------------------


def test_fail_rate_one_answers_500_before_validation() -> None:
    """fail_rate=1.0: every request is a documented 500, even a bad one; nothing is created."""

    async def scenario(sandbox: Sandbox, http: aiohttp.ClientSession) -> None:
        for body in (VALID, {}, {**VALID, "organizerEmail": "x@unknown.example"}):
            answer = await call(http, "POST", MEETINGS, body)
            assert answer.status == 500
            assert_contract(MEETINGS, "POST", answer)
            assert answer.body["errors"] == [MSG_FAILED]
        assert sandbox.state.creates == 0 and sandbox.state.by_status[500] == 3

    drive(scenario, rate=None, fail_rate=1.0)


def test_seed_makes_faults_repeatable() -> None:
    """The same seed gives the same sequence of injected failures."""
    runs: list[list[int]] = []

    async def scenario(sandbox: Sandbox, http: aiohttp.ClientSession) -> None:
        runs.append([(await create(http, externalId=f"r{i}")).status for i in range(30)])

    drive(scenario, rate=None, fail_rate=0.5, seed=7)
    drive(scenario, rate=None, fail_rate=0.5, seed=7)
    assert runs[0] == runs[1]
    assert set(runs[0]) == {200, 500}


DISCONNECTED = (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError)


def test_drop_closes_the_connection_without_creating() -> None:
    """drop_rate=1.0: the client sees a disconnect, and by default nothing was created."""

    async def scenario(sandbox: Sandbox, http: aiohttp.ClientSession) -> None:
        with pytest.raises(DISCONNECTED):
            await create(http)
        assert sandbox.state.creates == 0 and not sandbox.state.meetings
        assert sandbox.state.dropped == 1
        assert sandbox.state.log[-1].status is None
        assert not sandbox.state.by_status

    drive(scenario, rate=None, drop_rate=1.0)


def test_drop_after_create_loses_the_answer_but_keeps_the_meeting() -> None:
    """drop_after_create: the meeting exists though the client saw a disconnect, so a blind
    retry makes a second one - the duplicate the counter exists to catch."""

    async def scenario(sandbox: Sandbox, http: aiohttp.ClientSession) -> None:
        with pytest.raises(DISCONNECTED):
            await create(http)
        assert sandbox.state.created_by_external_id["row-1"] == 1
        [meeting] = sandbox.state.meetings.values()
        assert meeting["externalId"] == "row-1"
        with pytest.raises(DISCONNECTED):
            await create(http)
        assert sandbox.state.created_by_external_id["row-1"] == 2
        assert sandbox.state.stats()["duplicate_external_ids"] == {"row-1": 2}

    drive(scenario, rate=None, drop_rate=1.0, drop_after_create=True)


# --- counters and inspection ------------------------------------------------------------------


def test_counters_log_and_inspection_endpoints() -> None:
    """Concurrent requests are counted in flight; the log, /_sandbox/stats and /_sandbox/meetings
    (which need no auth and are not counted) report what happened."""
    clock = FakeClock(42.0)

    async def scenario(sandbox: Sandbox, http: aiohttp.ClientSession) -> None:
        answers = await asyncio.gather(*(create(http, externalId=f"r{i}") for i in range(5)))
        assert [a.status for a in answers] == [200] * 5
        await call(http, "POST", MEETINGS, {})
        state = sandbox.state
        assert (state.max_in_flight, state.in_flight) == (5, 0)
        assert state.requests == 6 and dict(state.by_status) == {200: 5, 400: 1}
        assert [(e.time, e.method, e.path) for e in state.log] == [(42.0, "POST", MEETINGS)] * 6
        assert sorted(e.body["externalId"] for e in list(state.log)[:5]) == [
            f"r{i}" for i in range(5)
        ]
        async with http.get("/_sandbox/stats") as resp:
            stats = await resp.json()
        assert stats == state.stats()
        assert stats["by_status"] == {"200": 5, "400": 1} and stats["creates"] == 5
        assert stats["max_in_flight"] == 5 and stats["rate_limited"] == 0
        async with http.get("/_sandbox/meetings") as resp:
            listed = (await resp.json())["meetings"]
        ids = sorted(a.body["meetingId"] for a in answers)
        assert sorted(m["meetingId"] for m in listed) == ids
        assert state.requests == 6

    drive(scenario, rate=None, latency=0.05, clock=clock)


def test_log_limit_keeps_the_newest_entries() -> None:
    """log_limit bounds the request log, keeping the most recent requests."""

    async def scenario(sandbox: Sandbox, http: aiohttp.ClientSession) -> None:
        for i in range(5):
            await create(http, externalId=f"r{i}")
        assert [e.body["externalId"] for e in sandbox.state.log] == ["r3", "r4"]
        assert sandbox.state.requests == 5

    drive(scenario, rate=None, log_limit=2)


# --- starting and stopping --------------------------------------------------------------------


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.10", "example.com", "::", ""])
def test_non_loopback_hosts_are_refused(host: str) -> None:
    """The sandbox never listens beyond loopback."""
    with pytest.raises(ValueError, match="loopback"):
        asyncio.run(start_sandbox(host=host))
    with pytest.raises(ValueError, match="loopback"):
        SandboxThread(host=host)


def test_loopback_hosts_are_accepted() -> None:
    """All of 127.0.0.0/8, ::1 and localhost count as loopback; localhost binds 127.0.0.1."""
    assert loopback_host("127.0.0.2") == "127.0.0.2"
    assert loopback_host("::1") == loopback_host("[::1]") == "::1"
    assert loopback_host("localhost") == "127.0.0.1"

    async def main() -> None:
        async with await start_sandbox(host="localhost") as sandbox:
            assert re.fullmatch(r"http://127\.0\.0\.1:\d+", sandbox.url)

    asyncio.run(main())


def test_settings_are_checked() -> None:
    """Impossible settings are refused when made, naming the field."""
    cases: list[dict[str, Any]] = [
        {"rate": 0}, {"fail_rate": 1.5}, {"drop_rate": -0.1}, {"latency": -1}, {"daily": -1},
        {"window": "weird"}, {"retry_after": "minutes"}, {"credentials": ("k", "")},
    ]
    for bad in cases:
        with pytest.raises(ValueError, match=next(iter(bad))):
            SandboxSettings(**bad)


def test_sandbox_thread_serves_synchronous_callers() -> None:
    """SandboxThread runs the sandbox in the background for code without an event loop."""
    with SandboxThread(SandboxSettings(rate=None)) as sandbox:
        request = urllib.request.Request(
            sandbox.url + MEETINGS, data=json.dumps(VALID).encode(), method="POST",
            headers={"Content-Type": "application/json", **AUTH},
        )
        with urllib.request.urlopen(request, timeout=5) as resp:
            assert resp.status == 200
            meeting_id = json.load(resp)["meetingId"]
        with urllib.request.urlopen(sandbox.url + "/_sandbox/stats", timeout=5) as resp:
            assert json.load(resp)["creates"] == 1
    assert list(sandbox.state.meetings) == [meeting_id]


@pytest.mark.slow
@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_sandbox_command_prints_its_url_and_stops_on_sigint_and_sigterm() -> None:
    """`bulkmeet sandbox` prints one line ending in its URL to stderr, serves, and exits 0 on
    SIGINT and on SIGTERM, saying it stops. (Both children start at once: most of the time is
    Python starting up.)"""
    argv = [sys.executable, "-m", "bulkmeet", "sandbox", "--port", "0"]
    path = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    children = {
        sig: subprocess.Popen(argv, stderr=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONPATH": path})
        for sig in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        for sig, proc in children.items():
            assert proc.stderr is not None
            ready, _, _ = select.select([proc.stderr], [], [], 10)
            assert ready, "no line on stderr within 10 s"
            line = proc.stderr.readline()
            url = line.split()[-1]
            assert re.fullmatch(r"http://127\.0\.0\.1:\d+", url), line
            with urllib.request.urlopen(url + "/_sandbox/stats", timeout=5) as resp:
                assert json.load(resp)["requests"] == 0
            proc.send_signal(sig)
            assert proc.wait(timeout=10) == 0, sig
            rest = proc.stderr.read()
            assert "Traceback" not in rest
            assert rest.startswith("bulkmeet: stopping"), rest
    finally:
        for proc in children.values():
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            if proc.stderr is not None:
                proc.stderr.close()


def test_serve_runs_until_told_to_stop_and_prints_nothing(
        capfd: pytest.CaptureFixture[str]) -> None:
    """serve() calls on_ready once it listens and returns once `stop` is set; the printing and
    the signals are the CLI's."""
    async def scenario() -> None:
        stop, listening = asyncio.Event(), asyncio.Event()
        seen: list[Sandbox] = []

        def on_ready(sandbox: Sandbox) -> None:
            seen.append(sandbox)
            listening.set()

        async def stats_then_stop() -> dict[str, Any]:
            await listening.wait()
            async with aiohttp.ClientSession() as http, \
                    http.get(seen[0].url + "/_sandbox/stats") as resp:
                stats = cast(dict[str, Any], await resp.json())
            stop.set()
            return stats

        client = asyncio.create_task(stats_then_stop())
        await asyncio.wait_for(
            serve(SandboxSettings(rate=None), stop=stop, port=0, on_ready=on_ready), 10)
        assert (await client)["requests"] == 0
        assert len(seen) == 1

    asyncio.run(scenario())
    assert capfd.readouterr() == ("", "")


def test_every_public_name_is_exported() -> None:
    """`from bulkmeet.sandbox import X` keeps working for what the modules inside define."""
    import bulkmeet.sandbox as package

    assert sorted(package.__all__) == sorted(set(package.__all__))
    for name in package.__all__:
        assert getattr(package, name) is not None, name


def test_sandbox_command_bad_setting_is_one_line() -> None:
    """A setting the sandbox refuses is a usage error (exit 2), not a traceback."""
    from click.testing import CliRunner

    from bulkmeet.cli import main

    res = CliRunner().invoke(main, ["sandbox", "--fail-rate", "2", "--port", "0"])
    assert res.exit_code == 2, (res.exception, res.output)
    assert res.stderr == "bulkmeet: error: fail_rate must be in [0, 1], not 2.0\n"


# --- the neighbour: another integration spending the same quota (real clock, loopback) ------


async def stats(http: aiohttp.ClientSession) -> dict[str, Any]:
    async with http.get("/_sandbox/stats") as resp:
        return cast(dict[str, Any], await resp.json())


def test_the_neighbour_competes_for_the_same_window_and_its_refusals_are_reported() -> None:
    """A neighbour at 20/s for 0.3 s on a 3/s sliding window: 6 calls, the first 3 fit, the
    other 3 are refused, and an API call right after finds the window full (429)."""

    async def scenario(sandbox: Sandbox, http: aiohttp.ClientSession) -> None:
        await asyncio.sleep(0.4)
        answer = await create(http)
        assert answer.status == 429
        assert (await stats(http))["neighbour"] == {"rate": 20.0, "calls": 6, "refused": 3}

    drive(scenario, rate=3.0, window="sliding", neighbour=20.0, neighbour_for=0.3)


def test_the_neighbour_spends_the_daily_budget_too() -> None:
    """daily 2: the neighbour's first two calls spend it; its next ones and the API's are
    refused for the day."""

    async def scenario(sandbox: Sandbox, http: aiohttp.ClientSession) -> None:
        await asyncio.sleep(0.3)
        answer = await create(http)
        assert answer.status == 429 and answer.body["errors"] == [MSG_DAILY_LIMITED]
        assert (await stats(http))["neighbour"] == {"rate": 20.0, "calls": 5, "refused": 3}

    drive(scenario, rate=None, daily=2, neighbour=20.0, neighbour_for=0.25)


@pytest.mark.slow
@pytest.mark.parametrize("window", ["fixed", "sliding", "bucket"])
def test_a_neighbour_at_exactly_the_limit_is_never_refused_by_itself(window: str) -> None:
    """Its calls are charged at their due times, so a steady 3/s fits a 3/s window of every
    kind however late the loop wakes it."""

    async def scenario(sandbox: Sandbox, http: aiohttp.ClientSession) -> None:
        await asyncio.sleep(1.9)
        neighbour = (await stats(http))["neighbour"]
        assert neighbour["calls"] == 6 and neighbour["refused"] == 0

    drive(scenario, rate=3.0, window=window, neighbour=3.0, neighbour_for=2.0)


def test_without_a_neighbour_the_stats_say_so() -> None:
    async def scenario(sandbox: Sandbox, http: aiohttp.ClientSession) -> None:
        assert (await stats(http))["neighbour"] == {"rate": 0.0, "calls": 0, "refused": 0}

    drive(scenario)


@pytest.mark.parametrize("field", ["neighbour", "neighbour_for"])
def test_a_negative_neighbour_setting_is_refused(field: str) -> None:
    with pytest.raises(ValueError, match=field):
        SandboxSettings(**cast(dict[str, Any], {field: -1.0}))
