"""`bulkmeet plan`, `bulkmeet sync` and `bulkmeet undo`: the sheet as the source of truth."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from ..config import Config
from ..errors import ConfigError, UsageError
from ..ledger import warn_deprecated
from ..words import agree, plural

if TYPE_CHECKING:
    from ..engine import RunStats
from ..exits import EXIT_OK, EXIT_ROWS
from ..reconcile import (
    DEFAULT_MAX_DELETES,
    UNDO_CONFIRM_OVER,
    Change,
    Kind,
    Plan,
    UndoItem,
    UndoPlan,
    check_deletes,
    plan_undo,
    run_sync,
    run_undo,
    undo_out,
)
from .common import (
    carry_out,
    guard,
    log,
    main,
    make_outputs,
    parse_rate,
    require_file,
    sandbox_limit,
    setup_logging,
    warn_fast_rate,
)
from .options import (
    config_option,
    input_options,
    log_options,
    output_options,
    sending_options,
    state_options,
)
from .validate import echo_notes, hinting, input_config

F = TypeVar("F", bound=Callable[..., Any])

_HEAD = ((Kind.CREATE, "to create"), (Kind.UPDATE, "to update"), (Kind.REPLACE, "to replace"),
         (Kind.DELETE, "to delete"), (Kind.UNCHANGED, "unchanged"), (Kind.INVALID, "invalid"),
         (Kind.DUPLICATE, "duplicate"), (Kind.SKIPPED, "skipped by the filter"),
         (Kind.UNCERTAIN, "uncertain"), (Kind.REFUSED, "refused before"),
         (Kind.HELD, "held back"))


def _interactive() -> bool:
    """Whether a person can answer a confirmation (tests replace this)."""
    return sys.stdin.isatty()


# -- what is printed -----------------------------------------------------------------------


def plan_head(plan: Plan) -> str:
    counts = plan.counts()
    parts = [plural(counts[k], "delete") + " held back" if k is Kind.HELD
             else f"{counts[k]} {label}" for k, label in _HEAD if counts[k]]
    return f"plan: {plural(plan.rows_read, 'row')} read: {', '.join(parts) or 'nothing'}"


def change_line(c: Change, known: str = "ledger") -> str:
    """One change; `known`: where a key no longer in the input was known (ledger, store)."""
    where = f"line {c.line}" if c.line else known
    text = f"  {c.kind.value:<9} {where:<9} {c.key}"
    if c.meeting_id:
        text += f" (meeting {c.meeting_id})"
    details = [*c.diffs]
    if c.reason and c.kind is not Kind.CREATE:
        details.append(c.reason)
    return text + (": " + "; ".join(details) if details else "")


def plan_lines(plan: Plan, *, max_deletes: int | None = None) -> list[str]:
    lines = [plan_head(plan)]
    # Unchanged and filtered rows are counted, not listed: the plan shows what needs a look.
    known = "ledger" if plan.source == "the ledger" else "store"
    lines += [change_line(c, known) for c in plan.changes
              if c.kind not in (Kind.UNCHANGED, Kind.SKIPPED)]
    if plan.absent:
        lines.append(f"  {plural(plan.absent, 'meeting')} in {plan.source} "
                     f"{agree(plan.absent, 'is', 'are')} no longer in the input; --prune deletes "
                     f"{agree(plan.absent, 'it', 'them')}")
    n = len(plan.deletes)
    if max_deletes is not None and n > max_deletes:
        lines.append(f"  sync would refuse: {n} deletes, more than --max-deletes {max_deletes}")
    if not plan.pending:
        lines.append(f"nothing to do: Gong matches the input, as far as {plan.source} knows")
    return lines


def _undo_line(item: UndoItem, what: str) -> str:
    where = f"line {item.line}" if item.line else "-"
    org = item.organizer or "organizer unknown: delete it in Gong"
    return f"  {what:<9} {where:<9} {item.key} (meeting {item.meeting_id}, {org})"


def undo_lines(plan: UndoPlan) -> list[str]:
    head = f"undo: {plural(len(plan.items), 'meeting')} to delete"
    extra = []
    if plan.done:
        extra.append(f"{plan.done} deleted by an earlier undo")
    if plan.unknown:
        extra.append(f"{len(plan.unknown)} with no known organizer")
    lines = [head + (f" ({', '.join(extra)})" if extra else "")]
    lines += [_undo_line(i, "delete") for i in plan.items]
    lines += [_undo_line(i, "cannot") for i in plan.unknown]
    return lines


# -- options of these commands ----------------------------------------------------------------


_ledger = click.option("--ledger", help="A ledger file of an earlier version, compared with "
                       "instead of the state store (deprecated: bring it into the store once "
                       "with `bulkmeet state import --ledger FILE`).")
_prune = click.option("--prune", is_flag=True, help="Delete the meetings whose keys bulkmeet "
                      "knows (state store or ledger) but are no longer in the input.")
_resend = click.option("--resend-uncertain", is_flag=True, help="Create again rows whose earlier "
                       "create may or may not have made a meeting.")
_max_deletes = click.option("--max-deletes", type=click.IntRange(min=0),
                            default=DEFAULT_MAX_DELETES, show_default=True,
                            help="Refuse, before sending anything, a sync that would delete "
                            "more meetings than this.")
_yes = click.option("--yes", "-y", is_flag=True, help="Delete without asking (for CI).")


def _plan(cfg: Config, input: str, ledger: str | None, *, prune: bool, resend_uncertain: bool,
          sheet: str | None, sandbox: bool = False) -> tuple[Plan, str | None]:
    """Plan `input` against a ledger file (given, or `ledger:`; deprecated), else against every
    key the state store of this Gong target knows. Returns the plan and the ledger's path.
    A sandbox trial with no Gong credentials plans as if nothing had been made yet."""
    from ..reconcile import plan_input
    from ..reconcile.known import InMemoryKnown, Known

    path = ledger or cfg.ledger
    known: Known | None = None
    if not path and sandbox and not _has_credentials():
        click.echo("bulkmeet: note: no Gong credentials here: the sandbox trial plans as if "
                   "nothing had been made yet (every row a create)", err=True)
        known = InMemoryKnown({})
    return asyncio.run(plan_input(cfg, input, path, prune=prune,
                                  resend_uncertain=resend_uncertain, sheet=sheet,
                                  known=known)), path


def _has_credentials() -> bool:
    from ..client import Credentials

    try:
        Credentials.from_env()
    except ConfigError:
        return False
    return True


@contextlib.contextmanager
def _scratch_ledger(path: str | None, sandbox: bool) -> Iterator[str | None]:
    """The ledger to write: `path`, or for a sandbox a throwaway copy of it (a real run must
    never take a sandbox's meeting for one of its own)."""
    if not sandbox or path is None:
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="bulkmeet-sandbox-") as tmp:
        copy = os.path.join(tmp, "ledger.jsonl")
        if os.path.exists(path):
            shutil.copyfile(path, copy)
        yield copy


