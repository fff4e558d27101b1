"""The Gong client: credentials, one aiohttp session, and HTTP answers turned into outcomes.

Nothing above this module sees an aiohttp type: every answer or failure becomes one of the
outcome values below (httpx maps httpcore's exceptions at its edge the same way).
"""

from __future__ import annotations

import base64
import math
import os
from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import aiohttp
import orjson

from . import __version__
from .errors import AuthError, ConfigError
from .models import value_class

MEETINGS_PATH = "/v2/meetings"
STATUS_PATH = "/v2/meetings/integration/status"
USER_AGENT = f"bulkmeet/{__version__}"


class Credentials:
    """The Authorization header value, kept out of every repr, str and log."""

    __slots__ = ("_header", "kind")

    def __init__(self, header: str, kind: str) -> None:
        self._header = header
        self.kind = kind

    @classmethod
    def basic(cls, key: str, secret: str) -> Credentials:
        token = base64.b64encode(f"{key}:{secret}".encode()).decode("ascii")
        return cls(f"Basic {token}", "basic")

    @classmethod
    def bearer(cls, token: str) -> Credentials:
        return cls(f"Bearer {token}", "bearer")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Credentials:
        env = os.environ if env is None else env
        key = env.get("GONG_ACCESS_KEY", "")
        secret = env.get("GONG_ACCESS_KEY_SECRET", "")
        token = env.get("GONG_BEARER_TOKEN", "")
        if key and secret:
            return cls.basic(key, secret)
        if token:
            return cls.bearer(token)
        if key or secret:
            missing = "GONG_ACCESS_KEY_SECRET" if key else "GONG_ACCESS_KEY"
            raise ConfigError(f"{missing} is not set (both access key variables are needed)")
        raise ConfigError(
            "no credentials: set GONG_ACCESS_KEY and GONG_ACCESS_KEY_SECRET, or GONG_BEARER_TOKEN "
            "(or use --sandbox to try against the built-in fake server)"
        )

    def secrets(self) -> tuple[str, ...]:
        """Every string that must never be printed (for tests and for output scrubbing)."""
        scheme, _, token = self._header.partition(" ")
        parts = [self._header, token]
        if scheme == "Basic":
            decoded = base64.b64decode(token).decode()
            parts.extend([decoded, *decoded.split(":", 1)])
        return tuple(p for p in parts if p)

    def header(self) -> str:
        return self._header

    def __repr__(self) -> str:
        return f"<Credentials {self.kind} (hidden)>"

    __str__ = __repr__


# -- outcomes -------------------------------------------------------------------------------


@value_class
class Created:
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
    the request."""

    http_status: int | None
    message: str
    request_id: str | None = None


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


Outcome = Created | RateLimited | Retryable | Rejected | Lost


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Retry-After as seconds from now: delay-seconds or an HTTP-date (RFC 9110 §10.2.3).

    Returns None when the value is missing or cannot be read; a date in the past gives 0.
    """
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    if value.isdigit():
        return float(value)
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:  # not RFC syntax, but seen in the wild ("1.5"); negative or nan is unusable
        return seconds if math.isfinite(seconds) and seconds >= 0 else None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # RFC 9110 dates are GMT
        when = when.replace(tzinfo=UTC)
    now = now or datetime.now(UTC)
    return max(0.0, (when - now).total_seconds())


def _body_fields(body: Any) -> tuple[str | None, tuple[str, ...]]:
    if not isinstance(body, dict):
        return None, ()
    request_id = body.get("requestId")
    errors = body.get("errors")
    rid = request_id if isinstance(request_id, str) else None
    if isinstance(errors, list):
        return rid, tuple(str(e) for e in errors)
    return rid, ()


def classify(status: int, body: Any, headers: Mapping[str, str]) -> Outcome:
    """Turn one HTTP answer to POST /v2/meetings into an outcome. Raises AuthError on 401/403."""
    request_id, errors = _body_fields(body)
    if status == 200:
        meeting_id = body.get("meetingId") if isinstance(body, dict) else None
        if isinstance(meeting_id, int) and not isinstance(meeting_id, bool):
            meeting_id = str(meeting_id)
        if not isinstance(meeting_id, str) or not meeting_id:
            return Lost(status, "Gong answered 200 without a meetingId: the meeting may exist",
                        request_id)
        url = body.get("meetingUrl")
        return Created(status, meeting_id, url if isinstance(url, str) else None, request_id)
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
        return RateLimited(parse_retry_after(raw), raw, request_id)
    if status >= 500:
        detail = "; ".join(errors) or "server error"
        return Retryable(status, f"Gong answered {status}: {detail}", request_id)
    return Rejected(status, errors or (f"Gong answered {status} with no error message",),
                    request_id)


