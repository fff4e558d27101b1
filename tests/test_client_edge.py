"""The client edge against loopback servers that answer the way Gong never should: Retry-After 0
or "²", redirects, 201/204, a 404 from a wrong endpoint, credentials echoed in a 200, huge bodies,
refused connections. Every server is a small aiohttp app on a real loopback port, run in a thread
so the same server serves run_input (asyncio.run) and the CLI (CliRunner)."""

from __future__ import annotations

import asyncio
import base64
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import pytest
from aiohttp import web
from click.testing import CliRunner

from bulkmeet.cli import main
from bulkmeet.client import Credentials, GongClient, Lost, Retryable
from bulkmeet.config import Config
from bulkmeet.engine import RunStats
from bulkmeet.runs import RunOptions, run_input
from bulkmeet.sandbox import SandboxSettings, SandboxThread

from .helpers import CREDS, finals, meeting_row, write_csv

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
FAST = Config(rate=1000.0, rate_ceiling=1000.0, backoff_base=0.01, backoff_max=0.05,
              retry_after_default=0.05, request_timeout=5.0)
SECRET_CREDS = Credentials.from_env(CREDS)


@pytest.fixture(autouse=True)
def _creds(monkeypatch: pytest.MonkeyPatch) -> None:
    for k, v in CREDS.items():
        monkeypatch.setenv(k, v)


