"""The client's edge: Retry-After parsing, answers turned into outcomes, credentials scrubbed from
whatever a server echoes back. Served by small aiohttp apps on a loopback port."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
from aiohttp import web

from bulkmeet.client import (
    Credentials,
    GongClient,
    Lost,
    RateLimited,
    Rejected,
    Retryable,
    Succeeded,
    classify,
    parse_retry_after,
)
from bulkmeet.errors import AuthError

NOW = datetime(2026, 11, 25, 12, 0, 0, tzinfo=UTC)
CREDS = Credentials.basic("AKEY-1234567", "s3cr3t-abcdef")


@pytest.mark.parametrize(("value", "seconds"), [
    ("2", 2.0),
    (" 120 ", 120.0),
    ("0", 0.0),
    ("1.5", 1.5),
    (format_datetime(NOW + timedelta(seconds=30), usegmt=True), 30.0),
    ("Wed, 25 Nov 2026 11:59:00 GMT", 0.0),  # a date in the past: go now
    ("", None),
    (None, None),
    ("soon", None),
    ("-5", None),
    ("nan", None),
    ("\u00b2", None),  # str.isdigit() says yes, float() says no
    ("\u0661\u0662", None),  # Arabic-Indic digits: not RFC 9110's DIGIT
    ("1e3", None),
    ("+5", None),
    ("0x10", None),
    ("inf", None),
    ("9" * 400, 1e9),  # valid but past any sense: capped, so the run defers (max_wait)
])
def test_retry_after_as_seconds_or_http_date(value: str | None, seconds: float | None) -> None:
    """RFC 9110 §10.2.3: delay-seconds or an HTTP-date; anything else is unusable (None)."""
    assert parse_retry_after(value, now=NOW) == seconds


def test_classify_maps_each_status_to_its_outcome() -> None:
    """200 created, 429 rate limited (x-retry-after as a fallback), 5xx retryable, other 4xx
    final, 401/403 stop the run."""
    assert isinstance(classify(200, {"meetingId": "12", "requestId": "r"}, {}), Succeeded)
    lost = classify(200, {"requestId": "r"}, {})
    assert isinstance(lost, Lost) and lost.http_status == 200 and lost.request_id == "r"
    assert "no meetingId" in lost.message and "may exist" in lost.message
    limited = classify(429, {}, {"x-retry-after": "7"})
    assert isinstance(limited, RateLimited) and limited.retry_after == 7.0
    assert isinstance(classify(503, {"errors": ["busy"]}, {}), Retryable)
    rejected = classify(409, {"errors": ["consent"], "requestId": "q"}, {})
    assert rejected == Rejected(409, ("consent",), "q")
    with pytest.raises(AuthError) as err:
        classify(403, {"errors": ["Limited release"]}, {})
    assert err.value.http_status == 403 and "Limited release" in str(err.value)


async def _serve(handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
                 call: Callable[[GongClient], Awaitable[object]]) -> object:
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        async with GongClient(f"http://127.0.0.1:{port}", CREDS, timeout=2) as client:
            return await call(client)
    finally:
        await runner.cleanup()


def test_a_server_echoing_the_credentials_never_gets_them_into_an_outcome() -> None:
    """A 400 whose errors quote the Authorization header, and a 401 naming the key: the outcome
    and the AuthError carry [redacted] instead."""

    async def echo(request: web.Request) -> web.Response:
        auth = request.headers["Authorization"]
        status = 401 if request.path.endswith("401") else 400
        return web.json_response({"errors": [f"bad header {auth}", "key AKEY-1234567 unknown"],
                                  "requestId": "r1"}, status=status)

    outcome = asyncio.run(_serve(echo, lambda c: c.create_meeting({"x": 1})))
    assert isinstance(outcome, Rejected)
    text = " ".join(outcome.errors)
    assert "[redacted]" in text
    for secret in CREDS.secrets():
        assert secret not in text

    async def auth_path(client: GongClient) -> object:
        return await client._send("POST", "/v2/meetings/401", {})

    with pytest.raises(AuthError) as err:
        asyncio.run(_serve(echo, auth_path))
    for secret in CREDS.secrets():
        assert secret not in str(err.value)


def test_a_504_on_create_is_lost_not_retried() -> None:
    """A gateway timeout may have reached Gong: the create is in doubt, not safe to resend."""

    async def gateway(request: web.Request) -> web.Response:
        return web.json_response({"errors": ["upstream timed out"]}, status=504)

    outcome = asyncio.run(_serve(gateway, lambda c: c.create_meeting({"x": 1})))
    assert isinstance(outcome, Lost) and outcome.http_status == 504


def test_a_refused_connection_is_retryable() -> None:
    """Nothing listens: the request never left, so trying again is safe."""

    async def go() -> object:
        async with GongClient("http://127.0.0.1:9", CREDS, timeout=2) as client:
            return await client.create_meeting({"x": 1})

    assert isinstance(asyncio.run(go()), Retryable)


def test_credentials_repr_hides_them() -> None:
    """repr/str of Credentials never show the secret."""
    for text in (repr(CREDS), str(CREDS), f"{CREDS}"):
        assert "s3cr3t" not in text and "AKEY" not in text
