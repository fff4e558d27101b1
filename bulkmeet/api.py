"""The Python API: what the CLI does, callable from a script, Airflow, Dagster or Prefect.

    import bulkmeet

    summary = bulkmeet.run("meetings.csv", config="bulkmeet.yaml")
    if not summary.ok:
        print(summary.counts, summary.exit_meaning)

Each command has a blocking function (`run`, `retry`, `sync`, `undo`, `plan`, `validate`,
`check`) and, for callers with their own event loop, an `..._async` twin. Settings come as the
CLI's do: a config file (`config=`), then the keyword arguments that the CLI's flags set
(`rate=`, `concurrency=`, `timezone=`, ...), loaded by `config.load_settings`. Credentials come
from the environment (GONG_ACCESS_KEY and GONG_ACCESS_KEY_SECRET, or GONG_BEARER_TOKEN).

What stops a run before it starts (bad config, unreadable input, missing credentials) raises
an exception of the tree rooted at `bulkmeet.BulkmeetError`. A run that started returns a
`RunSummary` whatever happened to its rows: every row has its record in the results file, and
`summary.error` holds what stopped the run early (401/403, an unreachable host, a full disk),
which `summary.raise_for_error()` raises.

Nothing here prints; logs go to the "bulkmeet" logger.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .config import DEFAULT_RATE, Config, load_settings
from .errors import BulkmeetError, UsageError
from .exits import EXIT_MEANINGS, EXIT_OK, exit_code

if TYPE_CHECKING:
    from .engine import RunStats
    from .preflight import Preflight
    from .reconcile import Plan

PathLike = str | Path


@dataclass(frozen=True, slots=True)
class RunSummary:
    """What a run did. `counts` has one entry per final status recorded in this run."""

    results: Path
    exit_code: int
    counts: Mapping[str, int]
    rows_read: int
    requests: int
    rate_limited: int
    skipped: int  # rows an earlier run had settled: nothing was sent for them
    uncertain_lines: tuple[int, ...]
    wall_seconds: float
    stop_reason: str | None = None
    error: BulkmeetError | None = None
    warnings: tuple[str, ...] = field(default=())
    organizer_checks: int = 0  # integration/status calls before sending (not in `requests`)

    @property
    def ok(self) -> bool:
        """Every row created (or created before)."""
        return self.exit_code == EXIT_OK

    @property
    def exit_meaning(self) -> str:
        return EXIT_MEANINGS.get(self.exit_code, "unknown")

    def raise_for_error(self) -> None:
        """Raise what stopped the run early, if anything did."""
        if self.error is not None:
            raise self.error

    @classmethod
    def from_stats(cls, stats: RunStats, results: PathLike) -> RunSummary:
        error = stats.stopped_by or stats.auth_error
        return cls(Path(results), exit_code(stats), dict(stats.counts), stats.rows_read,
                   stats.requests, stats.rate_limited, stats.skipped,
                   tuple(sorted(stats.uncertain_lines)), round(stats.wall, 3),
                   stats.stop_reason, error, tuple(stats.output_errors),
                   stats.organizer_checks)


@dataclass(frozen=True, slots=True)
class ValidateSummary:
    """What `validate` found: counts (rows, valid, invalid, duplicate, skipped) and each
    problem as (line, key, status, errors)."""

    counts: Mapping[str, int]
    problems: tuple[tuple[int, str, str, tuple[str, ...]], ...]

    @property
    def ok(self) -> bool:
        return not self.counts.get("invalid") and not self.counts.get("duplicate")


def settings(config: PathLike | Config | None = None, **flags: Any) -> Config:
    """The settings a command runs with: a config file (or a Config) and the flags' values:
    any Config field by name, `rate` as a number or "auto", and `preset`, `organizer` and
    `timezone` as the CLI's flags of those names set them."""
    mapping_flags = {k: flags.pop(k) for k in ("preset", "organizer", "timezone") if k in flags}
    rate = flags.pop("rate", None)
    if rate == "auto":
        flags["rate_auto"] = True
    elif rate is not None:
        flags["rate"] = flags["rate_ceiling"] = rate
    unknown = sorted(set(flags) - {f.name for f in dataclasses.fields(Config)})
    if unknown:
        raise UsageError(f"unknown setting(s) {', '.join(unknown)} (see bulkmeet.Config)")
    if isinstance(config, Config):
        changes = {k: v for k, v in flags.items() if v is not None}
        cfg = config.replace(**changes) if changes else config
        if any(v is not None for v in mapping_flags.values()):
            raise UsageError("preset=, organizer= and timezone= go with a config file path, "
                             "not a Config (set them in the Config)")
        return cfg
    path = str(config) if config is not None else None
    cfg, _notes = load_settings(path, **mapping_flags, **flags)
    return cfg


