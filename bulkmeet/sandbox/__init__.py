"""A fake Gong server for the four /v2/meetings operations, on aiohttp.web, loopback only.

It follows bulkmeet/contract/openapi-meetings.json: the same paths, bodies, answers and error
shapes, plus the behaviour Gong documents around them (rate limits with Retry-After, a daily
budget, the "Limited release" 403, the unknown-organizer 404). Faults are injectable so the
client's retry and resume logic can be tested: 500s, answers lost after the meeting was created,
latency.

Every API request passes the same checks, in this order, and stops at the first that answers:

    auth (401, then 403) -> rate / daily budget (429) -> latency -> drop -> fail (500)
    -> body validation (400) -> business (404 organizer, 404 meeting) -> success (200)

Three ways to run it:
    async with await start_sandbox(SandboxSettings(rate=None)) as sandbox: ...   # in-process
    with SandboxThread(SandboxSettings()) as sandbox: ...    # background thread, for sync tests
    await serve(SandboxSettings(), port=8080, stop=event)    # until `event` is set

Its parts: settings (what it can be told), limits (rate windows, daily budget), contract (request
checks and Gong's answer texts), state (log and counters), app (the server), harness (the ways
to run it above). `bulkmeet sandbox` (bulkmeet/cli/run.py) prints its URL and handles signals.

It can also play another integration of the same company (`neighbour` calls/s spent from
the same rate window and daily budget, its refused calls counted), to measure what a run does
to the rest of the company's quota.

Two unauthenticated endpoints let a test that runs bulkmeet as a subprocess look inside:
GET /_sandbox/stats and GET /_sandbox/meetings.
"""
from __future__ import annotations

from .app import Sandbox, loopback_host
from .contract import (
    ASSISTANT,
    FIX_URL,
    HELP_URL,
    MAX_STATUS_EMAILS,
    MEETING_URL,
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
    meeting_errors,
    status_errors,
)
from .harness import SandboxThread, serve, start_sandbox
from .limits import DAY
from .settings import DEFAULT_SETTINGS, RetryAfterStyle, SandboxSettings, Window
from .state import LoggedRequest, SandboxState

__all__ = [
    "ASSISTANT",
    "DAY",
    "DEFAULT_SETTINGS",
    "FIX_URL",
    "HELP_URL",
    "MAX_STATUS_EMAILS",
    "MEETING_URL",
    "MSG_CONSENT",
    "MSG_DAILY_LIMITED",
    "MSG_FAILED",
    "MSG_FORBIDDEN",
    "MSG_NOT_A_USER",
    "MSG_NOT_ORGANIZER",
    "MSG_NO_MEETING",
    "MSG_NO_USER",
    "MSG_RATE_LIMITED",
    "MSG_UNAUTHORIZED",
    "LoggedRequest",
    "RetryAfterStyle",
    "Sandbox",
    "SandboxSettings",
    "SandboxState",
    "SandboxThread",
    "Window",
    "loopback_host",
    "meeting_errors",
    "serve",
    "start_sandbox",
    "status_errors",
]
