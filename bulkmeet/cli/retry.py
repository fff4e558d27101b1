"""`bulkmeet retry`: send again the rows whose last outcome may pass now."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import click

from ..config import Config
from ..errors import UsageError
from ..results import read_results
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
    warn_fast_rate,
)
from .options import input_options, output_options, sending_options, state_options
from .validate import echo_notes, hinting, input_config

if TYPE_CHECKING:
    from ..engine import RunStats
    from ..runs import RunOptions


@main.command()
@click.argument("results", metavar="RESULTS")
@click.option("--input", "input_path", help="The input (or the corrected sheet) to take rows "
              "from; without it the payloads recorded in RESULTS are sent again.")
@input_options
@click.option("--ledger", help="Deprecated: a ledger file of an earlier version (see `bulkmeet "
              "state import`).")
@click.option("--errors-out", help="Write the rows still failed or invalid here, in the input's "
              "format plus an `error` column (needs --input).")
@click.option("--resend-uncertain", is_flag=True, help="Also send rows recorded uncertain.")
@sending_options
@state_options
@output_options
def retry(results: str, input_path: str | None, config_path: str | None, preset: str | None,
          organizer: str | None, tz: str | None, fmt: str | None, sheet: str | None,
          ledger: str | None, errors_out: str | None, resend_uncertain: bool, rate: str | None,
          reserve: str | None, concurrency: int | None, insecure: bool, sandbox: bool,
          sandbox_rate: float,
          state: str | None, state_must_exist: bool | None, quiet: bool,
          status_interval: float | None, junit: str | None, summary_path: str | None,
          log_level: str, log_format: str) -> None:
    """Send again the rows of RESULTS whose last outcome may pass now: 5xx, timeouts, 429 past
    the wait cap, not_sent and deferred. Rows fixed in the sheet (given with --input, read and
    mapped as `run` does) are sent too; rows already created never are. New records are appended
    to RESULTS."""
    outputs = make_outputs(quiet=quiet, junit=junit, summary=summary_path, log_level=log_level,
                           log_format=log_format)

    def go() -> int:
        from ..runs import RunOptions

        require_file(results, "results file")
        if input_path is not None:
            require_file(input_path)
        cfg, notes = input_config(config_path, preset=preset, organizer=organizer, tz=tz,
                                  concurrency=concurrency, format=fmt, ledger=ledger,
                                  status_interval=status_interval, state=state,
                                  state_must_exist=state_must_exist, reserve=reserve,
                                  **parse_rate(rate))
        if errors_out and not input_path:
            raise UsageError("--errors-out needs --input (the rows are written in its format)")
        if not quiet and input_path is not None:
            echo_notes(notes)
        warn_fast_rate(cfg, sandbox=sandbox)
        opts = RunOptions(input=input_path or results, out=results,
                          resend_uncertain=resend_uncertain, sandbox=sandbox, insecure=insecure,
                          sheet=sheet, sandbox_rate=sandbox_limit(sandbox_rate))
        return asyncio.run(_retry(cfg, opts, input_path is not None, errors_out, outputs))

    guard(hinting(go))


async def _retry(cfg: Config, opts: RunOptions, from_input: bool, errors_out: str | None,
                 outputs: RunOutputs) -> int:
    from ..planner import retry_rows
    from ..runs import run_input, run_rows
    from ..session import credentials_for

    state = read_results(opts.out)
    if not state.keys:
        raise UsageError(f"{opts.out} holds no results to retry")
    credentials_for(opts.target)
    rows = None if from_input else retry_rows(state, resend_uncertain=opts.resend_uncertain)
    if rows is not None and not rows:
        click.echo(f"bulkmeet: nothing to retry in {opts.out}", err=True)
        return 0
    outputs.begin(cfg, opts.input, opts.out, fresh=False, sheet=opts.sheet,
                  count=from_input)

    async def send(stop: asyncio.Event, hard: asyncio.Event) -> RunStats:
        if rows is None:
            # The corrected sheet through the resume rules: created rows are skipped.
            return await run_input(cfg, opts, stop=stop, hard_stop=hard,
                                   on_start=outputs.on_start, listeners=outputs.listeners())
        return await run_rows(cfg, opts, rows, stop=stop, hard_stop=hard,
                              on_start=outputs.on_start, listeners=outputs.listeners())

    return await carry_out(send, out=opts.out, outputs=outputs,
                           after=errors_out_step(cfg, opts, errors_out))
