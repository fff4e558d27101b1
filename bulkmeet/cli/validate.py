"""`bulkmeet validate` and `bulkmeet check`, and the config loading and hints every command
that maps an input shares."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Final, TypeVar

import click
import orjson

from ..config import Config, load_settings
from ..errors import BulkmeetError
from ..triage import Triage

if TYPE_CHECKING:
    from ..preflight import Organizer, Preflight
from ..exits import EXIT_OK, EXIT_ROWS
from ..mapping import Mapper
from ..models import Status
from ..planner import read_input
from ..results import ResultsWriter
from ..words import agree, plural
from .common import (
    guard,
    main,
    parse_rate,
    require_file,
    sandbox_limit,
    setup_logging,
    warn_fast_rate,
)
from .options import INPUT_META, input_options, log_options, sending_options

log = logging.getLogger("bulkmeet")
F = TypeVar("F", bound=Callable[..., Any])


# A config key a message suggests, and the flag that sets it on run, validate and check.
_FLAG_HINTS: Final = ((re.compile(r"mapping\.organizerEmail: (\{const|not mapped)"),
                       "--organizer", "--organizer EMAIL"),
                      (re.compile(r"`timezone:`"), "--timezone", "--timezone ZONE"),
                      (re.compile(r"mapping\.preset:"), "--preset", "--preset NAME"))


def name_flags(message: str) -> str:
    """`message` with the flag named after a config key it suggests (`mapping.organizerEmail:
    {const: ...}`, `timezone:`, `mapping.preset`), for the commands that take those flags."""
    for pattern, flag, usage in _FLAG_HINTS:
        if pattern.search(message) and flag not in message:
            message += f" (or {usage})"
    return message


def hinting(fn: Callable[[], int]) -> Callable[[], int]:
    """`fn`, its errors naming the mapping flags (see name_flags)."""

    def run() -> int:
        try:
            return fn()
        except BulkmeetError as exc:
            if len(exc.args) == 1 and isinstance(exc.args[0], str):
                exc.args = (name_flags(exc.args[0]),)
            raise

    return run


def input_config(config_path: str | None, *, preset: str | None = None,
                 organizer: str | None = None, tz: str | None = None,
                 **overrides: Any) -> tuple[Config, list[str]]:
    """config.load_settings with the CLI's names (tz for --timezone), and --encoding and
    --all-day from click's context (see options.INPUT_META)."""
    ctx = click.get_current_context(silent=True)
    given = dict(ctx.meta.get(INPUT_META, {})) if ctx is not None else {}
    return load_settings(config_path, preset=preset, organizer=organizer, timezone=tz,
                         all_day=given.get("all_day"), encoding=given.get("encoding"),
                         **overrides)


def echo_notes(notes: list[str]) -> None:
    for note in notes:
        click.echo(f"bulkmeet: note: {note}", err=True)


def _lines(organizer: Organizer) -> str:
    shown = ", ".join(map(str, organizer.lines))
    more = ", …" if organizer.rows > len(organizer.lines) else ""
    lines = agree(organizer.rows, "line", "lines")
    return f"{plural(organizer.rows, 'row')}: {lines} {shown}{more}"


def _counts(counts: Mapping[str, int]) -> str:
    parts = [f"{counts.get(k, 0)} {k}" for k in ("valid", "invalid", "duplicate", "skipped")
             if counts.get(k) or k == "valid"]
    return f"{plural(counts.get('rows', 0), 'row')} read: " + ", ".join(parts)


# --- validate ----------------------------------------------------------------------------------


@main.command()
@click.argument("input", metavar="INPUT")
@input_options
@log_options
@click.option("--show", type=click.IntRange(min=0), default=3, show_default=True, metavar="N",
              help="Print the first N payloads exactly as they would be sent.")
@click.option("--out", help="Write the records run would write for the rows it would not send "
              "(invalid, duplicate, skipped), as a results file (.jsonl, or .csv). Started anew.")
