"""What every command shares: the group, logging set-up, config loading, exit codes, errors."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
import threading
from collections.abc import Awaitable, Callable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

import click

from .. import __version__, logs
from .. import config as config_mod
from ..config import Config
from ..errors import BulkmeetError, InputError
from ..exits import EXIT_SIGINT, EXIT_SIGTERM, EXIT_USAGE, exit_code
from ..models import FINAL_STATUSES, Status
from ..words import plural

if TYPE_CHECKING:
    from ..engine import RowEvents, RunStats
    from ..runs import RunOptions
    from ..session import Session

F = TypeVar("F", bound=Callable[..., Any])

GONG_RATE = config_mod.DEFAULT_RATE  # a default Gong company's calls per second


log = logging.getLogger("bulkmeet")


def setup_logging(level: str, fmt: str = "text") -> None:
    """Log to stderr as text or JSON lines, with every credential of the environment redacted."""
    logs.setup_logging(level, fmt)


def require_file(path: str, what: str = "input file") -> None:
    """A path the user gave that must be a file bulkmeet can read; else one clear line (exit 2).

    Opened without blocking, so a pipe with no writer yet is accepted (it is read as it comes)."""
    if path == "-":
        return
    if not os.path.lexists(path):
        raise InputError(f"{what} {path} does not exist")
    if os.path.isdir(path):
        raise InputError(f"{what} {path} is a directory, not a file")
    try:
        os.close(os.open(path, os.O_RDONLY | os.O_NONBLOCK))
    except OSError as exc:
        raise InputError(f"cannot read {what} {path}: {exc.strerror or exc}") from None


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


def sandbox_limit(rate: float) -> float | None:
    """--sandbox-rate as the sandbox takes it: 0 means no limit."""
    return rate or None


def warn_fast_rate(cfg: Config, *, sandbox: bool) -> None:
    """A rate above Gong's default limit, aimed at a real Gong host: say what will happen."""
    from ..session import is_loopback_url

    if sandbox or cfg.rate_auto or cfg.rate <= GONG_RATE or is_loopback_url(cfg.base_url):
        return
    click.echo(f"bulkmeet: warning: --rate {cfg.rate:g} is above Gong's limit of "
               f"{GONG_RATE:g} calls/s per company: expect 429s and pauses", err=True)


# Whether a run began sending (its own signal handlers went in) in this command.
_started: list[bool] = []


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

    _started.append(True)
    before = signal.getsignal(signal.SIGTERM)
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
            loop.remove_signal_handler(sig)  # leaves SIGTERM at its default: death by signal
        if signal.SIGTERM in installed and before is not None:
            signal.signal(signal.SIGTERM, before)


def errors_out_file(cfg: Config, input: str, results: str, path: str, code: int, *,
                    sheet: str | None = None) -> int:
    """Write --errors-out and say what it holds; a file that cannot be written is one line and
    turns a clean exit code into 2. Returns the exit code."""
    from ..fixfile import write_errors_file

    try:
        n = write_errors_file(cfg, input, results, path, sheet=sheet)
    except OSError as exc:
        click.echo(f"bulkmeet: error: cannot write the errors file {path}: {exc.strerror or exc}",
                   err=True)
        return code or EXIT_USAGE
    if n:
        click.echo(f"  {plural(n, 'row')} to fix written to {path}", err=True)
    else:
        click.echo(f"  no row to fix: {path} not written", err=True)
    return code


def errors_out_step(cfg: Config, opts: RunOptions,
                    path: str | None) -> Callable[[int], int] | None:
    """What writes --errors-out after a run (None without it): see errors_out_file."""
    if not path:
        return None

    def write(code: int) -> int:
        return errors_out_file(cfg, opts.input, opts.out, path, code, sheet=opts.sheet)

    return write


