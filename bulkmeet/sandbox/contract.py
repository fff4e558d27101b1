"""What the sandbox takes from Gong's contract (bulkmeet/contract/openapi-meetings.json): the
request checks, hand-written from the schemas (no jsonschema on the request path), and the
texts, URLs and limits Gong answers with."""

from __future__ import annotations

import contextlib
import re
from datetime import datetime
from typing import Any

MSG_UNAUTHORIZED = (
    "Unauthorized: send 'Authorization: Basic base64(accessKey:accessKeySecret)' "
    "or 'Authorization: Bearer <token>'"
)
MSG_FORBIDDEN = "This API endpoint is in Limited release - contact your CSM for more information."
MSG_RATE_LIMITED = "API request limit exceeded"
MSG_DAILY_LIMITED = "API request limit exceeded: the daily limit of calls is spent"
MSG_FAILED = "Failed to complete the operation due to an unexpected error"
MSG_NO_USER = "No Gong user found corresponding to the provided organizer email"
MSG_NO_MEETING = "No meeting found corresponding to the provided meeting ID"
MSG_NOT_ORGANIZER = "No Gong meeting found corresponding to the provided organizer email"
MSG_CONSENT = "The Gong consent page is not enabled in your company. Contact your Gong Admin."
MSG_NOT_A_USER = "This email address does not belong to a Gong user."

ASSISTANT = {"displayName": "Gong Assistant", "email": "assistant@sandbox.gong.example"}
MEETING_URL = "https://join.sandbox.gong.example/sandbox/{meeting_id}"
FIX_URL = "https://app.sandbox.gong.example/company/recording-consent/consent-page"
HELP_URL = "https://help.sandbox.gong.example/hc/en-us/articles/360056677792"
MAX_STATUS_EMAILS = 100

REQUIRED_FIELDS = ("startTime", "endTime", "invitees", "organizerEmail")
STRING_FIELDS = ("startTime", "endTime", "title", "externalId", "organizerEmail")
INVITEE_FIELDS = ("email", "displayName", "firstName", "lastName")
# ISO-8601 extended date-time with a mandatory offset, as Gong's examples show it:
# 2018-02-17T02:30:00-08:00 or 2018-02-18T08:00:00Z. fromisoformat alone would also take a
# space separator, basic format or no offset at all.
DATETIME = re.compile(
    r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?(?:Z|[+-]\d{2}:\d{2})", re.ASCII
)
# Meeting ids are int64 in the path parameter's schema: keep them within it, 19 digits.
MIN_MEETING_ID = 10**18
MAX_MEETING_ID = 2**63 - 1
UNPARSABLE: Any = object()  # stands for a request body that is not JSON at all


def meeting_errors(body: Any) -> list[str]:
    """Every way `body` breaks NewMeetingRequest / UpdateMeetingRequest, one message each."""
    if not isinstance(body, dict):
        return not_an_object(body)
    errors = [f"{name} is required" for name in REQUIRED_FIELDS if name not in body]
    errors += [
        f"{name} must be a string"
        for name in STRING_FIELDS
        if name in body and not isinstance(body[name], str)
    ]
    if "invitees" in body:
        invitees = body["invitees"]
        if not isinstance(invitees, list):
            errors.append("invitees must be an array of objects")
        else:
            for i, invitee in enumerate(invitees):
                if not isinstance(invitee, dict):
                    errors.append(f"invitees[{i}] must be an object")
                    continue
                errors += [
                    f"invitees[{i}].{name} must be a string"
                    for name in INVITEE_FIELDS
                    if name in invitee and not isinstance(invitee[name], str)
                ]
    start = _datetime(body, "startTime", errors)
    end = _datetime(body, "endTime", errors)
    if start is not None and end is not None and end <= start:
        errors.append("endTime must be after startTime")
    return errors


def not_an_object(body: Any) -> list[str]:
    """The one message for a body that is not a JSON object (or not JSON)."""
    if body is UNPARSABLE:
        return ["the request body is not valid JSON"]
    return ["the request body must be a JSON object"]


def _datetime(body: dict[str, Any], name: str, errors: list[str]) -> datetime | None:
    value = body.get(name)
    if not isinstance(value, str):
        return None  # missing or mistyped: already reported
    if DATETIME.fullmatch(value):
        with contextlib.suppress(ValueError):  # e.g. month 13
            return datetime.fromisoformat(value)
    errors.append(
        f"{name} must be an ISO-8601 date-time with an offset or Z "
        f"(e.g. 2018-02-17T02:30:00-08:00), not {value!r}"
    )
    return None


def status_errors(body: Any) -> list[str]:
    """Every way `body` breaks IntegrationStatusRequest (emails: at most 100 strings)."""
    if not isinstance(body, dict):
        return not_an_object(body)
    emails = body.get("emails")
    if emails is None:
        return ["emails is required"]
    if not isinstance(emails, list):
        return ["emails must be an array of strings"]
    errors = [
        f"emails[{i}] must be a string" for i, e in enumerate(emails) if not isinstance(e, str)
    ]
    if len(emails) > MAX_STATUS_EMAILS:
        errors.append(f"emails must hold at most {MAX_STATUS_EMAILS} addresses, not {len(emails)}")
    return errors



def parse_meeting_id(raw: str) -> tuple[str, list[str]]:
    """The {meetingId} path parameter, normalised (no leading zeros), and what is wrong with it."""
    if raw.isascii() and raw.isdigit() and len(raw) <= 20:
        return str(int(raw)), []
    return raw, [f"meetingId must be an integer of up to 20 digits, not {raw!r}"]