class Server:
    """An aiohttp app on 127.0.0.1 in its own thread and loop; `hits` lists (method, path)."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.hits: list[tuple[str, str]] = []
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.hits.append((request.method, request.path))
        return await self.handler(request)

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"

    def _main(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._start())
        self._ready.set()
        self._loop.run_forever()
        assert self._runner is not None
        self._loop.run_until_complete(self._runner.cleanup())
        self._loop.close()

    @contextmanager
    def running(self) -> Iterator[Server]:
        thread = threading.Thread(target=self._main, daemon=True)
        thread.start()
        self._ready.wait(10)
        try:
            yield self
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            thread.join(10)


@contextmanager
def serving(handler: Handler) -> Iterator[Server]:
    with Server(handler).running() as server:
        yield server


def run_rows(tmp_path: Path, url: str, n: int = 3, cfg: Config = FAST,
             out: Path | None = None) -> tuple[RunStats, Path]:
    src = tmp_path / "in.csv"
    if not src.exists():
        write_csv(src, [meeting_row(i) for i in range(n)])
    out = out or tmp_path / "out.jsonl"
    stats = asyncio.run(run_input(cfg.replace(base_url=url), RunOptions(input=str(src),
                                                                     out=str(out))))
    return stats, out


def created(request: web.Request, n: list[int]) -> web.Response:
    n[0] += 1
    return web.json_response({"requestId": f"r{n[0]}", "meetingId": f"m{n[0]}",
                              "meetingUrl": f"https://app.gong.example/m{n[0]}"})


# -- 1. Retry-After 0 never switches the pacing off -----------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("retry_after", ["0", "past-date"])
def test_retry_after_zero_keeps_the_pacing_and_bounds_the_requests(tmp_path: Path,
                                                                   retry_after: str) -> None:
    """A server taking 10 calls/s answers anything faster 429 with Retry-After 0 (or a past
    date); the client set to 20/s keeps its spacing, so each row costs about two calls, not
    hundreds (today's main: the pause installed an empty bucket and pacing was gone)."""
    last = [0.0]
    n = [0]
    value = "0" if retry_after == "0" else format_datetime(
        datetime.now(UTC) - timedelta(hours=1), usegmt=True)

    async def handler(request: web.Request) -> web.Response:
        now = time.monotonic()
        if now - last[0] < 0.1:
            return web.json_response({"requestId": "q", "errors": ["Too many requests"]},
                                     status=429, headers={"Retry-After": value})
        last[0] = now
        return created(request, n)

    rows = 12
    cfg = FAST.replace(rate=20.0, rate_ceiling=20.0, rate_margin=0.0, concurrency=8)
    with serving(handler) as server:
        stats, out = run_rows(tmp_path, server.url, n=rows, cfg=cfg)
    assert [r["status"] for r in finals(out)] == ["created"] * rows
    assert stats.requests == len(server.hits)
    # Spaced 1/20 s apart against a 10/s server: every other call is a 429; allow slack.
    assert len(server.hits) <= 3 * rows + 4, len(server.hits)


# -- 2. a Retry-After that only looks like digits ------------------------------------------


def test_a_unicode_digit_retry_after_waits_the_default_and_logs_it(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """"²" passes str.isdigit() but not float(): the 429 waits retry_after_default, the raw
    value is logged, and every row is created (today: a traceback and a dangling sending)."""
    n = [0]
    first = [True]

    async def handler(request: web.Request) -> web.Response:
        if first[0]:
            first[0] = False
            return web.json_response({"requestId": "q", "errors": ["slow down"]}, status=429,
                                     headers={"Retry-After": "\u00b2"})
        return created(request, n)

    with serving(handler) as server, caplog.at_level(logging.WARNING, "bulkmeet"):
        stats, out = run_rows(tmp_path, server.url, n=2, cfg=FAST.replace(concurrency=1))
    assert [r["status"] for r in finals(out)] == ["created", "created"]
    assert stats.rate_limited == 1
    assert any("\u00b2" in r.getMessage() and "default" in r.getMessage()
               for r in caplog.records)


# -- 3. odd answers recorded honestly ------------------------------------------------------


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_a_redirect_is_not_followed_and_recorded_failed_with_its_location(
        tmp_path: Path, status: int) -> None:
    """The POST is answered 3xx to a place that would answer 200 with a meetingId: nothing is
    followed, the row is failed (not created) with the Location, and only one call is made."""
    n = [0]

    async def handler(request: web.Request) -> web.Response:
        if request.path == "/v2/meetings":
            return web.Response(status=status, headers={"Location": "/elsewhere?x=1"})
        return created(request, n)

    with serving(handler) as server:
        _, out = run_rows(tmp_path, server.url, n=1)
    (rec,) = finals(out)
    assert rec["status"] == "failed" and rec["httpStatus"] == status
    assert "/elsewhere?x=1" in rec["errors"][0]
    assert server.hits == [("POST", "/v2/meetings")]


def test_a_201_with_a_meeting_id_is_created(tmp_path: Path) -> None:
    """Any 2xx with a meetingId made the meeting: 201 is recorded created, with its id."""

    async def handler(request: web.Request) -> web.Response:
        return web.json_response({"requestId": "r", "meetingId": "m201"}, status=201)

    with serving(handler) as server:
        _, out = run_rows(tmp_path, server.url, n=1)
    (rec,) = finals(out)
    assert (rec["status"], rec["meetingId"], rec["httpStatus"]) == ("created", "m201", 201)


@pytest.mark.parametrize("answer", ["204", "200 html"])
def test_a_2xx_without_a_meeting_id_is_uncertain_and_not_sent_again(tmp_path: Path,
                                                                    answer: str) -> None:
    """204, or a 200 whose body is not Gong's, may have created the meeting: uncertain, with a
    reason, and the re-run of the same command does not send it again."""

    async def handler(request: web.Request) -> web.Response:
        if answer == "204":
            return web.Response(status=204)
        return web.Response(text="<html>ok</html>", content_type="text/html")

    with serving(handler) as server:
        _, out = run_rows(tmp_path, server.url, n=2)
        recs = finals(out)
        assert [r["status"] for r in recs] == ["uncertain", "uncertain"]
        assert "meetingId" in recs[0]["errors"][0] and "may exist" in recs[0]["errors"][0]
        sent = len(server.hits)
        run_rows(tmp_path, server.url, n=2)
        assert len(server.hits) == sent


def test_a_404_that_is_not_gongs_is_failed_then_sent_by_the_corrected_run(
        tmp_path: Path) -> None:
    """A 404 with a body that is not Gong's error shape (a proxy, a wrong endpoint) is failed
    without retries, but not as Gong's refusal: once the endpoint answers, re-running the same
    command sends the rows and creates them."""
    n = [0]
    fixed = [False]

    async def handler(request: web.Request) -> web.Response:
        if not fixed[0]:
            return web.Response(status=404, text="404: Not Found")
        return created(request, n)

    with serving(handler) as server:
        stats, out = run_rows(tmp_path, server.url, n=2)
        recs = finals(out)
        assert [r["status"] for r in recs] == ["failed", "failed"]
        assert stats.requests == 2  # not retried
        assert "not Gong's" in recs[0]["errors"][0]
        fixed[0] = True
        stats, _ = run_rows(tmp_path, server.url, n=2)
    assert stats.refused_before == 0
    assert [r["status"] for r in finals(out)][-2:] == ["created", "created"]


def test_retry_picks_up_a_404_that_is_not_gongs(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """`bulkmeet retry RESULTS` sends again a row failed on a non-Gong 404 (once the endpoint
    is right: here a sandbox on the same machine, where it is created)."""

    async def handler(request: web.Request) -> web.Response:
        return web.Response(status=404, text="Not Found")

    with serving(handler) as server:
        _, out = run_rows(tmp_path, server.url, n=2)
    with SandboxThread(SandboxSettings(rate=None)) as sb:
        monkeypatch.setenv("GONG_BASE_URL", sb.url)
        result = CliRunner().invoke(main, ["retry", str(out)])
    assert result.exit_code == 0, result.output
    assert [r["status"] for r in finals(out)][-2:] == ["created", "created"]


def test_a_gong_404_stays_refused_on_the_re_run(tmp_path: Path) -> None:
    """Gong's own 404 (its error shape, an unknown organizer) is final: not sent again."""

    async def handler(request: web.Request) -> web.Response:
        return web.json_response({"requestId": "r", "errors": ["No Gong user found"]},
                                 status=404)

    with serving(handler) as server:
        run_rows(tmp_path, server.url, n=1)
        stats, _ = run_rows(tmp_path, server.url, n=1)
        assert len(server.hits) == 1
    assert stats.refused_before == 1


@pytest.mark.parametrize("base", ["http://u:hunter2pw@{host}", "{url}/v2", "{url}:99999",
                                  "https://"])
def test_an_unusable_base_url_stops_the_run_before_anything_is_sent(tmp_path: Path,
                                                                    base: str) -> None:
    """user:password@, a path (here /v2: every call would 404), a bad port, no host: exit 2
    with one line naming the problem, no request, no results file, no password echoed."""

    async def handler(request: web.Request) -> web.Response:
        return web.Response(status=404)

    src = write_csv(tmp_path / "in.csv", [meeting_row(0)])
    out = tmp_path / "out.jsonl"
    with serving(handler) as server:
        url = base.format(url=server.url, host=server.url.removeprefix("http://"))
        result = CliRunner().invoke(main, ["run", str(src), "--out", str(out)],
                                    env={**CREDS, "GONG_BASE_URL": url})
        assert server.hits == []
    assert result.exit_code == 2, result.output
    assert result.stderr.count("\n") == 1 and "base_url" in result.stderr
    assert "hunter2pw" not in result.output
    assert not out.exists()


# -- 4. credentials echoed in a 200 --------------------------------------------------------


def test_credentials_echoed_in_a_200_reach_no_output(tmp_path: Path) -> None:
    """A proxy echoes the Authorization header, its base64 token and key:secret into requestId,
    meetingUrl and errors of 200s, of a 429's Retry-After and of a 400: neither the results file
    nor stdout nor stderr holds any form of the credentials."""
    n = [0]

    async def handler(request: web.Request) -> web.Response:
        auth = request.headers["Authorization"]
        token = auth.split(" ", 1)[1]
        decoded = base64.b64decode(token).decode()
        n[0] += 1
        if n[0] == 1:
            return web.json_response({"requestId": auth, "errors": [decoded]}, status=429,
                                     headers={"Retry-After": token})
        if n[0] == 2:
            return web.json_response({"requestId": auth, "errors": [auth]}, status=400)
        return web.json_response({"requestId": auth, "meetingId": f"m{n[0]}",
                                  "meetingUrl": f"https://x.example/?t={token}&a={auth}",
                                  "errors": [decoded, token]})

    src = write_csv(tmp_path / "in.csv", [meeting_row(i) for i in range(3)])
    out = tmp_path / "out.jsonl"
    with serving(handler) as server:
        result = CliRunner().invoke(
            main, ["run", str(src), "--out", str(out), "--concurrency", "1",
                   "--log-level", "info"],
            env={**CREDS, "GONG_BASE_URL": server.url})
    statuses = sorted(r["status"] for r in finals(out))
    assert statuses == ["created", "created", "failed"], result.output
    blobs = [out.read_bytes(), result.stdout.encode(), result.stderr.encode()]
    for secret in SECRET_CREDS.secrets():
        for form in (secret.encode(), base64.b64encode(secret.encode())):
            for blob in blobs:
                assert form not in blob
    assert b"[redacted]" in out.read_bytes()


def test_credentials_hidden_behind_json_escapes_are_scrubbed_too(tmp_path: Path) -> None:
    """The fast path skips scrubbing an answer whose bytes hold no credential: an echo written
    with JSON escapes (every character as \\uXXXX) holds none in its bytes, yet decodes to the
    secret; it is scrubbed all the same."""

    async def handler(request: web.Request) -> web.Response:
        auth = request.headers["Authorization"]
        escaped = "".join(f"\\u{ord(c):04x}" for c in auth)
        body = f'{{"requestId": "{escaped}", "meetingId": "m1", "meetingUrl": "{escaped}"}}'
        return web.Response(text=body, content_type="application/json")

    src = write_csv(tmp_path / "in.csv", [meeting_row(0)])
    out = tmp_path / "out.jsonl"
    with serving(handler) as server:
        result = CliRunner().invoke(main, ["run", str(src), "--out", str(out)],
                                    env={**CREDS, "GONG_BASE_URL": server.url})
    assert [r["status"] for r in finals(out)] == ["created"], result.output
    for secret in SECRET_CREDS.secrets():
        assert secret.encode() not in out.read_bytes()
    assert b"[redacted]" in out.read_bytes()


# -- 5. bounded answers --------------------------------------------------------------------


def test_an_over_long_answer_is_not_read_whole(tmp_path: Path) -> None:
    """A 2 MiB 200 (a meetingId in it, but cut) is uncertain; a 2 MiB 400 is failed saying the
    answer was too long. Neither is read past the 1 MiB bound."""
    n = [0]
    filler = "x" * (2 * 1024 * 1024)

    async def handler(request: web.Request) -> web.Response:
        n[0] += 1
        if n[0] == 1:
            return web.json_response({"meetingId": "m1", "requestId": "r", "pad": filler})
        return web.Response(status=400, text=filler)

    with serving(handler) as server:
        _, out = run_rows(tmp_path, server.url, n=2, cfg=FAST.replace(concurrency=1))
    first, second = finals(out)
    assert first["status"] == "uncertain" and "longer than" in first["errors"][0]
    assert second["status"] == "failed" and "longer than" in second["errors"][0]


# -- 6. transport failures named plainly ---------------------------------------------------


def test_a_refused_connection_names_the_address_and_the_cause() -> None:
    """Nothing listens on port 9: Retryable, 'connection refused', the host:port, no
    'ssl:default', and a kind the breaker can key on."""

    async def go() -> object:
        async with GongClient("http://127.0.0.1:9", SECRET_CREDS, timeout=2) as client:
            return await client.create_meeting({"x": 1})

    outcome = asyncio.run(go())
    assert isinstance(outcome, Retryable)
    assert "127.0.0.1:9" in outcome.message and "connection refused" in outcome.message
    assert "ssl" not in outcome.message.lower()
    assert outcome.kind == "refused"


def test_tls_to_a_plain_server_is_a_tls_failure(tmp_path: Path) -> None:
    """https:// to a server that speaks plain http: the handshake fails before anything is
    sent, so it is Retryable, named a TLS failure."""

    async def handler(request: web.Request) -> web.Response:
        return web.Response(text="plain")

    with serving(handler) as server:
        url = server.url.replace("http://", "https://")

        async def go() -> object:
            async with GongClient(url, SECRET_CREDS, timeout=2) as client:
                return await client.create_meeting({"x": 1})

        outcome = asyncio.run(go())
    assert isinstance(outcome, Retryable), outcome
    assert outcome.kind == "tls" and "TLS" in outcome.message
    assert url.removeprefix("https://") in outcome.message


def test_no_answer_in_time_is_lost_and_named_a_timeout() -> None:
    """The request left and no answer came within the timeout: Lost, kind timeout."""

    async def handler(request: web.Request) -> web.Response:
        await asyncio.sleep(3)
        return web.Response(text="late")

    with serving(handler) as server:

        async def go() -> object:
            async with GongClient(server.url, SECRET_CREDS, timeout=0.5) as client:
                return await client.create_meeting({"x": 1})

        outcome = asyncio.run(go())
    assert isinstance(outcome, Lost) and outcome.kind == "timeout"
    assert server.url.removeprefix("http://") in outcome.message


def test_dns_and_certificate_failures_are_named_so() -> None:
    """The DNS and certificate errors aiohttp raises (built here: the tests stay on loopback)
    become Retryable with kinds dns and tls, naming host:port."""
    import socket
    import ssl
    from types import SimpleNamespace

    import aiohttp

    from bulkmeet.client import transport_failure

    key = SimpleNamespace(host="nowhere.invalid", port=443, ssl=True)
    gai = socket.gaierror(-2, "Name or service not known")
    dns = aiohttp.ClientConnectorDNSError(key, gai)  # type: ignore[arg-type]
    out = transport_failure(dns, "https://nowhere.invalid")
    assert isinstance(out, Retryable) and out.kind == "dns"
    assert "nowhere.invalid:443" in out.message and "does not resolve" in out.message
    bad = ssl.SSLCertVerificationError("bad cert")
    cert = aiohttp.ClientConnectorCertificateError(key, bad)  # type: ignore[arg-type]
    out = transport_failure(cert, "https://nowhere.invalid")
    assert isinstance(out, Retryable) and out.kind == "tls" and "certificate" in out.message


def test_a_delete_answered_by_a_404_that_is_not_gongs_is_not_recorded_deleted(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Undo treats Gong's 404 on a delete as "already gone", but a 404 from a proxy or a wrong
    endpoint says nothing about the meeting: the row is failed, and a later undo tries again."""
    n = [0]

    async def handler(request: web.Request) -> web.Response:
        if request.method == "DELETE":
            return web.Response(status=404, text="404: Not Found")
        return created(request, n)

    with serving(handler) as server:
        _, out = run_rows(tmp_path, server.url, n=2)
        monkeypatch.setenv("GONG_BASE_URL", server.url)
        result = CliRunner().invoke(main, ["undo", str(out), "--yes"])
    undone = finals(tmp_path / "out.undo.jsonl")
    assert [r["status"] for r in undone] == ["failed", "failed"], result.output
    assert result.exit_code == 1