def validate(input: str, config_path: str | None, preset: str | None, organizer: str | None,
             tz: str | None, fmt: str | None, sheet: str | None, log_level: str,
             log_format: str, show: int, out: str | None) -> None:
    """Check INPUT offline: read it, map every row and find what run would not send.

    Prints each row's problems, duplicate keys (the second of two rows with one key is not
    sent) and rows the filter skips, then the first payloads as they would be sent. Nothing
    goes over the network. Exit 0 when every row is valid (skipped rows are fine), 1 when some
    row is invalid or a duplicate, 2 for a bad command line, config or unreadable input.
    """
    setup_logging(log_level, log_format)

    def go() -> int:
        require_file(input)
        cfg, notes = input_config(config_path, preset=preset, organizer=organizer, tz=tz,
                                  format=fmt)
        if out is not None:
            from ..preflight import check_out_path

            check_out_path(out, input)
        mapper = Mapper.from_config(cfg)
        echo_notes(notes)
        rows = read_input(cfg, input, mapper, sheet=sheet)
        writer = ResultsWriter(out, fresh=True) if out is not None else None
        triage = Triage(mapper)
        shown = 0
        try:
            with rows:
                for raw in rows:
                    verdict = triage(raw)
                    row, record = verdict.row, verdict.record
                    for warning in verdict.warnings:
                        click.echo(f"line {row.line}: warning: {warning}")
                    if record is None:
                        if shown < show:
                            shown += 1
                            click.echo(f"line {row.line}: would send POST /v2/meetings")
                            click.echo("  " + orjson.dumps(row.payload).decode())
                        continue
                    if writer is not None:
                        writer.record(record)
                    if verdict.first_line is not None:
                        click.echo(f"line {row.line}: duplicate: same key {row.key!r} as line "
                                   f"{verdict.first_line}; run would not send it")
                    elif record.status is Status.SKIPPED:
                        click.echo(f"line {row.line}: skipped: {record.errors[0]}")
                    else:
                        click.echo(f"line {row.line}: invalid")
                        for error in record.errors:
                            click.echo(f"  {name_flags(error)}")
        finally:
            if writer is not None:
                writer.close()
        click.echo(f"bulkmeet: {_counts(triage.counts)}")
        if out is not None:
            click.echo(f"  records of rows not sent: {out}")
        return EXIT_OK if triage.all_valid else EXIT_ROWS

    guard(hinting(go))


# --- check -------------------------------------------------------------------------------------


@main.command()
@click.argument("input", metavar="INPUT")
@input_options
@sending_options
@log_options
def check(input: str, config_path: str | None, preset: str | None, organizer: str | None,
          tz: str | None, fmt: str | None, sheet: str | None, rate: str | None,
          reserve: str | None, concurrency: int | None, insecure: bool, sandbox: bool,
          sandbox_rate: float,
          log_level: str, log_format: str) -> None:
    """Preflight INPUT against Gong before a run: the credentials work, and every organizer of
    its valid rows is a Gong user whose integration is valid.

    Asks POST /v2/meetings/integration/status (up to 100 organizers a call, at the run's rate);
    creates nothing. Prints what is wrong per organizer, with Gong's own message and fix link.
    Exit 0 when all is well, 1 when some organizer is not, 2 for a bad command line, config or
    input, 3 when Gong refuses the credentials (401/403).
    """
    setup_logging(log_level, log_format)

    def go() -> int:
        require_file(input)
        cfg, notes = input_config(config_path, preset=preset, organizer=organizer, tz=tz,
                                  format=fmt, reserve=reserve, **parse_rate(rate))
        echo_notes(notes)
        warn_fast_rate(cfg, sandbox=sandbox)
        from ..preflight import preflight

        report = asyncio.run(preflight(cfg, input, sheet=sheet, sandbox=sandbox,
                                       insecure=insecure,
                                       sandbox_rate=sandbox_limit(sandbox_rate)))
        _print_preflight(report)
        return EXIT_OK if report.ok else EXIT_ROWS

    guard(hinting(go))


def _print_preflight(report: Preflight) -> None:
    counts = report.counts
    line = f"bulkmeet: {_counts(counts)}"
    if counts.get("invalid") or counts.get("duplicate"):
        line += " (bulkmeet validate lists them; only valid rows are checked)"
    click.echo(line)
    calls = plural(report.requests, "call")
    if report.answered:
        click.echo(f"bulkmeet: credentials accepted; {plural(len(report.organizers), 'organizer')} "
                   f"asked about in {calls}")
    for o in report.organizers:
        if o.ok:
            click.echo(f"ok: {o.email} ({_lines(o)})")
            continue
        click.echo(f"{o.problem}: {o.email} ({_lines(o)})")
        if o.error and o.error != report.error:  # that one is said once, below
            click.echo(f"  {o.error}")
        if o.fix_url:
            click.echo(f"  fix: {o.fix_url}")
        if o.help_url:
            click.echo(f"  help: {o.help_url}")
    bad = sum(1 for o in report.organizers if not o.ok)
    if report.error is not None:
        click.echo(f"bulkmeet: could not check everything: {report.error}")
    click.echo(f"bulkmeet: {plural(len(report.organizers) - bad, 'organizer')} ok, "
               f"{bad} with problems")