# -- the commands -----------------------------------------------------------------------------


@main.command()
@click.argument("input", metavar="INPUT")
@input_options
@_ledger
@_prune
@_resend
@_max_deletes
@state_options
@log_options
def plan(input: str, config_path: str | None, preset: str | None, organizer: str | None,
         tz: str | None, fmt: str | None, sheet: str | None, ledger: str | None, prune: bool,
         resend_uncertain: bool, max_deletes: int, state: str | None,
         state_must_exist: bool | None, log_level: str, log_format: str) -> None:
    """Show what `bulkmeet sync` would do to make Gong match INPUT; send nothing.

    Compares INPUT by key with what the state store knows bulkmeet made in Gong: create (new
    keys), update (changed rows, with the fields that changed), replace (organizer changed),
    unchanged, and with --prune delete (keys no longer in INPUT). Invalid rows are listed too.
    --ledger FILE compares with an old ledger file instead. Exit status: 0 when there is
    nothing to do, 1 when a sync would send something, 2 on a usage or input error.
    """
    setup_logging(log_level, log_format)

    def go() -> int:
        require_file(input)
        cfg, notes = input_config(config_path, preset=preset, organizer=organizer, tz=tz,
                                  format=fmt, state=state, state_must_exist=state_must_exist)
        echo_notes(notes)
        the_plan, path = _plan(cfg, input, ledger, prune=prune,
                               resend_uncertain=resend_uncertain, sheet=sheet)
        for w in the_plan.warnings:
            log.warning(w)
        for line in plan_lines(the_plan, max_deletes=max_deletes):
            click.echo(line)
        return EXIT_ROWS if the_plan.pending else EXIT_OK

    guard(go)


