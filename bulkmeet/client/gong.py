"""GongClient: one keep-alive aiohttp session to Gong (or the sandbox); each call's answer or
failure comes back as an outcome, scrubbed of the credentials."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import aiohttp
import orjson

from .. import __version__
from .credentials import Credentials
from .outcomes import TOO_LONG, Lost, Outcome, Retryable, Succeeded, _body_fields, classify
from .transport import _read_bounded, transport_failure

MEETINGS_PATH = "/v2/meetings"
STATUS_PATH = "/v2/meetings/integration/status"
USER_AGENT = f"bulkmeet/{__version__}"


_READ_HEADERS = ("Location", "Retry-After", "x-retry-after")


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
        # Longest first, so a secret that holds another is replaced whole.
        self._secrets = [x for x in sorted(credentials.secrets(), key=len, reverse=True)
                         if len(x) >= 4]
        # One search for every secret and for a backslash (a JSON escape could hide one).
        self._maybe_secret = re.compile(b"|".join([re.escape(x.encode()) for x in self._secrets]
                                                  + [rb"\\"]))
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
            # Every answer is scrubbed, a 200's too: a proxy or server may echo what it was
            # sent. Read whole only when it may hold a credential: one appears in the bytes,
            # or a JSON escape (a backslash) could hide one.
            if self._maybe_secret.search(raw) is not None:
                body = self._scrub_body(body)
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
        # The body was scrubbed as it was read; the headers are read only on other answers.
        headers = self._scrub_headers(headers) if not 200 <= status < 300 else {}
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
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, "[redacted]")
        return text

    def _scrub_headers(self, headers: Mapping[str, str]) -> dict[str, str]:
        """The headers classify reads (Location, Retry-After), scrubbed."""
        out = {}
        for name in _READ_HEADERS:
            value = headers.get(name)
            if value is not None:
                out[name] = self._scrub(value)
        return out

    def _scrub_body(self, body: Any) -> Any:
        if isinstance(body, str):
            return self._scrub(body)
        if isinstance(body, list):
            return [self._scrub_body(v) for v in body]
        if isinstance(body, dict):
            return {self._scrub(k): self._scrub_body(v) for k, v in body.items()}
        return body