class GongClient:
    """One keep-alive session to Gong (or the sandbox). Use as `async with`."""

    def __init__(
        self,
        base_url: str,
        credentials: Credentials,
        *,
        timeout: float = 30.0,
        connections: int = 8,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._credentials = credentials
        self._timeout = aiohttp.ClientTimeout(total=timeout, sock_connect=min(timeout, 10.0))
        self._connections = connections
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> GongClient:
        connector = aiohttp.TCPConnector(limit=self._connections, limit_per_host=self._connections)
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=self._timeout,
            headers={
                "Authorization": self._credentials.header(),
                "User-Agent": USER_AGENT,
                "Content-Type": "application/json",
            },
            json_serialize=lambda obj: orjson.dumps(obj).decode(),
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def create_meeting(self, payload: Mapping[str, Any]) -> Outcome:
        return await self._send("POST", MEETINGS_PATH, payload)

    async def update_meeting(self, meeting_id: str, payload: Mapping[str, Any]) -> Outcome:
        return await self._send("PUT", f"{MEETINGS_PATH}/{meeting_id}", payload, update=True)

    async def delete_meeting(self, meeting_id: str, organizer_email: str) -> Outcome:
        return await self._send("DELETE", f"{MEETINGS_PATH}/{meeting_id}",
                                {"organizerEmail": organizer_email}, delete=meeting_id)

    async def integration_status(self, emails: list[str]) -> tuple[int, Any] | Outcome:
        """POST /v2/meetings/integration/status: (200, body) when answered 200; otherwise the
        outcome as for a create (RateLimited with its Retry-After, Retryable, Rejected), or
        Retryable when no answer came (asking again is harmless). 401/403 raise AuthError."""
        try:
            status, body, headers = await self._request("POST", STATUS_PATH, {"emails": emails})
        except (aiohttp.ClientError, TimeoutError) as exc:
            return Retryable(None, f"no answer from {self.base_url}: {type(exc).__name__}: {exc}")
        if status == 200:
            return status, body
        return classify(status, body, headers)

    async def _request(
        self, method: str, path: str, payload: Mapping[str, Any]
    ) -> tuple[int, Any, Mapping[str, str]]:
        assert self._session is not None, "use GongClient as an async context manager"
        data = orjson.dumps(payload)
        async with self._session.request(method, self.base_url + path, data=data) as resp:
            raw = await resp.read()
            try:
                body: Any = orjson.loads(raw) if raw else None
            except orjson.JSONDecodeError:
                body = None
            return resp.status, body, resp.headers

    async def _send(
        self,
        method: str,
        path: str,
        payload: Mapping[str, Any],
        *,
        update: bool = False,
        delete: str | None = None,
    ) -> Outcome:
        try:
            status, body, headers = await self._request(method, path, payload)
        except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as exc:
            # The connection was never made, so the request never left: safe to try again.
            return Retryable(None, self._scrub(f"cannot connect to {self.base_url}: {exc}"))
        except (aiohttp.ServerDisconnectedError, aiohttp.ClientPayloadError,
                aiohttp.ClientOSError) as exc:
            return Lost(None, f"connection lost before Gong answered ({type(exc).__name__})")
        except TimeoutError:
            return Lost(None, "no answer within the request timeout")
        except aiohttp.ClientError as exc:
            return Lost(None, self._scrub(f"request failed: {type(exc).__name__}: {exc}"))
        if (update or delete) and status == 200:
            rid, _ = _body_fields(body)
            mid = delete or (body.get("meetingId") if isinstance(body, dict) else None) or path
            return Created(status, str(mid).rsplit("/", 1)[-1], None, rid)
        if status != 200:
            body = self._scrub_body(body)  # a server may echo what it was sent
        if status == 504 and method == "POST" and not update:
            # A gateway timeout may have reached Gong, which may have created the meeting.
            rid, _ = _body_fields(body)
            return Lost(504, "Gong's gateway answered 504 (timeout): the meeting may exist", rid)
        return classify(status, body, headers)

    def _scrub(self, text: str) -> str:
        """Remove every form of the credentials from text that came from elsewhere."""
        for secret in sorted(self._credentials.secrets(), key=len, reverse=True):
            if len(secret) >= 4:
                text = text.replace(secret, "[redacted]")
        return text

    def _scrub_body(self, body: Any) -> Any:
        if isinstance(body, str):
            return self._scrub(body)
        if isinstance(body, list):
            return [self._scrub_body(v) for v in body]
        if isinstance(body, dict):
            return {k: self._scrub_body(v) for k, v in body.items()}
        return body


def backoff_delay(attempt: int, *, base: float, cap: float, rand: float) -> float:
    """Exponential backoff with full jitter (AWS architecture blog): U(0, min(cap, base*2^n))."""
    return rand * min(cap, base * 2.0 ** max(0, attempt - 1))