@main.command()
@click.argument("input", metavar="INPUT")
@input_options
@_ledger
@_prune
@_yes
@_max_deletes
@_resend
@click.option("--out", help="Results file (.jsonl or .csv), appended to. Default: "
              "INPUT.results.jsonl beside the input.")
@click.option("--fresh", is_flag=True, help="Start the results file anew.")
@sending_options
@state_options
@output_options
def sync(input: str, config_path: str | None, preset: str | None, organizer: str | None,
         tz: str | None, fmt: str | None, sheet: str | None, ledger: str | None, prune: bool,
         yes: bool, max_deletes: int, resend_uncertain: bool, out: str | None, fresh: bool,
         rate: str | None, reserve: str | None, concurrency: int | None, insecure: bool,
         sandbox: bool,
         sandbox_rate: float, state: str | None, state_must_exist: bool | None, quiet: bool,
         status_interval: float | None, junit: str | None, summary_path: str | None,
         log_level: str, log_format: str) -> None:
    """Make Gong match INPUT: create new rows, update changed ones, and with --prune delete
    meetings whose rows are gone.

    Plans against the state store first (see `bulkmeet plan`), then sends through the same
    gate, retries and results file as `run`; the store records each change as it lands, so
    running the same command again after a stop resumes. Deletes (--prune, and replaces for a
    changed organizer) need a yes at the prompt or --yes, and more than --max-deletes of them
    stop the sync before anything is sent. With --sandbox the plan is made against the real
    Gong's state, which is only read: the sandbox's meetings are gone when it stops.
    """
    outputs = make_outputs(quiet=quiet, junit=junit, summary=summary_path, log_level=log_level,
                           log_format=log_format)

    def go() -> int:
        require_file(input)
        cfg, notes = input_config(config_path, preset=preset, organizer=organizer, tz=tz,
                                  concurrency=concurrency, format=fmt,
                                  status_interval=status_interval, state=state,
                                  state_must_exist=state_must_exist, reserve=reserve,
                                  **parse_rate(rate))
        if not quiet:
            echo_notes(notes)
        warn_fast_rate(cfg, sandbox=sandbox)
        the_plan, path = _plan(cfg, input, ledger, prune=prune,
                               resend_uncertain=resend_uncertain, sheet=sheet,
                               sandbox=sandbox)
        for w in the_plan.warnings:
            log.warning(w)
        click.echo(plan_head(the_plan), err=True)
        check_deletes(the_plan, max_deletes)
        deletes = the_plan.deletes
        if deletes and not yes:
            for c in deletes:
                click.echo(change_line(c, "ledger" if path else "store"), err=True)
            if not _interactive():
                raise UsageError(f"this sync would delete {plural(len(deletes), 'meeting')}: "
                                 "confirm with --yes (stdin is not a terminal); nothing was sent")
            if not click.confirm(f"Delete {plural(len(deletes), 'meeting')} in Gong?", err=True):
                click.echo("bulkmeet: nothing was sent", err=True)
                return EXIT_ROWS
        from ..runs import default_out

        results = out or default_out(input, sandbox=sandbox)

        with _scratch_ledger(path, sandbox) as kept:
            async def send(stop: asyncio.Event, hard: asyncio.Event) -> RunStats:
                return await run_sync(cfg, the_plan, out=results, ledger_path=kept or path,
                                      fresh=fresh,
                                      resend_uncertain=resend_uncertain, insecure=insecure,
                                      stop=stop, hard_stop=hard, sandbox=sandbox,
                                      sandbox_rate=sandbox_limit(sandbox_rate),
                                      on_start=outputs.on_start,
                                      listeners=outputs.listeners())

            outputs.begin(cfg, input, results, fresh=fresh, sheet=sheet)
            return asyncio.run(carry_out(send, out=results, outputs=outputs))

    guard(hinting(go))


