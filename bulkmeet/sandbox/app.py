"""The fake Gong itself: an aiohttp application, the checks every API request passes in
Gong's order, the four meetings operations, and the loopback site it listens on."""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import ipaddress
import math
import os
import random
import socket
import string
from collections import deque
from collections.abc import Awaitable, Callable
from email.utils import formatdate
from types import TracebackType
from typing import Any

import orjson
from aiohttp import web

from .contract import (
    ASSISTANT,
    FIX_URL,
    HELP_URL,
    MAX_MEETING_ID,
    MEETING_URL,
    MIN_MEETING_ID,
    MSG_CONSENT,
    MSG_DAILY_LIMITED,
    MSG_FAILED,
    MSG_FORBIDDEN,
    MSG_NO_MEETING,
    MSG_NO_USER,
    MSG_NOT_A_USER,
    MSG_NOT_ORGANIZER,
    MSG_RATE_LIMITED,
    MSG_UNAUTHORIZED,
    UNPARSABLE,
    meeting_errors,
    not_an_object,
    parse_meeting_id,
    status_errors,
)
from .limits import DailyBudget, rate_window
from .settings import DEFAULT_SETTINGS, SandboxSettings
from .state import LoggedRequest, SandboxState

_REQUEST_ID_CHARS = string.ascii_lowercase + string.digits
_CHALLENGE = {"WWW-Authenticate": 'Basic realm="Gong API"'}

_Operation = Callable[[web.Request, Any, str], web.Response]