def _sandbox_rate(rate: float | None) -> float | None:
    return rate or None


# -- run --------------------------------------------------------------------------------------


async def run_async(input: PathLike, *, config: PathLike | Config | None = None,
                    out: PathLike | None = None, fresh: bool = False,
                    resend_uncertain: bool = False, sandbox: bool = False,
                    sandbox_rate: float | None = DEFAULT_RATE, insecure: bool = False,
                    sheet: str | None = None, stop: asyncio.Event | None = None,
                    **flags: Any) -> RunSummary:
    """`bulkmeet run`: create a meeting for every valid row of `input` not created before.

    `flags` are the settings the CLI's flags set (rate, concurrency, ledger, preset, organizer,
    timezone, format, ...). Setting `stop` stops the run as Ctrl-C does: requests in flight
    finish, the rest is recorded not_sent.
    """
    from .runs import RunOptions, default_out, run_input, validate_options

    cfg = settings(config, **flags)
    out = out or default_out(str(input), sandbox=sandbox)
    opts = RunOptions(input=str(input), out=str(out), fresh=fresh,
                      resend_uncertain=resend_uncertain, sandbox=sandbox, insecure=insecure,
                      sheet=sheet, sandbox_rate=_sandbox_rate(sandbox_rate))
    validate_options(opts)
    stats = await run_input(cfg, opts, stop=stop)
    return RunSummary.from_stats(stats, opts.out)


def run(input: PathLike, **kwargs: Any) -> RunSummary:
    """`bulkmeet run`, blocking; see `run_async` for the arguments."""
    return asyncio.run(run_async(input, **kwargs))


# -- retry ------------------------------------------------------------------------------------


async def retry_async(results: PathLike, *, input: PathLike | None = None,
                      config: PathLike | Config | None = None, resend_uncertain: bool = False,
                      sandbox: bool = False, sandbox_rate: float | None = DEFAULT_RATE,
                      insecure: bool = False, sheet: str | None = None,
                      stop: asyncio.Event | None = None, **flags: Any) -> RunSummary:
    """`bulkmeet retry`: send again the rows of `results` whose last outcome may pass now
    (from their recorded payloads, or from the corrected sheet `input`)."""
    from .planner import retry_rows
    from .results import read_results
    from .runs import RunOptions, run_input, run_rows

    cfg = settings(config, **flags)
    opts = RunOptions(input=str(input or results), out=str(results),
                      resend_uncertain=resend_uncertain, sandbox=sandbox, insecure=insecure,
                      sheet=sheet, sandbox_rate=_sandbox_rate(sandbox_rate))
    state = read_results(opts.out)
    if not state.keys:
        raise UsageError(f"{opts.out} holds no results to retry")
    if input is not None:
        stats = await run_input(cfg, opts, stop=stop)
    else:
        stats = await run_rows(cfg, opts, retry_rows(state, resend_uncertain=resend_uncertain),
                               stop=stop)
    return RunSummary.from_stats(stats, opts.out)


def retry(results: PathLike, **kwargs: Any) -> RunSummary:
    """`bulkmeet retry`, blocking; see `retry_async`."""
    return asyncio.run(retry_async(results, **kwargs))


# -- plan, sync, undo -------------------------------------------------------------------------


def plan(input: PathLike, *, ledger: PathLike | None = None,
         config: PathLike | Config | None = None, prune: bool = False,
         resend_uncertain: bool = False, sheet: str | None = None, **flags: Any) -> Plan:
    """`bulkmeet plan`: what a sync would change to make Gong match `input`, compared with the
    state store (or, deprecated, an old `ledger` file). Sends nothing."""
    from .reconcile import plan_input, plan_with_ledger

    cfg = settings(config, **flags)
    path = str(ledger) if ledger is not None else cfg.ledger
    if path:  # a file: nothing to wait for, and callable from inside an event loop
        return plan_with_ledger(cfg, str(input), path, prune=prune,
                                resend_uncertain=resend_uncertain, sheet=sheet)
    return asyncio.run(plan_input(cfg, str(input), None, prune=prune,
                                  resend_uncertain=resend_uncertain, sheet=sheet))


async def plan_async(input: PathLike, *, ledger: PathLike | None = None,
                     config: PathLike | Config | None = None, prune: bool = False,
                     resend_uncertain: bool = False, sheet: str | None = None,
                     **flags: Any) -> Plan:
    """`plan` for callers with their own event loop (the state store is read on it)."""
    from .reconcile import plan_input

    cfg = settings(config, **flags)
    return await plan_input(cfg, str(input), str(ledger) if ledger is not None else cfg.ledger,
                            prune=prune, resend_uncertain=resend_uncertain, sheet=sheet)


