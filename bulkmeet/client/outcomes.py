"""The outcome of one request (Succeeded, RateLimited, Retryable, Rejected, Lost), and classify,
which turns an HTTP answer into one; no aiohttp here."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

from ..errors import AuthError
from ..models import value_class

# Gong's answers are a few hundred bytes; a longer one is not read past this (a proxy's error
# page, or a server gone wrong: a 128 MB body once took 651 MB of memory).
MAX_BODY = 1024 * 1024
MAX_RETRY_AFTER = 1e9  # seconds: a longer Retry-After means "not today" just the same
_DELAY_SECONDS = re.compile(r"[0-9]+(?:\.[0-9]+)?")  # ASCII only: "²" and "١" are no DIGIT


@value_class
class Succeeded:
    """Gong did what the request asked: created, updated or deleted the meeting."""

    http_status: int
    meeting_id: str
    meeting_url: str | None
    request_id: str | None


@value_class
class RateLimited:
    retry_after: float | None  # seconds; None when missing or unparsable
    raw: str | None  # the header as received, for the log
    request_id: str | None


@value_class
class Retryable:
    """Nothing was created and another try may pass: 5xx, or a connection that never carried
    the request.

    `kind` names a transport failure (see TRANSPORT_KINDS), None for an HTTP answer: the same
    kind again and again means the same cause (a breaker can stop on it)."""

    http_status: int | None
    message: str
    request_id: str | None = None
    kind: str | None = None


@value_class
class Rejected:
    """Final for this row: 400, 404, 409 and other 4xx. Sending it again cannot succeed."""

    http_status: int
    errors: tuple[str, ...]
    request_id: str | None


@value_class
class Lost:
    """The request went out but no usable answer came back: Gong may have created the meeting."""

    http_status: int | None
    message: str
    request_id: str | None = None
    kind: str | None = None  # as for Retryable


Outcome = Succeeded | RateLimited | Retryable | Rejected | Lost

# Transport failures, by cause. Before the request left (Retryable): refused (nothing listens),
# dns (the host name does not resolve), tls (handshake or certificate), connect (any other
# failure to connect, a connect timeout included). After it left (Lost): timeout (no answer in
# time), disconnected (the server closed the connection), reset (the connection broke).
TRANSPORT_KINDS = ("refused", "dns", "tls", "connect", "timeout", "disconnected", "reset")


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Retry-After as seconds from now: delay-seconds or an HTTP-date (RFC 9110 §10.2.3).

    Returns None when the value is missing or cannot be read; a date in the past gives 0.
    """
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    if _DELAY_SECONDS.fullmatch(value):
        # RFC 9110 delay-seconds is 1*DIGIT (ASCII); a decimal ("1.5") is seen in the wild.
        # str.isdigit() and float() accept other scripts' digits ("²"), which are not DIGIT.
        return min(float(value), MAX_RETRY_AFTER)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:  # RFC 9110 dates are GMT
        when = when.replace(tzinfo=UTC)
    now = now or datetime.now(UTC)
    return min(max(0.0, (when - now).total_seconds()), MAX_RETRY_AFTER)


def _body_fields(body: Any) -> tuple[str | None, tuple[str, ...]]:
    if not isinstance(body, dict):
        return None, ()
    request_id = body.get("requestId")
    errors = body.get("errors")
    rid = request_id if isinstance(request_id, str) else None
    if isinstance(errors, list):
        return rid, tuple(str(e) for e in errors)
    return rid, ()


def is_gong_error(body: Any) -> bool:
    """Gong's error shape: {"requestId": "...", "errors": ["...", ...]}. An answer without it
    came from something else on the way (a proxy, a wrong base URL), not from Gong."""
    return (isinstance(body, dict) and isinstance(body.get("requestId"), str)
            and isinstance(body.get("errors"), list))


TOO_LONG = f"an answer longer than {MAX_BODY // 1024} KiB (not read)"


def classify(status: int, body: Any, headers: Mapping[str, str], *,
             too_long: bool = False) -> Outcome:
    """Turn one HTTP answer to POST /v2/meetings into an outcome. Raises AuthError on 401/403.

    `too_long` says the body was longer than MAX_BODY and was not read (`body` is then None).
    """
    request_id, errors = _body_fields(body)
    if 200 <= status < 300:
        meeting_id = body.get("meetingId") if isinstance(body, dict) else None
        if isinstance(meeting_id, int) and not isinstance(meeting_id, bool):
            meeting_id = str(meeting_id)
        if not isinstance(meeting_id, str) or not meeting_id:
            what = TOO_LONG if too_long else "no meetingId"
            return Lost(status, f"Gong answered {status} with {what}: the meeting may exist, "
                        "so it is not sent again (check in Gong, then --resend-uncertain)",
                        request_id)
        url = body.get("meetingUrl")
        return Succeeded(status, meeting_id, url if isinstance(url, str) else None, request_id)
    if 300 <= status < 400:
        # Not followed: a client turns a redirected POST into a GET (301/302/303), and a POST
        # sent on to wherever the Location points is not a call to Gong.
        location = headers.get("Location") or "nowhere (no Location header)"
        return Rejected(status, (f"answered {status}, a redirect to {location[:300]}; not "
                                 "followed (is base_url right?)",), None)
    if status in (401, 403):
        detail = "; ".join(errors) or (
            "the credentials were not accepted" if status == 401
            else "access to the meetings API is not enabled for these credentials"
        )
        raise AuthError(f"Gong answered {status}: {detail}", http_status=status,
                        request_id=request_id)
    if status == 429:
        raw = headers.get("Retry-After")
        if raw is None:
            raw = headers.get("x-retry-after")
        return RateLimited(parse_retry_after(raw), raw[:100] if raw else raw, request_id)
    if status >= 500:
        detail = "; ".join(errors) or (TOO_LONG if too_long else "server error")
        return Retryable(status, f"Gong answered {status}: {detail}", request_id)
    if not is_gong_error(body):
        # Not Gong's refusal of this row (no requestId, no errors list): something in the way,
        # or a wrong endpoint. Final for this run, but a re-run or `retry` sends it again.
        what = TOO_LONG if too_long else "a body that is not Gong's"
        return Rejected(status, (f"answered {status} with {what}, so not Gong's refusal of the "
                                 "row (is base_url right? a proxy in the way?); run again or "
                                 "`bulkmeet retry` once fixed",), None)
    return Rejected(status, errors or (f"Gong answered {status} with no error message",),
                    request_id)
