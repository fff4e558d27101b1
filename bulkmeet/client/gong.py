"""The Gong client: credentials, one aiohttp session, and HTTP answers turned into outcomes.

Nothing above this module sees an aiohttp type: every answer or failure becomes one of the
outcome values below (httpx maps httpcore's exceptions at its edge the same way).
"""

from __future__ import annotations

import base64
import errno
import os
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import orjson

from .. import __version__
from ..errors import AuthError, ConfigError
from ..models import value_class

MEETINGS_PATH = "/v2/meetings"
STATUS_PATH = "/v2/meetings/integration/status"
USER_AGENT = f"bulkmeet/{__version__}"
# Gong's answers are a few hundred bytes; a longer one is not read past this (a proxy's error
# page, or a server gone wrong: a 128 MB body once took 651 MB of memory).
MAX_BODY = 1024 * 1024
MAX_RETRY_AFTER = 1e9  # seconds: a longer Retry-After means "not today" just the same
_DELAY_SECONDS = re.compile(r"[0-9]+(?:\.[0-9]+)?")  # ASCII only: "²" and "١" are no DIGIT


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
        parts = [self._header, token, token.rstrip("=")]
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


def _where(url: str) -> str:
    """host:port of a URL, for messages."""
    parts = urlsplit(url)
    host = parts.hostname or url
    if ":" in host:
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        port = None
    return f"{host}:{port or (443 if parts.scheme == 'https' else 80)}"


def _cause(exc: BaseException) -> str:
    err = getattr(exc, "os_error", None) or exc
    text = getattr(err, "strerror", None) or str(err) or type(err).__name__
    return str(text)


