"""`bulkmeet run` and `bulkmeet sandbox`."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
from typing import TYPE_CHECKING, cast

import click

from ..config import Config

if TYPE_CHECKING:
    from ..runs import RunOptions
    from ..sandbox import SandboxSettings
from ..errors import BulkmeetError, UsageError
from .common import (
    EXIT_OK,
    RunOutputs,
    errors_out_file,
    exit_code,
    guard,
    main,
    parse_rate,
    require_file,
    sandbox_limit,
    sandbox_options,
    setup_logging,
    signals,
    summary_lines,
    warn_fast_rate,
)
from .validate import echo_notes, hinting, input_config, mapping_options


@main.command()
@click.argument("input", metavar="INPUT")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="YAML config file.")
@click.option("--out", help="Results file (.jsonl, or .csv). Default: INPUT.results.jsonl beside "
              "the input (bulkmeet-results.jsonl in the working folder for stdin). An existing "
              "one is resumed.")
@click.option("--rate", help="Requests per second, or 'auto' to adapt to a shared quota "
              "(default 3).")
@click.option("--reserve", help="Calls/s of the limit left for the company's other "
              "integrations, or a share of it such as 25% (default 0).")
@click.option("--concurrency", type=click.IntRange(min=1), help="Workers sending at once (8).")
@click.option("--format", "fmt", type=click.Choice(["csv", "jsonl", "xlsx"]),
              help="Input format (default: from the extension; needed for stdin).")
@click.option("--ledger", help="Ledger file kept across runs: a key it holds is never created "
              "again.")
@click.option("--fresh", is_flag=True, help="Start the results file anew instead of resuming it.")
@click.option("--resend-uncertain", is_flag=True, help="Send again rows whose earlier request "
              "may or may not have created a meeting.")
@sandbox_options
@click.option("--insecure", is_flag=True, help="Allow a base URL that is plain http.")
@click.option("--sheet", help="Worksheet name for .xlsx input (default: the first).")
@click.option("--errors-out", help="After the run, write the rows that failed or are invalid "
              "here, in the input's format and columns plus an `error` column.")
@click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"]),
              default="warning", show_default=True)
@click.option("--log-format", type=click.Choice(["text", "json"]), default="text",
              show_default=True, help="Log lines as text, or as one JSON object per line "
              "with the event, line and key as fields.")
@click.option("-q", "--quiet", is_flag=True, help="Show nothing but errors and the final summary.")
@click.option("--status-interval", type=click.FloatRange(min=0, min_open=True),
              help="Seconds between status lines when stderr is not a terminal (15).")
@click.option("--junit", type=click.Path(dir_okay=False), help="Write a JUnit XML report "
              "here: one testcase per row, failures with their errors and requestId.")
@click.option("--summary", "summary_path", type=click.Path(dir_okay=False),
              help="Write a JSON summary here: counts by status, timings, rate, 429 pauses, "
              "quota, exit code.")
@mapping_options
def run(input: str, config_path: str | None, out: str | None, rate: str | None,
        concurrency: int | None, fmt: str | None, ledger: str | None, fresh: bool,
        resend_uncertain: bool, sandbox: bool, sandbox_rate: float, insecure: bool,
        sheet: str | None,
        errors_out: str | None, log_level: str, preset: str | None = None,
        organizer: str | None = None, tz: str | None = None,
        log_format: str = "text", quiet: bool = False, status_interval: float | None = None,
        junit: str | None = None, summary_path: str | None = None,
        reserve: str | None = None) -> None:
    """Create a Gong meeting for every valid row of INPUT (a path, or - for stdin).

    Every row gets one final record in the results file. Re-running the same command resumes:
    rows already created are skipped and no request is spent on them.
    """
    setup_logging("error" if quiet else log_level, log_format)
    outputs = RunOutputs(quiet=quiet, junit=junit, summary=summary_path,
                         step_summary=os.environ.get("GITHUB_STEP_SUMMARY") or None)

    from ..runs import RunOptions, default_out, validate_options

    def go() -> int:
        require_file(input)
        cfg, notes = input_config(config_path, preset=preset, organizer=organizer, tz=tz,
                                  concurrency=concurrency, format=fmt, ledger=ledger,
                                  status_interval=status_interval, **parse_rate(rate),
                                  **({} if reserve is None else {"reserve": reserve}))
        if not quiet:
            echo_notes(notes)
        warn_fast_rate(cfg, sandbox=sandbox)
        opts = RunOptions(input=input, out=out or default_out(input), fresh=fresh,
                          resend_uncertain=resend_uncertain, sandbox=sandbox, insecure=insecure,
                          sheet=sheet, sandbox_rate=sandbox_limit(sandbox_rate))
        validate_options(opts)
        return asyncio.run(_run_async(cfg, opts, errors_out, outputs))

    def reported() -> int:
        try:
            return hinting(go)()
        except BulkmeetError as exc:  # stopped before it ran: CI still gets a summary
            if out is not None or not os.path.isdir(input):  # a folder has no results beside
                outputs.write_error(exc, input, out or default_out(input))
            raise

    guard(reported)


async def _run_async(cfg: Config, opts: RunOptions, errors_out: str | None = None,
                     outputs: RunOutputs | None = None) -> int:
    from ..runs import estimate, run_input
    from ..session import credentials_for

    credentials_for(opts.target)  # a missing credential is said before the preflight lines
    outputs = outputs or RunOutputs()
    stop, hard = asyncio.Event(), asyncio.Event()
    got: list[int] = []
    est = estimate(cfg, opts)
    for line in est.lines() if est is not None and not outputs.quiet else ():
        click.echo(line, err=True)
    outputs.begin(cfg, opts.input, opts.out, fresh=opts.fresh, sheet=opts.sheet)
    with signals(stop, hard, got):
        try:
            stats = await run_input(cfg, opts, stop=stop, hard_stop=hard,
                                    on_start=outputs.on_start, listeners=outputs.listeners())
        finally:
            await outputs.end()
    for line in summary_lines(stats, opts.out):
        click.echo(line, err=True)
    if stats.auth_error is not None:
        click.echo(f"bulkmeet: error: {stats.auth_error}", err=True)
    if stats.stopped_by is not None:
        click.echo(f"bulkmeet: error: {stats.stopped_by}", err=True)
    code = exit_code(stats, got)
    if errors_out:
        code = errors_out_file(cfg, opts.input, opts.out, errors_out, code, sheet=opts.sheet)
    return outputs.write(stats, code)


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
