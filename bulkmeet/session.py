"""One way to open a sending session: credentials, base-URL policy, sandbox, quota, gate, client.

Every command that talks to Gong (run, retry, sync, undo, check) opens its session here, so the
rules cannot drift apart between them:

- credentials come from the environment, or are the sandbox's own with `sandbox=True`;
- the base URL must be https, unless it stays on this machine or the user said `--insecure`;
- `sandbox=True` starts the built-in fake Gong on a free loopback port, limiting like a default
  Gong company (3 calls/s, 10,000 a day) unless `sandbox_rate` says otherwise, and points the
  session at it; a sandbox spends nothing of the real daily quota;
- the daily quota is read for the target and saved when the session closes: a folder that cannot
  be written is reported once (`Session.output_errors`), not raised after the run's records are
  safe on disk;
- one rate gate and one keep-alive client serve every request of the session.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from .config import DEFAULT_DAILY_BUDGET, DEFAULT_RATE, Config, reserve_rate
from .errors import ConfigError, StateMissing
from .gate import Gate, RateChange
from .quota import DailyQuota, quota_for

if TYPE_CHECKING:
    from .client import Credentials, GongClient
    from .sandbox import Sandbox
    from .store import Store

log = logging.getLogger("bulkmeet")

SANDBOX_CREDENTIALS = ("sandbox-key", "sandbox-secret")


@dataclass(frozen=True, slots=True)
class Target:
    """Where a session sends: Gong itself, or the built-in sandbox (with its limit)."""

    sandbox: bool = False
    sandbox_rate: float | None = DEFAULT_RATE  # the built-in sandbox's limit; None: none
    insecure: bool = False  # allow a plain-http base URL off this machine


@dataclass(slots=True)
class Session:
    """What one command sends through. `cfg.base_url` is the URL actually used."""

    cfg: Config
    client: GongClient
    gate: Gate
    quota: DailyQuota
    sandbox: Sandbox | None = None
    store: Store | None = None  # the state store, when `state` is set
    output_errors: list[str] = field(default_factory=list)


def is_loopback_url(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_base_url(url: str, *, insecure: bool) -> None:
    """Credentials travel in a header: refuse plain http unless it stays on this machine."""
    if url.startswith("https://") or insecure or is_loopback_url(url):
        return
    raise ConfigError(f"base URL {url} is not https: credentials would travel in clear text "
                      "(use https, a loopback sandbox, or --insecure)")


def credentials_for(target: Target, *, sandbox_hint: bool = True) -> Credentials:
    """The sandbox's own credentials, or the user's from the environment (raises if unset;
    `sandbox_hint` False for a command without --sandbox)."""
    from .client import Credentials

    if target.sandbox:
        return Credentials.basic(*SANDBOX_CREDENTIALS)
    return Credentials.from_env(sandbox_hint=sandbox_hint)


def principal(credentials: Credentials) -> str:
    """Who sends, as the state store and results files name it: a digest of the access key id
    (half of the credential pair is not written anywhere either), or of the bearer token."""
    scheme, _, token = credentials.header().partition(" ")
    if scheme == "Basic":
        key = base64.b64decode(token).decode("utf-8", "replace").split(":", 1)[0]
        return "key:" + hashlib.sha256(key.encode()).hexdigest()[:16]
    return "bearer:" + hashlib.sha256(token.encode()).hexdigest()


def target_label(cfg: Config, target: Target, credentials: Credentials) -> str:
    """Where a run sends, as a results file records it: "sandbox", or the Gong host and who
    sends (the access key id, or the start of the bearer token's digest); never a secret."""
    if target.sandbox:
        return "sandbox"
    from .store import normalise_url

    kind, _, who = principal(credentials).partition(":")
    name = f"access key #{who[:12]}" if kind == "key" else f"bearer token #{who[:12]}"
    # A server on this machine (a test server, a proxy) is one place whatever its port.
    where = "this machine" if is_loopback_url(cfg.base_url) else normalise_url(cfg.base_url)
    return f"{where} ({name})"


def state_url(cfg: Config, target: Target) -> str | None:
    """Which state store a session uses: `state:` as set; unset, the default SQLite file for a
    real Gong host and none for the sandbox or a server on this machine (tests, trials);
    "off", none."""
    if cfg.state == "off":
        return None
    if cfg.state is None:
        return None if target.sandbox or is_loopback_url(cfg.base_url) else "default"
    return cfg.state


async def open_state(cfg: Config, credentials: Credentials, url: str | None = None) -> Store:
    """The state store (`url`, else `cfg.state`) of the company `cfg.base_url` and
    `credentials` name. With state_must_exist, a new or empty store stops the run before
    anything is sent."""
    import sqlite3

    from .store import Target as StoreTarget
    from .store import normalise_url, open_store

    url = url or cfg.state
    assert url is not None
    where = None if url == "default" else url
    target = StoreTarget(normalise_url(cfg.base_url), principal(credentials))
    try:
        store = await open_store(where, target)
    except (OSError, sqlite3.Error) as exc:
        raise ConfigError(f"cannot open the state store ({url}): {exc}; give --state a place "
                          "bulkmeet can write, or set `state: off`") from None
    if cfg.state_must_exist and await store.is_empty():
        await store.close()
        raise StateMissing(
            f"the state store for {target.label} holds nothing yet, and the run was told it "
            "must exist (--state-must-exist): a lost CI cache or a wrong --state would create "
            "every row again; nothing was sent")
    return store


def make_gate(cfg: Config, *, unlimited: bool = False) -> Gate:
    def changed(change: RateChange) -> None:
        log.warning("rate %.2f/s -> %.2f/s (%s)", change.old, change.new, change.reason,
                    extra={"event": "rate", "rate": change.new})

    return Gate(None if unlimited else cfg.rate, margin=cfg.rate_margin, auto=cfg.rate_auto,
                reserve=0.0 if unlimited else reserve_rate(cfg),
                ceiling=cfg.rate_ceiling if cfg.rate_auto else cfg.rate, floor=cfg.rate_floor,
                on_rate_change=changed)


@asynccontextmanager
async def sandbox_if(enabled: bool, cfg: Config, *, rate: float | None = DEFAULT_RATE,
                     seed: Callable[[Sandbox], None] | None = None,
                     ) -> AsyncIterator[tuple[Config, Sandbox | None]]:
    """Start the built-in sandbox on a free loopback port and point the config at it."""
    if not enabled:
        yield cfg, None
        return
    from .sandbox import SandboxSettings, start_sandbox

    sandbox = await start_sandbox(SandboxSettings(rate=rate, daily=DEFAULT_DAILY_BUDGET))
    if seed is not None:
        seed(sandbox)
    try:
        yield cfg.replace(base_url=sandbox.url), sandbox
    finally:
        await sandbox.close()


def save_quota(quota: DailyQuota, errors: list[str]) -> None:
    """The day's count, saved at the end; a folder that cannot be written is said once, after
    the run (whose records are all on disk), not as a traceback."""
    try:
        quota.save()
    except OSError as exc:
        errors.append(f"cannot save the daily quota to {quota.path}: {exc.strerror or exc} "
                      "(the calls of this run are not counted in it)")


@asynccontextmanager
async def open_session(
    cfg: Config,
    target: Target,
    *,
    credentials: Credentials | None = None,
    connections: int | None = None,
    seed: Callable[[Sandbox], None] | None = None,
    unlimited: bool = False,
) -> AsyncIterator[Session]:
    """Open the one session a command sends through; close and save everything after.

    `credentials` are checked by the caller when it must fail before anything else (they are
    read from the environment otherwise). `connections` defaults to cfg.concurrency.
    `unlimited` turns the gate off (benchmarks only: no flag does).
    """
    from .client import GongClient

    if credentials is None:
        credentials = credentials_for(target)
    if not target.sandbox:
        check_base_url(cfg.base_url, insecure=target.insecure)
    async with sandbox_if(target.sandbox, cfg, rate=target.sandbox_rate, seed=seed) as (
            cfg, sandbox):
        quota = quota_for(cfg, sandbox=target.sandbox)
        async with GongClient(cfg.base_url, credentials, timeout=cfg.request_timeout,
                              connections=connections or cfg.concurrency) as client:
            url = state_url(cfg, target)
            if url is None and cfg.state_must_exist and not target.sandbox:
                raise ConfigError(
                    f"--state-must-exist, but {cfg.base_url} keeps no state store (a server on "
                    "this machine keeps none unless --state names one; or `state: off`): "
                    "nothing was sent")
            store = await open_state(cfg, credentials, url) if url is not None else None
            session = Session(cfg, client, make_gate(cfg, unlimited=unlimited), quota, sandbox,
                              store)
            try:
                yield session
            finally:
                save_quota(quota, session.output_errors)
                if store is not None:
                    await store.close()