def transport_failure(exc: BaseException, url: str) -> Retryable | Lost:
    """aiohttp's connection errors as an outcome with a plain message naming host:port and the
    cause (aiohttp's own text says `ssl:default` even for plain http)."""
    where = _where(url)
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return Retryable(None, f"cannot connect to {where}: the host name does not resolve "
                         f"(DNS: {_cause(exc)})", kind="dns")
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        return Retryable(None, f"cannot connect to {where}: TLS certificate not accepted "
                         f"({exc.certificate_error})", kind="tls")
    if isinstance(exc, aiohttp.ClientSSLError):
        return Retryable(None, f"cannot connect to {where}: TLS handshake failed "
                         f"({_cause(exc)})", kind="tls")
    if isinstance(exc, aiohttp.ClientConnectorError):
        os_error = exc.os_error
        if isinstance(os_error, ConnectionRefusedError) or getattr(
                os_error, "errno", None) == errno.ECONNREFUSED:
            return Retryable(None, f"cannot connect to {where}: connection refused (nothing "
                             "listens there)", kind="refused")
        return Retryable(None, f"cannot connect to {where}: {_cause(exc)}", kind="connect")
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return Retryable(None, f"cannot connect to {where}: no connection within the timeout",
                         kind="connect")
    if isinstance(exc, TimeoutError):  # SocketTimeoutError, the total timeout
        return Lost(None, f"{where}: no answer within the request timeout", kind="timeout")
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return Lost(None, f"connection lost: {where} closed it before answering",
                    kind="disconnected")
    if isinstance(exc, (aiohttp.ClientPayloadError, aiohttp.ClientOSError)):
        return Lost(None, f"connection lost: the connection to {where} broke before the answer "
                    f"was complete ({type(exc).__name__}: {_cause(exc)})", kind="reset")
    return Lost(None, f"request to {where} failed: {type(exc).__name__}: {exc}", kind="reset")


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
            status, body, headers, too_long = await self._request(
                "POST", STATUS_PATH, {"emails": emails})
        except (aiohttp.ClientError, TimeoutError) as exc:
            failure = transport_failure(exc, self.base_url)
            return Retryable(None, self._scrub(f"no answer from {self.base_url}: "
                                               f"{failure.message}"), kind=failure.kind)
        body = self._scrub_body(body)
        headers = self._scrub_headers(headers)
        if status == 200 and not too_long:
            return status, body
        if 200 <= status < 300:  # nothing is created here: asking again is harmless
            return Retryable(status, f"Gong answered {status} to the status request with "
                             f"{TOO_LONG if too_long else 'an unexpected answer'}")
        return classify(status, body, headers, too_long=too_long)

    async def _request(
        self, method: str, path: str, payload: Mapping[str, Any]
    ) -> tuple[int, Any, Mapping[str, str], bool]:
        """(status, body, headers, too long). A redirect is never followed; a body longer than
        MAX_BODY is not read (None, too long True) and its connection is dropped."""
        assert self._session is not None, "use GongClient as an async context manager"
        data = orjson.dumps(payload)
        async with self._session.request(method, self.base_url + path, data=data,
                                         allow_redirects=False) as resp:
            raw = await _read_bounded(resp)
            if raw is None:
                resp.close()  # the rest is never read: do not reuse the connection
                return resp.status, None, resp.headers, True
            try:
                body: Any = orjson.loads(raw) if raw else None
            except orjson.JSONDecodeError:
                body = None
            return resp.status, body, resp.headers, False

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
            status, body, headers, too_long = await self._request(method, path, payload)
        except (aiohttp.ClientError, TimeoutError) as exc:
            # Before the connection was made the request never left (Retryable); after, it
            # may have reached Gong (Lost).
            failure = transport_failure(exc, self.base_url)
            return type(failure)(None, self._scrub(failure.message), kind=failure.kind)
        # Every answer is scrubbed, a 200's too: a proxy or server may echo what it was sent.
        body = self._scrub_body(body)
        headers = self._scrub_headers(headers)
        if (update or delete) and 200 <= status < 300 and not too_long:
            rid, _ = _body_fields(body)
            mid = delete or (body.get("meetingId") if isinstance(body, dict) else None) or path
            return Succeeded(status, str(mid).rsplit("/", 1)[-1], None, rid)
        if status == 504 and method == "POST" and not update:
            # A gateway timeout may have reached Gong, which may have created the meeting.
            rid, _ = _body_fields(body)
            return Lost(504, "Gong's gateway answered 504 (timeout): the meeting may exist", rid)
        return classify(status, body, headers, too_long=too_long)

    def _scrub(self, text: str) -> str:
        """Remove every form of the credentials from text that came from elsewhere."""
        for secret in sorted(self._credentials.secrets(), key=len, reverse=True):
            if len(secret) >= 4:
                text = text.replace(secret, "[redacted]")
        return text

    def _scrub_headers(self, headers: Mapping[str, str]) -> dict[str, str]:
        """The headers classify reads (Location, Retry-After), scrubbed."""
        return {name: self._scrub(headers[name])
                for name in ("Location", "Retry-After", "x-retry-after") if name in headers}

    def _scrub_body(self, body: Any) -> Any:
        if isinstance(body, str):
            return self._scrub(body)
        if isinstance(body, list):
            return [self._scrub_body(v) for v in body]
        if isinstance(body, dict):
            return {self._scrub(k): self._scrub_body(v) for k, v in body.items()}
        return body


async def _read_bounded(resp: aiohttp.ClientResponse, limit: int = MAX_BODY) -> bytes | None:
    """The body, or None when it is longer than `limit` (then at most `limit` + 1 bytes were
    read). aiohttp's resp.read() has no bound."""
    if resp.content_length is not None and resp.content_length > limit:
        return None
    buf = bytearray()
    while True:
        chunk = await resp.content.read(limit + 1 - len(buf))
        if not chunk:
            return bytes(buf)
        buf += chunk
        if len(buf) > limit:
            return None


def backoff_delay(attempt: int, *, base: float, cap: float, rand: float) -> float:
    """Exponential backoff with full jitter (AWS architecture blog): U(0, min(cap, base*2^n))."""
    return rand * min(cap, base * 2.0 ** max(0, attempt - 1))

