"""`bulkmeet run` and `bulkmeet sandbox`."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
from typing import TYPE_CHECKING, cast

import click

from ..config import Config
from ..errors import BulkmeetError, UsageError
from ..exits import EXIT_OK
from .common import (
    RunOutputs,
    carry_out,
    errors_out_step,
    guard,
    main,
    make_outputs,
    parse_rate,
    require_file,
    sandbox_limit,
    signals,
    warn_fast_rate,
)
from .options import input_options, output_options, sending_options, state_options
from .validate import echo_notes, hinting, input_config

if TYPE_CHECKING:
    from ..engine import RunStats
    from ..runs import RunOptions
    from ..sandbox import SandboxSettings


@main.command()
@click.argument("input", metavar="INPUT")
@input_options
@click.option("--out", help="Results file (.jsonl, or .csv). Default: INPUT.results.jsonl beside "
              "the input (bulkmeet-results.jsonl in the working folder for stdin; "
              "INPUT.sandbox.results.jsonl with --sandbox). An existing one is resumed.")
@click.option("--ledger", help="Deprecated: a ledger file of an earlier version, kept across "
              "runs (the state store keeps what it kept; `bulkmeet state import --ledger FILE`).")
@click.option("--fresh", is_flag=True, help="Start the results file anew instead of resuming it.")
@click.option("--resend-uncertain", is_flag=True, help="Send again rows whose earlier request "
              "may or may not have created a meeting.")
@click.option("--errors-out", help="After the run, write the rows that failed or are invalid "
              "here, in the input's format and columns plus an `error` column.")
@click.option("--no-check", "no_check", is_flag=True, help="Do not ask Gong's "
              "integration/status about the organizers before sending (config: "
              "check_organizers).")
@sending_options
@state_options
@output_options
def run(input: str, config_path: str | None, preset: str | None, organizer: str | None,
        tz: str | None, fmt: str | None, sheet: str | None, out: str | None,
        ledger: str | None, fresh: bool, resend_uncertain: bool, errors_out: str | None,
        no_check: bool, rate: str | None, reserve: str | None, concurrency: int | None,
        insecure: bool, sandbox: bool,
        sandbox_rate: float, state: str | None, state_must_exist: bool | None, quiet: bool,
        status_interval: float | None, junit: str | None, summary_path: str | None,
        log_level: str, log_format: str) -> None:
    """Create a Gong meeting for every valid row of INPUT (a path, or - for stdin).

    Every row gets one final record in the results file. Re-running the same command resumes:
    rows already created are skipped and no request is spent on them.
    """
    outputs = make_outputs(quiet=quiet, junit=junit, summary=summary_path, log_level=log_level,
                           log_format=log_format)

    from ..runs import RunOptions, default_out, validate_options

    def go() -> int:
        require_file(input)
        cfg, notes = input_config(config_path, preset=preset, organizer=organizer, tz=tz,
                                  concurrency=concurrency, format=fmt, ledger=ledger,
                                  status_interval=status_interval, state=state,
                                  state_must_exist=state_must_exist, reserve=reserve,
                                  **parse_rate(rate))
        if no_check:
            cfg = cfg.replace(check_organizers=False)
        if not quiet:
            echo_notes(notes)
        warn_fast_rate(cfg, sandbox=sandbox)
        opts = RunOptions(input=input, out=out or default_out(input, sandbox=sandbox), fresh=fresh,
                          resend_uncertain=resend_uncertain, sandbox=sandbox, insecure=insecure,
                          sheet=sheet, sandbox_rate=sandbox_limit(sandbox_rate))
        validate_options(opts)
        return asyncio.run(_run_async(cfg, opts, errors_out, outputs))

    def reported() -> int:
        try:
            return hinting(go)()
        except BulkmeetError as exc:  # stopped before it ran: CI still gets a summary
            if out is not None or not os.path.isdir(input):  # a folder has no results beside
                outputs.write_error(exc, input, out or default_out(input, sandbox=sandbox))
            raise

    guard(reported)


async def _run_async(cfg: Config, opts: RunOptions, errors_out: str | None = None,
                     outputs: RunOutputs | None = None) -> int:
    from ..runs import estimate, run_input, with_store_budget
    from ..session import credentials_for

    credentials_for(opts.target)  # a missing credential is said before the preflight lines
    outputs = outputs or RunOutputs()
    est = estimate(cfg, opts)
    if est is not None:
        est = await with_store_budget(cfg, opts, est)
    for line in est.lines() if est is not None and not outputs.quiet else ():
        click.echo(line, err=True)
    outputs.begin(cfg, opts.input, opts.out, fresh=opts.fresh, sheet=opts.sheet)

    async def send(stop: asyncio.Event, hard: asyncio.Event) -> RunStats:
        return await run_input(cfg, opts, stop=stop, hard_stop=hard,
                               on_start=outputs.on_start, listeners=outputs.listeners(),
                               organizers=est.organizers if est is not None else None)

    return await carry_out(send, out=opts.out, outputs=outputs,
                           after=errors_out_step(cfg, opts, errors_out))


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Loopback address to bind.")
@click.option("--port", type=click.IntRange(0, 65535), default=8080, show_default=True,
              help="Port to listen on; 0 picks a free one.")
@click.option("--rate", type=float, default=3.0, show_default=True,
              help="Calls per second before 429 (0 for no limit).")
@click.option("--window", type=click.Choice(["fixed", "sliding", "bucket"]), default="sliding",
              show_default=True, help="How the rate is counted.")
@click.option("--daily", type=click.IntRange(min=0), default=10_000, show_default=True,
              help="Calls per day before 429 (0 for no limit).")
@click.option("--retry-after", type=click.Choice(["seconds", "date", "none"]), default="seconds",
              show_default=True, help="Form of the Retry-After header on 429.")
@click.option("--fail-rate", type=float, default=0.0, show_default=True,
              help="Fraction of requests answered 500.")
@click.option("--drop-rate", type=float, default=0.0, show_default=True,
              help="Fraction of connections dropped without an answer.")
@click.option("--latency", type=float, default=0.0, show_default=True,
              help="Seconds added before each answer.")
@click.option("--neighbour", type=click.FloatRange(min=0), default=0.0, show_default=True,
              metavar="R", help="Play another integration of the company: spend R calls/s of "
              "the same limits and count its refused calls in /_sandbox/stats.")
def sandbox(host: str, port: int, rate: float, window: str, daily: int,
            retry_after: str, fail_rate: float, drop_rate: float, latency: float,
            neighbour: float = 0.0) -> None:
    """Serve a fake Gong meetings API on loopback, for trying bulkmeet without a Gong account.

    It limits like a default Gong company (3 calls/s in a sliding one-second window, 10,000 a
    day); --rate 0 --daily 0 take the limits off for fast trials."""
    from ..sandbox import RetryAfterStyle, SandboxSettings, Window

    def go() -> int:
        try:
            settings = SandboxSettings(
                rate=rate or None, window=cast(Window, window), daily=daily or None,
                retry_after=cast(RetryAfterStyle, retry_after), fail_rate=fail_rate,
                drop_rate=drop_rate, latency=latency, neighbour=neighbour)
            asyncio.run(_serve_sandbox(settings, host, port))
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise UsageError(f"port {port} on {host} is already in use; choose another with "
                                 "--port, or --port 0 for any free one") from None
            raise UsageError(f"cannot listen on {host} port {port}: {exc.strerror or exc}") \
                from None
        return EXIT_OK  # a server's normal end is a signal

    guard(go)


async def _serve_sandbox(settings: SandboxSettings, host: str, port: int) -> None:
    """Serve until SIGINT or SIGTERM, saying where on stderr. The first signal closes the
    sandbox, letting requests in flight finish; a second one stops at once."""
    from ..sandbox import Sandbox, serve

    def ready(sandbox: Sandbox) -> None:
        click.echo(f"bulkmeet sandbox listening on {sandbox.url}", err=True)

    stop, hard = asyncio.Event(), asyncio.Event()
    with signals(stop, hard, []):
        serving = asyncio.create_task(serve(settings, stop=stop, host=host, port=port,
                                            on_ready=ready))
        stop_now = asyncio.create_task(hard.wait())
        await asyncio.wait({serving, stop_now}, return_when=asyncio.FIRST_COMPLETED)
        stop_now.cancel()
        serving.cancel()  # nothing to do unless a second signal came first
        with contextlib.suppress(asyncio.CancelledError):
            await serving