def summary_lines(stats: RunStats, out: str) -> list[str]:
    order = [s.value for s in Status if s in FINAL_STATUSES]
    counts = ", ".join(f"{stats.counts[s]} {s}" for s in order if stats.counts.get(s))
    lines = [f"bulkmeet: {plural(stats.rows_read, 'row')} read in {stats.wall:.1f}s: "
             f"{counts or 'nothing recorded'}"]
    done_before = stats.settled - stats.refused_before  # no record this run, not in the headline
    if done_before:
        lines.append(f"  {done_before} skipped: already done in an earlier run, nothing sent")
    rate = f" at {stats.achieved_rate:.2f}/s" if stats.requests > 1 else ""
    checks = (f" (and {plural(stats.organizer_checks, 'organizer check')} before)"
              if stats.organizer_checks else "")
    lines.append(f"  {plural(stats.requests, 'request')}{rate}{checks}; "
                 f"{stats.rate_limited} answered 429; "
                 f"paused {plural(stats.pauses, 'time')} for {stats.paused_seconds:.1f}s")
    if stats.refused_before:
        lines.append(f"  {stats.refused_before} refused by Gong in an earlier run and unchanged "
                     "since: not sent again (fix the rows, see --errors-out)")
    uncertain = stats.counts.get(Status.UNCERTAIN.value, 0) + stats.uncertain_before
    if uncertain:
        shown = ", ".join(str(n) for n in sorted(stats.uncertain_lines)[:20])
        more = " …" if len(stats.uncertain_lines) > 20 else ""
        lines.append(f"  {uncertain} uncertain (Gong may have created them; check before "
                     f"--resend-uncertain): lines {shown}{more}")
    if stats.stop_reason:
        lines.append(f"  stopped: {stats.stop_reason}")
    if stats.unrecorded:
        lines.append(f"  {plural(stats.unrecorded, 'outcome')} could not be written to the "
                     "results file; once there is room, the same command resumes: rows never "
                     "sent are sent, a request that went out is reported uncertain")
    if stats.unread:
        lines.append("  the rest of the input was not read; run the same command again to resume")
    lines.append(f"  results: {out}")
    lines.extend(f"bulkmeet: error: {message}" for message in stats.output_errors)
    return lines


class RunOutputs:
    """What a run shows and leaves beside its results: progress while it runs (a bar on a
    terminal, status lines elsewhere, nothing with --quiet), then --junit, --summary and the
    Markdown summary GitHub Actions shows ($GITHUB_STEP_SUMMARY)."""

    def __init__(self, *, quiet: bool = False, junit: str | None = None,
                 summary: str | None = None, step_summary: str | None = None) -> None:
        self.quiet = quiet
        self.junit = junit
        self.summary = summary
        self.step_summary = step_summary
        self.display: Any = None  # progress.Display, imported when the run starts
        self.report: Any = None  # report.RunReport

    def begin(self, cfg: Config, input: str, out: str, *, fresh: bool,
              sheet: str | None = None, count: bool = True) -> None:
        """Before the run: note what the results file holds, choose the display. `count`:
        `input` is an input whose rows the display may count for its total."""

        from ..progress import count_rows, make_display
        from ..report import RunReport

        def counter(cancel: threading.Event) -> int | None:
            return count_rows(input, fmt=cfg.format, delimiter=cfg.delimiter,
                              encoding=cfg.encoding, sheet=sheet, cancel=cancel)

        self.display = make_display(sys.stderr, quiet=self.quiet, interval=cfg.status_interval,
                                    counter=counter if count else None)
        if self.junit or self.summary or self.step_summary:
            self.report = RunReport(input, out, fresh=fresh)

    def on_start(self, stats: RunStats, session: Session) -> None:
        """The session is open, nothing is sent yet: start drawing."""
        if self.display is not None:
            self.display.start(stats, session.gate)

    def listeners(self) -> list[RowEvents]:
        """The row events' subscribers: the report learns which rows the run read."""
        return [self.report] if self.report is not None else []

    async def end(self) -> None:
        """The run is over: take the progress display off the screen."""
        if self.display is not None:
            await self.display.stop()

    def write(self, stats: RunStats, code: int, error: str | None = None) -> int:
        """Write the reports asked for, naming each on stderr unless --quiet. Returns the exit
        code: a report that cannot be written turns a clean run's 0 into 2 (CI needs it)."""
        from .. import report as rp

        if self.report is None:
            return code
        summary = self.report.summary(stats, code, error)
        rows = self.report.results() if self.junit or self.step_summary else []
        writes: list[tuple[str, str | None, Callable[[str], None]]] = [
            ("JUnit", self.junit, lambda p: rp.write_text(p, rp.junit_xml(
                rows, input=self.report.input, started_at=self.report.started_at,
                wall=stats.wall))),
            ("summary", self.summary, lambda p: rp.write_text(p, rp.summary_json(summary))),
            ("step summary", self.step_summary,
             lambda p: rp.append_step_summary(p, rp.markdown(summary, rows))),
        ]
        for label, path, write in writes:
            if not path:
                continue
            try:
                write(path)
            except OSError as exc:
                click.echo(f"bulkmeet: error: cannot write the {label} {path}: "
                           f"{exc.strerror or exc}", err=True)
                code = code or EXIT_USAGE
                continue
            if not self.quiet and label != "step summary":
                click.echo(f"  {label}: {path}", err=True)
        return code

    def write_error(self, exc: BulkmeetError, input: str, out: str) -> None:
        """The run stopped before it began (bad config, credentials, input): the summary still
        says so, for the CI step that reads it."""
        from ..report import RunReport

        if self.report is None and (self.summary or self.step_summary):
            try:
                self.report = RunReport(input, out)
            except BulkmeetError:
                self.report = RunReport(input, out, fresh=True)
        from ..engine import RunStats

        self.junit = None  # no rows were read: there is nothing to test
        self.write(RunStats(), exc.exit_code, error=str(exc))


