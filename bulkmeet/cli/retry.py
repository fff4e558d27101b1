"""`bulkmeet retry`: send again the rows whose last outcome may pass now."""

from __future__ import annotations

import asyncio

import click

from ..config import Config
from ..errors import UsageError
from ..results import read_results
from .common import (
    GONG_RATE,
    errors_out_file,
    exit_code,
    guard,
    load_config,
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


@main.command()
@click.argument("results", metavar="RESULTS")
@click.option("--input", "input_path", help="The input (or the corrected sheet) to take rows "
              "from; without it the payloads recorded in RESULTS are sent again.")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="YAML config.")
@click.option("--rate", help="Requests per second, or 'auto'.")
@click.option("--ledger", help="Ledger file kept across runs.")
@click.option("--errors-out", help="Write the rows still failed or invalid here, in the input's "
              "format plus an `error` column (needs --input).")
@click.option("--resend-uncertain", is_flag=True, help="Also send rows recorded uncertain.")
@sandbox_options
@click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"]),
              default="warning", show_default=True)
def retry(results: str, input_path: str | None, config_path: str | None, rate: str | None,
          ledger: str | None, errors_out: str | None, resend_uncertain: bool, sandbox: bool,
          sandbox_rate: float, log_level: str) -> None:
    """Send again the rows of RESULTS whose last outcome may pass now: 5xx, timeouts, 429 past
    the wait cap, not_sent and deferred. Rows fixed in the sheet (given with --input) are sent
    too; rows already created never are. New records are appended to RESULTS."""
    setup_logging(log_level)

    def go() -> int:
        require_file(results, "results file")
        if input_path is not None:
            require_file(input_path)
        cfg = load_config(config_path, ledger=ledger, **parse_rate(rate))
        if errors_out and not input_path:
            raise UsageError("--errors-out needs --input (the rows are written in its format)")
        warn_fast_rate(cfg, sandbox=sandbox)
        return asyncio.run(_retry(cfg, results, input_path, errors_out, resend_uncertain,
                                  sandbox, sandbox_limit(sandbox_rate)))

    guard(go)


async def _retry(cfg: Config, results: str, input_path: str | None, errors_out: str | None,
                 resend_uncertain: bool, sandbox: bool,
                 sandbox_rate: float | None = GONG_RATE) -> int:
    from ..planner import retry_rows
    from ..runs import RunOptions, run_input, run_rows

    state = read_results(results)
    if not state.keys:
        raise UsageError(f"{results} holds no results to retry")
    stop, hard = asyncio.Event(), asyncio.Event()
    got: list[int] = []
    if input_path is not None:
        # The corrected sheet through the resume rules: created rows are skipped, the rest sent.
        opts = RunOptions(input=input_path, out=results, resend_uncertain=resend_uncertain,
                          sandbox=sandbox, sandbox_rate=sandbox_rate)
        with signals(stop, hard, got):
            stats = await run_input(cfg, opts, stop=stop, hard_stop=hard)
    else:
        rows = retry_rows(state, resend_uncertain=resend_uncertain)
        if not rows:
            click.echo(f"bulkmeet: nothing to retry in {results}", err=True)
            return 0
        opts = RunOptions(input=results, out=results, resend_uncertain=resend_uncertain,
                          sandbox=sandbox, sandbox_rate=sandbox_rate)
        with signals(stop, hard, got):
            stats = await run_rows(cfg, opts, rows, stop=stop, hard_stop=hard)
    for line in summary_lines(stats, results):
        click.echo(line, err=True)
    if stats.stopped_by is not None:
        click.echo(f"bulkmeet: error: {stats.stopped_by}", err=True)
    code = exit_code(stats, got)
    if errors_out and input_path:
        code = errors_out_file(cfg, input_path, results, errors_out, code)
    return code