class Sandbox:
    """The fake Gong: an aiohttp application, its state, and the loopback site it listens on."""

    def __init__(self, settings: SandboxSettings = DEFAULT_SETTINGS) -> None:
        self.settings = settings
        self.state = SandboxState(log=deque(maxlen=settings.log_limit))
        self._limiter = rate_window(settings)
        self._daily = DailyBudget(settings.daily) if settings.daily is not None else None
        # Two random sources, so fault decisions stay the same whatever ids were drawn.
        self._chaos = random.Random(settings.seed)
        self._ids = random.Random(None if settings.seed is None else f"ids-{settings.seed}")
        self._issued: set[int] = set()
        self._unknown = {e.lower() for e in settings.unknown_organizers}
        self._unknown_domains = {d.lower() for d in settings.unknown_domains}
        self._invalid = {e.lower() for e in settings.invalid_integration}
        self._strict_auth = settings.credentials is not None or settings.bearer is not None
        self._last_good_auth: str | None = None  # one-entry cache: clients repeat one header
        self._runner: web.AppRunner | None = None
        self._url: str | None = None
        self._last_take = -math.inf  # the latest time the rate window was given
        self._neighbour: asyncio.Task[None] | None = None
        self.state.neighbour_rate = settings.neighbour

    @property
    def url(self) -> str:
        if self._url is None:
            raise RuntimeError("the sandbox is not running")
        return self._url

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v2/meetings", self._api(self._create))
        app.router.add_put("/v2/meetings/{meetingId}", self._api(self._update))
        app.router.add_delete("/v2/meetings/{meetingId}", self._api(self._delete))
        app.router.add_post("/v2/meetings/integration/status", self._api(self._status))
        app.router.add_get("/_sandbox/stats", self._stats)
        app.router.add_get("/_sandbox/meetings", self._meetings)
        return app

    async def start(self, *, host: str = "127.0.0.1", port: int = 0) -> None:
        if self._runner is not None:
            raise RuntimeError(f"the sandbox is already running at {self._url}")
        bind_host = loopback_host(host)
        family = socket.AF_INET6 if ":" in bind_host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            if os.name == "posix":  # restart on a fixed port despite TIME_WAIT
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((bind_host, port))
            runner = web.AppRunner(self.app(), access_log=None, shutdown_timeout=1.0)
            await runner.setup()
        except BaseException:
            sock.close()
            raise
        try:
            await web.SockSite(runner, sock).start()
        except BaseException:
            await runner.cleanup()
            sock.close()
            raise
        self._runner = runner
        shown = f"[{bind_host}]" if family == socket.AF_INET6 else bind_host
        self._url = f"http://{shown}:{sock.getsockname()[1]}"
        if self.settings.neighbour > 0:
            self._neighbour = asyncio.ensure_future(self._run_neighbour())

    async def close(self) -> None:
        neighbour, self._neighbour = self._neighbour, None
        if neighbour is not None:
            neighbour.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await neighbour
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def __aenter__(self) -> Sandbox:
        if self._runner is None:
            await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # --- the request path: keep it lean, it is driven at thousands of requests/s ---------------

    def _api(self, operation: _Operation) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def handler(request: web.Request) -> web.StreamResponse:
            state = self.state
            state.requests += 1
            state.in_flight += 1
            if state.in_flight > state.max_in_flight:
                state.max_in_flight = state.in_flight
            arrived = self.settings.clock()
            body: Any = None
            status: int | None = None
            try:
                raw = await request.read()
                try:
                    body = orjson.loads(raw)
                except orjson.JSONDecodeError:
                    body = UNPARSABLE
                response = await self._answer(request, operation, body)
                if response is None:
                    state.dropped += 1
                    if request.transport is not None:
                        request.transport.close()
                    # aiohttp finds the transport closing, gives up writing this placeholder and
                    # treats it as a client disconnect: no answer reaches the client.
                    return web.Response(status=204)
                status = response.status
                state.by_status[status] += 1
                return response
            finally:
                state.in_flight -= 1
                logged = None if body is UNPARSABLE else body
                state.log.append(
                    LoggedRequest(arrived, request.method, request.path, status, logged)
                )

        return handler

    async def _answer(
        self, request: web.Request, operation: _Operation, body: Any
    ) -> web.Response | None:
        """The checks in their documented order; None means: drop the connection."""
        settings = self.settings
        request_id = "".join(self._ids.choices(_REQUEST_ID_CHARS, k=19))
        if not self._authorized(request.headers.get("Authorization")):
            return _error(401, request_id, MSG_UNAUTHORIZED, headers=_CHALLENGE)
        if settings.forbidden:
            return _error(403, request_id, MSG_FORBIDDEN)
        limited = self._spend()
        if limited is not None:
            wait, message = limited
            return _error(429, request_id, message, headers=self._retry_after(wait))
        if settings.latency:
            await asyncio.sleep(settings.latency)
        if settings.drop_rate and self._chaos.random() < settings.drop_rate:
            if settings.drop_after_create:
                operation(request, body, request_id)  # carried out; the answer is lost
            return None
        if settings.fail_rate and self._chaos.random() < settings.fail_rate:
            return _error(500, request_id, MSG_FAILED)
        return operation(request, body, request_id)

    def _authorized(self, header: str | None) -> bool:
        if not header:
            return False
        if header == self._last_good_auth:
            return True
        scheme, _, value = header.partition(" ")
        scheme, value = scheme.lower(), value.strip()
        settings = self.settings
        if scheme == "basic":
            try:
                decoded = base64.b64decode(value, validate=True).decode("utf-8")
            except (binascii.Error, UnicodeDecodeError):
                return False
            key, colon, secret = decoded.partition(":")
            ok = bool(colon and key and secret) and (
                not self._strict_auth or settings.credentials == (key, secret)
            )
        elif scheme == "bearer":
            ok = bool(value) and (not self._strict_auth or value == settings.bearer)
        else:
            ok = False
        if ok:
            self._last_good_auth = header
        return ok

    def _spend(self) -> tuple[float, str] | None:
        """Take one call from the rate limit and the daily budget, or say how long to wait.

        A rejected call spends nothing: neither the budget nor the rate window."""
        daily = self._daily
        if daily is not None:
            wait = daily.wait(self.settings.wall_clock())
            if wait is not None:
                return wait, MSG_DAILY_LIMITED
        if self._limiter is not None:
            wait = self._take(self.settings.clock())
            if wait is not None:
                return wait, MSG_RATE_LIMITED
        if daily is not None:
            daily.used += 1
        return None

    def _take(self, now: float) -> float | None:
        """One call from the rate window at `now`; the window only ever sees time go forward."""
        assert self._limiter is not None
        now = self._last_take = max(now, self._last_take)
        return self._limiter.take(now)

    # --- the neighbour: another integration spending the same quota ---------------------------

    async def _run_neighbour(self) -> None:
        """Spend `neighbour` calls/s, each charged at its due time (to the microsecond, not when
        the loop got round to it: a steady 1/s caller must never look like 2 calls in one
        second to a sliding window). A loop held up for over a second skips the missed calls."""
        settings = self.settings
        rate, clock = settings.neighbour, settings.clock
        start, k = clock(), 0
        while settings.neighbour_for is None or k / rate < settings.neighbour_for:
            due = start + k / rate
            late = clock() - due
            if late > 1.0:
                k += math.floor(late * rate)
                continue
            if late < 0:
                await asyncio.sleep(-late)
            self._neighbour_call(due)
            k += 1

    def _neighbour_call(self, due: float) -> None:
        state = self.state
        state.neighbour_calls += 1
        daily = self._daily
        if daily is not None and daily.wait(self.settings.wall_clock()) is not None:
            state.neighbour_refused += 1
            return
        if self._limiter is not None and self._take(due) is not None:
            state.neighbour_refused += 1
            return
        if daily is not None:
            daily.used += 1

    def _retry_after(self, wait: float) -> dict[str, str]:
        settings = self.settings
        fixed = settings.retry_after_fixed
        if settings.retry_after == "none":
            return {}
        if settings.retry_after == "date":
            # Round up: a date one second late is harmless, one second early earns another 429.
            when = settings.wall_clock() + (wait if fixed is None else fixed)
            return {"Retry-After": formatdate(math.ceil(when), usegmt=True)}
        if fixed is not None:
            return {"Retry-After": str(fixed)}
        # The epsilon keeps float noise (1.0000000000000002) from adding a whole second.
        return {"Retry-After": str(max(1, math.ceil(wait - 1e-6)))}

    def _user_exists(self, email: str) -> bool:
        email = email.lower()
        _, at, domain = email.rpartition("@")
        return bool(at) and domain not in self._unknown_domains and email not in self._unknown

    # --- the four operations: synchronous, so each one is atomic on the event loop -------------

    def _create(self, request: web.Request, body: Any, request_id: str) -> web.Response:
        errors = meeting_errors(body)
        if errors:
            return _error(400, request_id, *errors)
        if not self._user_exists(body["organizerEmail"]):
            return _error(404, request_id, MSG_NO_USER)
        number = self._ids.randint(MIN_MEETING_ID, MAX_MEETING_ID)
        while number in self._issued:  # never reuse an id, not even a deleted one
            number = self._ids.randint(MIN_MEETING_ID, MAX_MEETING_ID)
        self._issued.add(number)
        meeting_id = str(number)
        meeting_url = MEETING_URL.format(meeting_id=meeting_id)
        state = self.state
        state.meetings[meeting_id] = {**body, "meetingId": meeting_id, "meetingUrl": meeting_url}
        if isinstance(body.get("externalId"), str):
            state.created_by_external_id[body["externalId"]] += 1
        state.creates += 1
        return _json(200, {
            "requestId": request_id,
            "meetingId": meeting_id,
            "meetingUrl": meeting_url,
            "additionalInvitees": [dict(ASSISTANT)],
        })

    def _update(self, request: web.Request, body: Any, request_id: str) -> web.Response:
        meeting_id, errors = parse_meeting_id(request.match_info["meetingId"])
        errors += meeting_errors(body)
        if errors:
            return _error(400, request_id, *errors)
        if not self._user_exists(body["organizerEmail"]):
            return _error(404, request_id, MSG_NO_USER)
        problem = self._find(meeting_id, body["organizerEmail"])
        if problem:
            return _error(404, request_id, problem)
        meeting = self.state.meetings[meeting_id]
        meeting.update({**body, "meetingId": meeting_id, "meetingUrl": meeting["meetingUrl"]})
        self.state.updates += 1
        return _json(200, {"requestId": request_id, "meetingId": meeting_id})

    def _delete(self, request: web.Request, body: Any, request_id: str) -> web.Response:
        meeting_id, errors = parse_meeting_id(request.match_info["meetingId"])
        if not isinstance(body, dict):
            errors += not_an_object(body)
        elif not isinstance(body.get("organizerEmail"), str):
            errors.append("organizerEmail is required and must be a string")
        if errors:
            return _error(400, request_id, *errors)
        problem = self._find(meeting_id, body["organizerEmail"])
        if problem:
            return _error(404, request_id, problem)
        del self.state.meetings[meeting_id]
        self.state.deletes += 1
        # The 200 schema is DeleteMeetingRequest itself: echo it, nothing more.
        return _json(200, {"organizerEmail": body["organizerEmail"]})

    def _find(self, meeting_id: str, organizer: str) -> str | None:
        """Why the meeting cannot be touched by this organizer, or None."""
        meeting = self.state.meetings.get(meeting_id)
        if meeting is None:
            return MSG_NO_MEETING
        if str(meeting.get("organizerEmail", "")).lower() != organizer.lower():
            return MSG_NOT_ORGANIZER
        return None

    def _status(self, request: web.Request, body: Any, request_id: str) -> web.Response:
        errors = status_errors(body)
        if errors:
            return _error(400, request_id, *errors)
        users = []
        for email in body["emails"]:
            exists = self._user_exists(email)
            valid = exists and email.lower() not in self._invalid
            user: dict[str, Any] = {"email": email, "exists": exists, "valid": valid}
            if not valid:
                user["userFacingError"] = MSG_CONSENT if exists else MSG_NOT_A_USER
                user["fixUrl"] = FIX_URL
                user["helpUrl"] = HELP_URL
            users.append(user)
        return _json(200, {"requestId": request_id, "users": users})

    # --- inspection, for tests that run bulkmeet as a subprocess: not API calls, no auth -------

    async def _stats(self, request: web.Request) -> web.Response:
        return _json(200, self.state.stats())

    async def _meetings(self, request: web.Request) -> web.Response:
        return _json(200, {"meetings": list(self.state.meetings.values())})


def _json(status: int, payload: Any, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        status=status, body=orjson.dumps(payload), content_type="application/json",
        headers=headers,
    )


def _error(
    status: int, request_id: str, *messages: str, headers: dict[str, str] | None = None
) -> web.Response:
    return _json(status, {"requestId": request_id, "errors": list(messages)}, headers)


def loopback_host(host: str) -> str:
    """The address to bind for `host`; ValueError unless it is loopback."""
    if host.lower() == "localhost":
        return "127.0.0.1"  # one address: with port 0, v4 and v6 would get different ports
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        address = None
    if address is None or not address.is_loopback:
        raise ValueError(
            f"the sandbox listens on loopback only (127.0.0.0/8, ::1, localhost), not {host!r}"
        )
    return str(address)