async def carry_out(send: Callable[[asyncio.Event, asyncio.Event], Awaitable[RunStats]], *,
                    out: str, outputs: RunOutputs,
                    after: Callable[[int], int] | None = None) -> int:
    """Run a command's sending under the signal handlers, then show and write what it did:
    the summary, the error that stopped it, `after` (e.g. --errors-out), the reports. Returns
    the exit code. `send(stop, hard_stop)` subscribes `outputs` itself (on_start, listeners)."""
    stop, hard = asyncio.Event(), asyncio.Event()
    got: list[int] = []
    with signals(stop, hard, got):
        try:
            stats = await send(stop, hard)
        finally:
            await outputs.end()
    for line in summary_lines(stats, out):
        click.echo(line, err=True)
    if stats.auth_error is not None:
        click.echo(f"bulkmeet: error: {stats.auth_error}", err=True)
    if stats.stopped_by is not None:
        click.echo(f"bulkmeet: error: {stats.stopped_by}", err=True)
    code = exit_code(stats, got)
    if after is not None:
        code = after(code)
    return outputs.write(stats, code)


def make_outputs(*, quiet: bool, junit: str | None, summary: str | None,
                 log_level: str, log_format: str) -> RunOutputs:
    """Logging set up, and the run's outputs (progress, reports) chosen, from output_options."""
    setup_logging("error" if quiet else log_level, log_format)
    return RunOutputs(quiet=quiet, junit=junit, summary=summary,
                      step_summary=os.environ.get("GITHUB_STEP_SUMMARY") or None)


def fail(exc: BulkmeetError) -> None:
    click.echo(f"bulkmeet: error: {exc}", err=True)
    sys.exit(exc.exit_code)


class Terminated(BaseException):
    """SIGTERM outside a run's own handlers (start-up, preflight, after the summary)."""


def _on_sigterm(signum: int, frame: object) -> None:
    raise Terminated()


def _stop_message(sent: bool) -> str:
    return "" if sent else ": nothing was sent"


def guard(fn: Callable[[], int]) -> None:
    """Run a command: a BulkmeetError is one line and its exit code; Ctrl-C or SIGTERM outside
    a run's own handlers is one line and 130 or 143 (a run's handlers exit the same way)."""
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, _on_sigterm)
    _started.clear()
    try:
        code = fn()
    except BulkmeetError as exc:
        fail(exc)
    except KeyboardInterrupt:
        click.echo(f"bulkmeet: interrupted{_stop_message(bool(_started))}", err=True)
        code = EXIT_SIGINT
    except Terminated:
        click.echo(f"bulkmeet: stopped by SIGTERM{_stop_message(bool(_started))}", err=True)
        code = EXIT_SIGTERM
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    feed = sys.modules.get("bulkmeet.engine.feed")  # no engine imported: no reader thread
    reader = getattr(feed, "READER_THREAD", None)
    if reader and any(t.name == reader and t.is_alive() for t in threading.enumerate()):
        # Stopped while the reader waits on a pipe that may never close (`tail -f | ...`).
        # Every record is already on disk; a normal exit would wait on that read forever,
        # or abort on the pipe's lock at interpreter shutdown.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="bulkmeet")
def main() -> None:
    """Turn spreadsheet rows (CSV, JSONL or XLSX) into Gong meetings, one POST /v2/meetings per
    row.

    Credentials come from the environment only: GONG_ACCESS_KEY and GONG_ACCESS_KEY_SECRET, or
    GONG_BEARER_TOKEN. GONG_BASE_URL overrides the API host. Try anything first against the
    built-in fake Gong server with --sandbox.

    Shell completion (bash): eval "$(_BULKMEET_COMPLETE=bash_source bulkmeet)" in ~/.bashrc
    (zsh_source, fish_source for the others).
    """
