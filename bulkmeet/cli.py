"""The command line: the only place that prints, draws progress and chooses exit codes."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Callable, Iterator
from typing import Any

import click

from . import __version__
from . import config as config_mod
from .config import Config
from .errors import BulkmeetError, UsageError
from .job import JobOptions, default_out, run_job, validate_options
from .models import Status
from .pool import RunStats

EXIT_OK = 0
EXIT_ROWS = 1
EXIT_USAGE = 2
EXIT_AUTH = 3
EXIT_DEFERRED = 75
EXIT_SIGINT = 130
EXIT_SIGTERM = 143

log = logging.getLogger("bulkmeet")


def _setup_logging(level: str) -> None:
    root = logging.getLogger("bulkmeet")
    for h in list(root.handlers):
        root.removeHandler(h)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("bulkmeet: %(levelname)s: %(message)s"))
    root.addHandler(handler)
    root.setLevel(level.upper())
    root.propagate = False


def _load_config(path: str | None, **overrides: Any) -> Config:
    cfg = config_mod.load(path)
    changes = {k: v for k, v in overrides.items() if v is not None}
    return cfg.replace(**changes) if changes else cfg


def _parse_rate(value: str | None) -> dict[str, Any]:
    if value is None:
        return {}
    if value == "auto":
        return {"rate_auto": True}
    try:
        rate = float(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a number or 'auto'",
                                 param_hint="--rate") from None
    if rate <= 0:
        raise click.BadParameter("must be greater than 0", param_hint="--rate")
    return {"rate": rate, "rate_ceiling": rate}


@contextlib.contextmanager
def _signals(stop: asyncio.Event, hard: asyncio.Event, got: list[int]) -> Iterator[None]:
    """First SIGINT/SIGTERM: stop gracefully. Second: stop now (still losing no record)."""
    loop = asyncio.get_running_loop()

    def on_signal(signum: int) -> None:
        got.append(signum)
        if stop.is_set():
            hard.set()
            click.echo("bulkmeet: second signal, stopping now", err=True)
        else:
            stop.set()
            click.echo("bulkmeet: stopping: finishing requests in flight (again to stop now)",
                       err=True)

    installed = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, on_signal, sig)
            installed.append(sig)
        except (NotImplementedError, RuntimeError, ValueError):  # not the main thread
            pass
    try:
        yield
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)


def exit_code(stats: RunStats, signals: list[int]) -> int:
    if signals:
        return EXIT_SIGTERM if signals[0] == signal.SIGTERM else EXIT_SIGINT
    if stats.auth_error is not None:
        return EXIT_AUTH
    if stats.exit_status is Status.DEFERRED:
        return EXIT_DEFERRED
    bad = (Status.INVALID, Status.FAILED, Status.NOT_SENT, Status.UNCERTAIN, Status.DUPLICATE)
    if any(stats.counts.get(s.value) for s in bad) or stats.uncertain_before:
        return EXIT_ROWS
    return EXIT_OK


def summary_lines(stats: RunStats, out: str) -> list[str]:
    order = [s.value for s in Status if s is not Status.SENDING]
    counts = ", ".join(f"{stats.counts[s]} {s}" for s in order if stats.counts.get(s))
    lines = [f"bulkmeet: {stats.rows_read} rows read in {stats.wall:.1f}s: "
             f"{counts or 'nothing recorded'}"]
    if stats.skipped:
        lines.append(f"  {stats.skipped} skipped: already done in an earlier run, nothing sent")
    lines.append(f"  {stats.requests} requests at {stats.achieved_rate:.2f}/s; "
                 f"{stats.rate_limited} answered 429; "
                 f"paused {stats.pauses} time(s) for {stats.paused_seconds:.1f}s")
    uncertain = stats.counts.get(Status.UNCERTAIN.value, 0) + stats.uncertain_before
    if uncertain:
        shown = ", ".join(str(n) for n in sorted(stats.uncertain_lines)[:20])
        more = " …" if len(stats.uncertain_lines) > 20 else ""
        lines.append(f"  {uncertain} uncertain (Gong may have created them; check before "
                     f"--resend-uncertain): lines {shown}{more}")
    if stats.stop_reason:
        lines.append(f"  stopped: {stats.stop_reason}")
    if stats.unread:
        lines.append("  the rest of the input was not read; run the same command again to resume")
    lines.append(f"  results: {out}")
    return lines


def _fail(exc: BulkmeetError) -> None:
    click.echo(f"bulkmeet: error: {exc}", err=True)
    sys.exit(exc.exit_code)


def _guard(fn: Callable[[], int]) -> None:
    try:
        code = fn()
    except BulkmeetError as exc:
        _fail(exc)
    else:
        sys.exit(code)


# -- commands -------------------------------------------------------------------------------


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="bulkmeet")
def main() -> None:
    """Turn spreadsheet rows (CSV, JSONL) into Gong meetings, one POST /v2/meetings per row.

    Credentials come from the environment only: GONG_ACCESS_KEY and GONG_ACCESS_KEY_SECRET, or
    GONG_BEARER_TOKEN. GONG_BASE_URL overrides the API host.
    """


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
@click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"]),
              default="warning", show_default=True)
def run(input: str, config_path: str | None, out: str | None, rate: str | None,
        concurrency: int | None, fmt: str | None, ledger: str | None, fresh: bool,
        resend_uncertain: bool, sandbox: bool, insecure: bool, sheet: str | None,
        log_level: str) -> None:
    """Create a Gong meeting for every valid row of INPUT (a path, or - for stdin).

    Every row gets one final record in the results file. Re-running the same command resumes:
    rows already created are skipped and no request is spent on them.
    """
    _setup_logging(log_level)

    def go() -> int:
        cfg = _load_config(config_path, concurrency=concurrency, format=fmt, ledger=ledger,
                           **_parse_rate(rate))
        opts = JobOptions(input=input, out=out or default_out(input), fresh=fresh,
                          resend_uncertain=resend_uncertain, sandbox=sandbox, insecure=insecure,
                          sheet=sheet)
        validate_options(opts)
        return asyncio.run(_run_async(cfg, opts))

    _guard(go)


async def _run_async(cfg: Config, opts: JobOptions) -> int:
    stop, hard = asyncio.Event(), asyncio.Event()
    signals: list[int] = []
    with _signals(stop, hard, signals):
        stats = await run_job(cfg, opts, stop=stop, hard_stop=hard)
    for line in summary_lines(stats, opts.out):
        click.echo(line, err=True)
    if stats.auth_error is not None:
        click.echo(f"bulkmeet: error: {stats.auth_error}", err=True)
    return exit_code(stats, signals)


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
    from .sandbox import SandboxSettings, serve

    settings = SandboxSettings(rate=rate or None, window=window,  # type: ignore[arg-type]
                               daily=daily, retry_after=retry_after,  # type: ignore[arg-type]
                               fail_rate=fail_rate, drop_rate=drop_rate, latency=latency)
    try:
        serve(settings, host=host, port=port)
    except ValueError as exc:
        _fail(UsageError(str(exc)))
