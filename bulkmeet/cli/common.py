"""What every command shares: the group, logging set-up, config loading, exit codes, errors."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Callable, Iterator
from typing import Any

import click

from .. import __version__
from .. import config as config_mod
from ..config import Config
from ..errors import BulkmeetError
from ..models import Status
from ..pool import RunStats

EXIT_OK = 0
EXIT_ROWS = 1
EXIT_USAGE = 2
EXIT_AUTH = 3
EXIT_DEFERRED = 75
EXIT_SIGINT = 130
EXIT_SIGTERM = 143

log = logging.getLogger("bulkmeet")


def setup_logging(level: str) -> None:
    root = logging.getLogger("bulkmeet")
    for h in list(root.handlers):
        root.removeHandler(h)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("bulkmeet: %(levelname)s: %(message)s"))
    root.addHandler(handler)
    root.setLevel(level.upper())
    root.propagate = False


def load_config(path: str | None, **overrides: Any) -> Config:
    cfg = config_mod.load(path)
    changes = {k: v for k, v in overrides.items() if v is not None}
    return cfg.replace(**changes) if changes else cfg


def parse_rate(value: str | None) -> dict[str, Any]:
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
def signals(stop: asyncio.Event, hard: asyncio.Event, got: list[int]) -> Iterator[None]:
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


def fail(exc: BulkmeetError) -> None:
    click.echo(f"bulkmeet: error: {exc}", err=True)
    sys.exit(exc.exit_code)


def guard(fn: Callable[[], int]) -> None:
    try:
        code = fn()
    except BulkmeetError as exc:
        fail(exc)
    else:
        sys.exit(code)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="bulkmeet")
def main() -> None:
    """Turn spreadsheet rows (CSV, JSONL) into Gong meetings, one POST /v2/meetings per row.

    Credentials come from the environment only: GONG_ACCESS_KEY and GONG_ACCESS_KEY_SECRET, or
    GONG_BEARER_TOKEN. GONG_BASE_URL overrides the API host.
    """
