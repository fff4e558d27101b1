"""Assemble one run from its parts: config, input, results, ledger, quota, gate, client, pool.

No printing here: the CLI shows what this returns.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import stat
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from .client import Credentials, GongClient
from .config import Config
from .errors import ConfigError, UsageError
from .gate import Gate, RateChange
from .ledger import Ledger, read_ledger
from .mapping import Mapper
from .models import RawRow, Row, Status, payload_digest
from .pool import Pipeline, RunStats
from .quota import quota_for
from .reader import read_rows
from .results import ResultsState, ResultsWriter, read_results
from .triage import Decision, Triage, decide

log = logging.getLogger("bulkmeet")

SANDBOX_CREDENTIALS = ("sandbox-key", "sandbox-secret")


@dataclass(frozen=True, slots=True)
class JobOptions:
    input: str
    out: str
    fresh: bool = False
    resend_uncertain: bool = False
    sandbox: bool = False
    insecure: bool = False
    sheet: str | None = None


def default_out(input_path: str) -> str:
    """Results next to the input, so running the same command again resumes it."""
    if input_path == "-":
        return "bulkmeet-results.jsonl"
    p = Path(input_path)
    return str(p.with_name(p.stem + ".results.jsonl"))


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


def _blocking_source(path: str) -> bool:
    """Pipes and terminals block on read; regular files do not."""
    if path == "-":
        return True
    try:
        return not stat.S_ISREG(os.stat(path).st_mode)
    except OSError:
        return False


def make_gate(cfg: Config, *, unlimited: bool = False) -> Gate:
    def changed(change: RateChange) -> None:
        log.warning("rate %.2f/s -> %.2f/s (%s)", change.old, change.new, change.reason,
                    extra={"event": "rate", "rate": change.new})

    return Gate(None if unlimited else cfg.rate, margin=cfg.rate_margin, auto=cfg.rate_auto,
                ceiling=cfg.rate_ceiling if cfg.rate_auto else cfg.rate, floor=cfg.rate_floor,
                on_rate_change=changed)


@asynccontextmanager
async def sandbox_if(enabled: bool, cfg: Config) -> AsyncIterator[Config]:
    """Start the built-in sandbox on a free loopback port and point the config at it."""
    if not enabled:
        yield cfg
        return
    from .sandbox import SandboxSettings, start_sandbox

    sandbox = await start_sandbox(SandboxSettings(rate=cfg.rate if not cfg.rate_auto else None))
    try:
        yield cfg.replace(base_url=sandbox.url)
    finally:
        await sandbox.close()


def open_state(
    cfg: Config, opts: JobOptions
) -> tuple[ResultsState | None, Ledger | None, ResultsWriter]:
    """Read what earlier runs left (results file, ledger), then open them for appending."""
    if opts.fresh and cfg.ledger is None and os.path.exists(opts.out):
        log.warning("--fresh: %s is started anew; rows it recorded as created will be sent "
                    "again unless a ledger says otherwise", opts.out)
    prior = None if opts.fresh else read_results(opts.out)
    if prior is not None:
        for w in prior.warnings:
            log.warning(w)
    ledger = Ledger.open(cfg.ledger) if cfg.ledger else None
    if ledger is not None:
        for w in ledger.warnings:
            log.warning(w)
    return prior, ledger, ResultsWriter(opts.out, fresh=opts.fresh)


async def run_job(
    cfg: Config,
    opts: JobOptions,
    *,
    stop: asyncio.Event | None = None,
    hard_stop: asyncio.Event | None = None,
    on_start: Callable[[Pipeline], None] | None = None,
    raws: Iterable[RawRow] | None = None,
    mapper: Callable[[RawRow], Row] | None = None,
) -> RunStats:
    """One run: `raws` and `mapper` replace reading and mapping the input (retry, sync)."""
    if opts.sandbox:
        credentials = Credentials.basic(*SANDBOX_CREDENTIALS)
    else:
        credentials = Credentials.from_env()
    mapping_warnings = None
    compiled = None
    if mapper is None:
        compiled = Mapper.from_config(cfg)
        mapper, mapping_warnings = compiled.map, compiled.drain_warnings
    if raws is None:
        raws = read_rows(opts.input, fmt=cfg.format, delimiter=cfg.delimiter,
                         encoding=cfg.encoding, sheet=opts.sheet)
        if compiled is not None:
            try:
                compiled.check_header(raws.columns, opts.input)
            except BaseException:
                raws.close()
                raise
    prior, ledger, writer = open_state(cfg, opts)
    try:
        async with sandbox_if(opts.sandbox, cfg) as cfg:
            check_base_url(cfg.base_url, insecure=opts.insecure)
            quota = quota_for(cfg, sandbox=opts.sandbox)
            gate = make_gate(cfg)
            async with GongClient(cfg.base_url, credentials, timeout=cfg.request_timeout,
                                  connections=cfg.concurrency) as client:
                pipeline = Pipeline(cfg, mapper=mapper, mapping_warnings=mapping_warnings,
                                    client=client, gate=gate,
                                    writer=writer, ledger=ledger, quota=quota, prior=prior,
                                    resend_uncertain=opts.resend_uncertain, stop=stop,
                                    hard_stop=hard_stop)
                if on_start is not None:
                    on_start(pipeline)
                try:
                    blocking = _blocking_source(opts.input) and not isinstance(raws, list)
                    return await pipeline.run(raws, blocking=blocking)
                finally:
                    quota.save()
    finally:
        writer.close()
        if ledger is not None:
            ledger.close()


def validate_options(opts: JobOptions) -> None:
    if opts.input != "-" and not Path(opts.input).exists():
        raise UsageError(f"input file {opts.input} does not exist")


PREFLIGHT_MAX_BYTES = 20 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Estimate:
    """What a run will do, known before its first request."""

    rows: int
    to_send: int
    invalid: int
    done_before: int
    seconds: float | None
    budget_left: int | None
    budget: int

    def lines(self) -> list[str]:
        out = [f"preflight: {self.rows} rows; {self.to_send} to send, {self.invalid} invalid, "
               f"{self.done_before} settled by earlier runs"]
        if self.seconds is not None:
            out.append(f"  about {_duration(self.seconds)} at the set rate")
        if self.budget_left is not None:
            verdict = ("enough" if self.to_send <= self.budget_left else
                       f"not enough: about {self.to_send - self.budget_left} rows will be "
                       "deferred to the next day (exit 75)")
            out.append(f"  today's budget: {self.budget_left} of {self.budget} calls left, "
                       f"{verdict}")
        return out


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f}s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def estimate(cfg: Config, opts: JobOptions) -> Estimate | None:
    """Map the input once, without sending, to tell what the run will send and how long it
    takes. None for stdin and for inputs too large to read twice cheaply."""
    if opts.input == "-" or _blocking_source(opts.input):
        return None
    try:
        if os.path.getsize(opts.input) > PREFLIGHT_MAX_BYTES:
            return None
    except OSError:
        return None
    mapper = Mapper.from_config(cfg)
    triage = Triage(mapper)
    prior = None if opts.fresh else read_results(opts.out)
    ledger = read_ledger(cfg.ledger)[0] if cfg.ledger else {}
    rows = to_send = invalid = done = 0
    with read_rows(opts.input, fmt=cfg.format, delimiter=cfg.delimiter, encoding=cfg.encoding,
                   sheet=opts.sheet) as raws:
        mapper.check_header(raws.columns, opts.input)
        for raw in raws:
            rows += 1
            verdict = triage(raw)
            if verdict.record is not None:
                invalid += verdict.status is Status.INVALID
                continue
            row = verdict.row
            decision = decide(row, payload_digest(row.payload or {}),
                              prior.keys.get(row.key) if prior else None, ledger.get(row.key),
                              resend_uncertain=opts.resend_uncertain)
            if decision is Decision.SEND:
                to_send += 1
            else:
                done += 1
    triage.close()
    rate = None if cfg.rate_auto else cfg.rate * (1 - cfg.rate_margin)
    seconds = to_send / rate if rate else None
    budget_left = None if opts.sandbox else quota_for(cfg).remaining
    return Estimate(rows, to_send, invalid, done, seconds, budget_left, cfg.daily_budget)