async def sync_async(input: PathLike, *, ledger: PathLike | None = None,
                     config: PathLike | Config | None = None, prune: bool = False,
                     max_deletes: int | None = None, out: PathLike | None = None,
                     fresh: bool = False, resend_uncertain: bool = False, sandbox: bool = False,
                     sandbox_rate: float | None = DEFAULT_RATE, insecure: bool = False,
                     sheet: str | None = None, stop: asyncio.Event | None = None,
                     **flags: Any) -> RunSummary:
    """`bulkmeet sync --yes`: make Gong match `input`, planned against the state store (or,
    deprecated, an old `ledger` file). Deletes (prune, replaces) are made only up to
    `max_deletes` (default 10); more raise UsageError before anything is sent."""
    from .reconcile import DEFAULT_MAX_DELETES, check_deletes, plan_input, run_sync
    from .runs import default_out

    cfg = settings(config, **flags)
    ledger_path = str(ledger) if ledger is not None else cfg.ledger
    the_plan = await plan_input(cfg, str(input), ledger_path, prune=prune,
                                resend_uncertain=resend_uncertain, sheet=sheet)
    check_deletes(the_plan, DEFAULT_MAX_DELETES if max_deletes is None else max_deletes)
    results = str(out or default_out(str(input), sandbox=sandbox))
    stats = await run_sync(cfg, the_plan, out=results, ledger_path=ledger_path, fresh=fresh,
                           resend_uncertain=resend_uncertain, insecure=insecure, stop=stop,
                           sandbox=sandbox, sandbox_rate=_sandbox_rate(sandbox_rate))
    return RunSummary.from_stats(stats, results)


def sync(input: PathLike, **kwargs: Any) -> RunSummary:
    """`bulkmeet sync --yes`, blocking; see `sync_async`."""
    return asyncio.run(sync_async(input, **kwargs))


async def undo_async(results: PathLike, *, ledger: PathLike | None = None,
                     config: PathLike | Config | None = None, out: PathLike | None = None,
                     sandbox: bool = False, sandbox_rate: float | None = DEFAULT_RATE,
                     insecure: bool = False, stop: asyncio.Event | None = None,
                     **flags: Any) -> RunSummary:
    """`bulkmeet undo --yes`: delete the meetings `results` records as created."""
    from .reconcile import plan_undo, run_undo, undo_out

    cfg = settings(config, **flags)
    target = str(out or undo_out(str(results)))
    ledger_path = str(ledger) if ledger is not None else cfg.ledger
    from .session import Target, credentials_for, target_label

    sent_to = Target(sandbox=sandbox, insecure=insecure)
    the_plan = plan_undo(str(results), out=target, ledger_path=ledger_path,
                         target=target_label(cfg, sent_to, credentials_for(sent_to)))
    stats = await run_undo(cfg, the_plan, out=target, ledger_path=ledger_path,
                           insecure=insecure, stop=stop, sandbox=sandbox,
                           sandbox_rate=_sandbox_rate(sandbox_rate))
    return RunSummary.from_stats(stats, target)


def undo(results: PathLike, **kwargs: Any) -> RunSummary:
    """`bulkmeet undo --yes`, blocking; see `undo_async`."""
    return asyncio.run(undo_async(results, **kwargs))


# -- validate, check --------------------------------------------------------------------------


def validate(input: PathLike, *, config: PathLike | Config | None = None,
             sheet: str | None = None, **flags: Any) -> ValidateSummary:
    """`bulkmeet validate`: read and map every row, with no network; what run would not send."""
    from .mapping import Mapper
    from .planner import read_input
    from .triage import Triage

    cfg = settings(config, **flags)
    mapper = Mapper.from_config(cfg)
    triage = Triage(mapper)
    problems = []
    try:
        with read_input(cfg, str(input), mapper, sheet=sheet) as raws:
            for raw in raws:
                verdict = triage(raw)
                rec = verdict.record
                if rec is not None:
                    problems.append((rec.line, rec.key, rec.status.value, rec.errors))
    finally:
        triage.close()
    return ValidateSummary(dict(triage.counts), tuple(problems))


async def check_async(input: PathLike, *, config: PathLike | Config | None = None,
                      sandbox: bool = False, sandbox_rate: float | None = DEFAULT_RATE,
                      insecure: bool = False, sheet: str | None = None,
                      **flags: Any) -> Preflight:
    """`bulkmeet check`: the credentials, and each organizer of the valid rows, asked of Gong
    (POST /v2/meetings/integration/status, 100 organizers a call). Creates nothing."""
    from .preflight import preflight

    cfg = settings(config, **flags)
    return await preflight(cfg, str(input), sheet=sheet, sandbox=sandbox, insecure=insecure,
                           sandbox_rate=_sandbox_rate(sandbox_rate))


def check(input: PathLike, **kwargs: Any) -> Preflight:
    """`bulkmeet check`, blocking; see `check_async`."""
    return asyncio.run(check_async(input, **kwargs))
