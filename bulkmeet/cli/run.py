"""`bulkmeet run` and `bulkmeet sandbox`."""

from __future__ import annotations

import asyncio
from typing import cast

import click

from ..config import Config
from ..errors import UsageError
from ..fixfile import write_errors_file
from ..job import JobOptions, default_out, run_job, validate_options
from .common import (
    exit_code,
    fail,
    guard,
    load_config,
    main,
    parse_rate,
    setup_logging,
    signals,
    summary_lines,
)


@main.command()
@click.argument("input", metavar="INPUT")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="YAML config file.")
@click.option("--out", help="Results file (.jsonl, or .csv). Default: INPUT.results.jsonl beside "
              "the input. An existing one is resumed.")
@click.option("--rate", help="Requests per second, or 'auto' to adapt to a shared quota "
              "(default 3).")
@click.option("--concurrency", type=click.IntRange(min=1), help="Workers sending at once (8).")
@click.option("--format", "fmt", type=click.Choice(["csv", "jsonl", "xlsx"]),
              help="Input format (default: from the extension; needed for stdin).")
@click.option("--ledger", help="Ledger file kept across runs: a key it holds is never created "
              "again.")
@click.option("--fresh", is_flag=True, help="Start the results file anew instead of resuming it.")
@click.option("--resend-uncertain", is_flag=True, help="Send again rows whose earlier request "
              "may or may not have created a meeting.")
@click.option("--sandbox", is_flag=True, help="Run against the built-in fake Gong server on a "
              "free loopback port.")
@click.option("--insecure", is_flag=True, help="Allow a base URL that is plain http.")
@click.option("--sheet", help="Worksheet name for .xlsx input (default: the first).")
@click.option("--errors-out", help="After the run, write the rows that failed or are invalid "
              "here, in the input's format and columns plus an `error` column.")
@click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"]),
              default="warning", show_default=True)
def run(input: str, config_path: str | None, out: str | None, rate: str | None,
        concurrency: int | None, fmt: str | None, ledger: str | None, fresh: bool,
        resend_uncertain: bool, sandbox: bool, insecure: bool, sheet: str | None,
        errors_out: str | None, log_level: str) -> None:
    """Create a Gong meeting for every valid row of INPUT (a path, or - for stdin).

    Every row gets one final record in the results file. Re-running the same command resumes:
    rows already created are skipped and no request is spent on them.
    """
    setup_logging(log_level)

    def go() -> int:
        cfg = load_config(config_path, concurrency=concurrency, format=fmt, ledger=ledger,
                           **parse_rate(rate))
        opts = JobOptions(input=input, out=out or default_out(input), fresh=fresh,
                          resend_uncertain=resend_uncertain, sandbox=sandbox, insecure=insecure,
                          sheet=sheet)
        validate_options(opts)
        return asyncio.run(_run_async(cfg, opts, errors_out))

    guard(go)


async def _run_async(cfg: Config, opts: JobOptions, errors_out: str | None = None) -> int:
    stop, hard = asyncio.Event(), asyncio.Event()
    got: list[int] = []
    with signals(stop, hard, got):
        stats = await run_job(cfg, opts, stop=stop, hard_stop=hard)
    for line in summary_lines(stats, opts.out):
        click.echo(line, err=True)
    if stats.auth_error is not None:
        click.echo(f"bulkmeet: error: {stats.auth_error}", err=True)
    if errors_out:
        n = write_errors_file(cfg, opts.input, opts.out, errors_out, sheet=opts.sheet)
        click.echo(f"  {n} rows to fix written to {errors_out}", err=True)
    return exit_code(stats, got)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Loopback address to bind.")
@click.option("--port", type=int, default=8080, show_default=True)
@click.option("--rate", type=float, default=3.0, show_default=True,
              help="Calls per second before 429 (0 for no limit).")
@click.option("--window", type=click.Choice(["fixed", "sliding", "bucket"]), default="sliding",
              show_default=True, help="How the rate is counted.")
@click.option("--daily", type=int, help="Calls per day before 429.")
@click.option("--retry-after", type=click.Choice(["seconds", "date", "none"]), default="seconds",
              show_default=True, help="Form of the Retry-After header on 429.")
@click.option("--fail-rate", type=float, default=0.0, show_default=True,
              help="Fraction of requests answered 500.")
@click.option("--drop-rate", type=float, default=0.0, show_default=True,
              help="Fraction of connections dropped without an answer.")
@click.option("--latency", type=float, default=0.0, show_default=True,
              help="Seconds added before each answer.")
def sandbox(host: str, port: int, rate: float, window: str, daily: int | None,
            retry_after: str, fail_rate: float, drop_rate: float, latency: float) -> None:
    """Serve a fake Gong meetings API on loopback, for trying bulkmeet without a Gong account."""
    from ..sandbox import RetryAfterStyle, SandboxSettings, Window, serve

    settings = SandboxSettings(rate=rate or None, window=cast(Window, window), daily=daily,
                               retry_after=cast(RetryAfterStyle, retry_after),
                               fail_rate=fail_rate, drop_rate=drop_rate, latency=latency)
    try:
        serve(settings, host=host, port=port)
    except ValueError as exc:
        fail(UsageError(str(exc)))