@main.command()
@click.argument("results", metavar="RESULTS")
@config_option
@_ledger
@_yes
@click.option("--dry-run", is_flag=True, help="Only show what would be deleted.")
@click.option("--out", help="The undo's own results file (default: RESULTS with .undo before "
              "the suffix); running the same undo again resumes it.")
@sending_options
@state_options
@output_options
def undo(results: str, config_path: str | None, ledger: str | None, yes: bool, dry_run: bool,
         out: str | None, rate: str | None, reserve: str | None, concurrency: int | None,
         insecure: bool,
         sandbox: bool, sandbox_rate: float, state: str | None,
         state_must_exist: bool | None, quiet: bool, status_interval: float | None,
         junit: str | None, summary_path: str | None, log_level: str, log_format: str) -> None:
    """Delete the meetings that the results file RESULTS records as created.

    A meeting already gone (404) counts as deleted. With more than 20 meetings to delete this is
    a dry run that lists them, unless --yes is given. With a ledger, the keys deleted are marked
    so there, and a later sync creates them again if they are still in its input. With
    --sandbox the meetings are deleted in a sandbox that holds them; the ledger and the undo's
    own results file (default RESULTS with .undo-sandbox) are not those of a real undo.
    """
    outputs = make_outputs(quiet=quiet, junit=junit, summary=summary_path, log_level=log_level,
                           log_format=log_format)

    def go() -> int:
        require_file(results, "results file")
        cfg, _ = input_config(config_path, concurrency=concurrency,
                              status_interval=status_interval, state=state,
                              state_must_exist=state_must_exist, reserve=reserve,
                              **parse_rate(rate))
        warn_fast_rate(cfg, sandbox=sandbox)
        target = out or undo_out(results)
        if sandbox and out is None:  # a fresh sandbox each time: its undo starts anew too
            target = target.removesuffix(".undo" + Path(results).suffix) + ".undo-sandbox" + \
                Path(results).suffix
            Path(target).unlink(missing_ok=True)
        if ledger or cfg.ledger:
            warn_deprecated(ledger or cfg.ledger or "")
        from ..session import Target, credentials_for, target_label

        sent_to = Target(sandbox=sandbox, insecure=insecure)
        try:
            where: str | None = target_label(cfg, sent_to, credentials_for(sent_to))
        except ConfigError:
            if not dry_run:
                raise
            where = None  # a dry run lists what the file holds, wherever it was sent
        the_plan = plan_undo(results, out=target, ledger_path=ledger or cfg.ledger,
                             target=where)
        for w in the_plan.warnings:
            log.warning(w)
        lines = undo_lines(the_plan)
        if dry_run or (len(the_plan.items) > UNDO_CONFIRM_OVER and not yes):
            for line in lines:
                click.echo(line)
            if the_plan.items:
                n = len(the_plan.items)
                click.echo(f"bulkmeet: dry run, nothing was deleted; --yes deletes "
                           f"{agree(n, 'this', 'these')} {plural(n, 'meeting')}", err=True)
            return EXIT_ROWS if the_plan.items else EXIT_OK
        click.echo(lines[0], err=True)

        with _scratch_ledger(ledger or cfg.ledger, sandbox) as kept:
            async def send(stop: asyncio.Event, hard: asyncio.Event) -> RunStats:
                return await run_undo(cfg, the_plan, out=target, ledger_path=kept,
                                      insecure=insecure, stop=stop, hard_stop=hard,
                                      sandbox=sandbox, sandbox_rate=sandbox_limit(sandbox_rate),
                                      on_start=outputs.on_start,
                                      listeners=outputs.listeners())

            outputs.begin(cfg, results, target, fresh=False, count=False)
            return asyncio.run(carry_out(send, out=target, outputs=outputs))

    guard(go)
