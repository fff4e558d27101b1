"""One run of a command, assembled: what earlier runs left, the plan, the session, the engine.

`run_input` is `bulkmeet run` (and `retry --input`), `run_rows` sends rows already mapped
(`retry` from recorded payloads). Both plan with `planner.Planner`, open the one session of
`session.open_session` and send through `engine.Engine`; sync and undo do the same in
reconcile.py.
No printing here: the CLI and the Python API show what these return.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import stat
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from .config import DEFAULT_RATE, Config
from .engine import Engine, Journal, RowEvents, RunStats
from .errors import JournalError, UsageError
from .ledger import Ledger, LedgerEntry, read_ledger, warn_deprecated
from .mapping import Mapper
from .models import Row
from .planner import Estimate, Planner, Work, count_work, read_input, small_file
from .prior import Prior, open_prior
from .quota import quota_for
from .results import ResultsWriter, other_targets
from .session import (
    Session,
    Target,
    credentials_for,
    open_session,
    state_url,
    target_label,
)

log = logging.getLogger("bulkmeet")

# Called once the session is open and nothing is sent yet (progress display, reports).
OnStart = Callable[[RunStats, Session], None]


@dataclass(frozen=True, slots=True)
class RunOptions:
    """What a run reads and writes, and where it sends."""

    input: str
    out: str
    fresh: bool = False
    resend_uncertain: bool = False
    sandbox: bool = False
    insecure: bool = False
    sheet: str | None = None
    sandbox_rate: float | None = DEFAULT_RATE  # the built-in sandbox's limit; None: none

    @property
    def target(self) -> Target:
        return Target(sandbox=self.sandbox, sandbox_rate=self.sandbox_rate,
                      insecure=self.insecure)


def default_out(input_path: str, *, sandbox: bool = False) -> str:
    """Results next to the input, so running the same command again resumes it. A sandbox run
    has a file of its own: the real run after it must not take its meetings for real ones."""
    if input_path == "-":
        return "bulkmeet-sandbox-results.jsonl" if sandbox else "bulkmeet-results.jsonl"
    p = Path(input_path)
    return str(p.with_name(p.stem + (".sandbox.results.jsonl" if sandbox else ".results.jsonl")))


def validate_options(opts: RunOptions) -> None:
    if opts.input != "-" and not Path(opts.input).exists():
        raise UsageError(f"input file {opts.input} does not exist")


def blocking_source(path: str) -> bool:
    """Pipes and terminals block on read; regular files do not."""
    if path == "-":
        return True
    try:
        return not stat.S_ISREG(os.stat(path).st_mode)
    except OSError:
        return False


def read_prior(cfg: Config, opts: RunOptions, target: str | None = None) -> Prior | None:
    """What the results file recorded in earlier runs (None with --fresh). A file whose runs
    sent elsewhere (the sandbox, another Gong host or credential) is refused: resuming it would
    take that target's meetings for this one's."""
    if opts.fresh and cfg.ledger is None and os.path.exists(opts.out):
        log.warning("--fresh: %s is started anew; rows it recorded as created will be sent "
                    "again unless a ledger says otherwise", opts.out)
    prior = None if opts.fresh else open_prior(opts.out)
    if prior is not None:
        for w in prior.warnings:
            log.warning(w)
        never, maybe = other_targets(prior.targets, target)
        if never:
            prior.close()
            raise UsageError(
                f"{opts.out} holds the results of runs that sent to {', '.join(never)}; this run "
                f"sends to {target}. Resuming it would take those meetings for this target's: "
                "give another --out (or --fresh to start the file anew)")
        if maybe:  # the same company under another credential or host name, most likely:
            # resuming keeps its meetings from being made again
            log.warning("%s was written by runs that sent to %s; this run sends to %s (another "
                        "credential or host name of the same company?): its rows are resumed "
                        "as this target's", opts.out, ", ".join(maybe), target)
    return prior


def open_ledger(path: str | None) -> Ledger | None:
    if path:
        warn_deprecated(path)
    ledger = Ledger.open(path) if path else None
    if ledger is not None:
        for w in ledger.warnings:
            log.warning(w)
    return ledger


def ledger_for(cfg: Config, opts: RunOptions,
               ) -> tuple[Ledger | None, dict[str, LedgerEntry] | None]:
    """(the ledger to write, its entries for the resume rules). A sandbox run reads the ledger
    (a trial of the real run) and never writes it: a sandbox meeting in it would make the real
    run skip that row."""
    if not opts.sandbox:
        ledger = open_ledger(cfg.ledger)
        return ledger, (ledger.entries if ledger is not None else None)
    if not cfg.ledger:
        return None, None
    warn_deprecated(cfg.ledger)
    entries, warnings = read_ledger(cfg.ledger)
    for w in warnings:
        log.warning(w)
    return None, entries


def close_journals(journal: Journal, stats: RunStats | None) -> None:
    """Close the results file and the ledger, flushed to the disk. If that fails the run stops
    with a JournalError, unless it already stops on one (or on anything else)."""
    errors: list[JournalError] = []
    try:
        journal.writer.close()
    except JournalError as exc:
        errors.append(exc)
    if journal.ledger is not None:
        try:
            journal.ledger.close()
        except OSError as exc:
            errors.append(JournalError(f"cannot write the ledger {journal.ledger.path}: "
                                       f"{exc.strerror or exc}"))
    if errors and stats is not None and stats.stopped_by is None:
        stats.stopped_by = errors[0]


async def send(
    cfg: Config,
    opts: RunOptions,
    plan: Iterable[Work],
    journal: Journal,
    *,
    blocking: bool = False,
    listeners: Sequence[RowEvents] = (),
    stop: asyncio.Event | None = None,
    hard_stop: asyncio.Event | None = None,
    on_start: OnStart | None = None,
    organizers: Mapping[str, Sequence[str]] | None = None,
) -> RunStats:
    """Open the session and send `plan` through one engine; the journal is closed after.
    `organizers` (email -> keys to create) are checked first (engine.precheck)."""
    credentials = credentials_for(opts.target)  # a missing credential stops before anything
    stats: RunStats | None = None
    try:
        async with open_session(cfg, opts.target, credentials=credentials) as session:
            engine = Engine(session.cfg, session, journal, listeners=listeners,
                            resend_uncertain=opts.resend_uncertain, stop=stop,
                            hard_stop=hard_stop)
            if on_start is not None:
                on_start(engine.stats, session)
            checks = [0]
            if organizers and cfg.check_organizers:
                await _check_first(session, engine, organizers, checks)
            try:
                stats = await engine.run(plan, blocking=blocking)
                stats.organizer_checks += checks[0]
            finally:
                # The engine's own stats object: the display holds on to it.
                stats = engine.stats
        stats.output_errors.extend(session.output_errors)
        return stats
    finally:
        close_journals(journal, stats)


CHECK_TIMEOUT = 120.0  # seconds the organizer check may take before the run goes on without it


async def _check_first(session: Session, engine: Engine,
                       organizers: Mapping[str, Sequence[str]],
                       tally: list[int]) -> None:
    """The organizer check (engine.precheck), cut short by a stop (Ctrl-C, SIGTERM: the run
    then records what it must and ends) or after CHECK_TIMEOUT; a store fault only skips it."""
    from .engine.precheck import check_organizers

    checking = asyncio.ensure_future(check_organizers(session, engine.organizers, organizers,
                                                      tally))
    stopping = asyncio.ensure_future(engine.stop.wait())
    try:
        done, _ = await asyncio.wait({checking, stopping}, timeout=CHECK_TIMEOUT,
                                     return_when=asyncio.FIRST_COMPLETED)
    except BaseException:
        checking.cancel()
        raise
    finally:
        stopping.cancel()
    if checking not in done:
        checking.cancel()
        await asyncio.gather(checking, return_exceptions=True)
        if not engine.stop.is_set():
            log.warning("the organizer check took over %.0fs; sending without it",
                        CHECK_TIMEOUT, extra={"event": "check"})
        return
    exc = checking.exception()
    if exc is not None:  # a store fault: the rows find out one by one
        log.warning("organizers not checked before sending: %s", exc, extra={"event": "check"})


async def run_input(
    cfg: Config,
    opts: RunOptions,
    *,
    listeners: Sequence[RowEvents] = (),
    stop: asyncio.Event | None = None,
    hard_stop: asyncio.Event | None = None,
    on_start: OnStart | None = None,
    organizers: Mapping[str, Sequence[str]] | None = None,
) -> RunStats:
    """`bulkmeet run`: read and map the input, plan it by the resume rules, send the rest.
    `organizers` are the input's (from `estimate`, which the CLI makes anyway); None: they are
    gathered here when the organizer check may need them."""
    target = target_label(cfg, opts.target, credentials_for(opts.target))
    if organizers is None and cfg.check_organizers and \
            state_url(cfg, opts.target) is not None:
        est = estimate(cfg, opts)
        organizers = est.organizers if est is not None else None
    mapper = Mapper.from_config(cfg)
    raws = read_input(cfg, opts.input, mapper, sheet=opts.sheet)
    try:
        prior = read_prior(cfg, opts, target)
    except BaseException:
        raws.close()
        raise
    try:
        ledger, entries = ledger_for(cfg, opts)
        journal = Journal(ResultsWriter(opts.out, fresh=opts.fresh, target=target), ledger)
    except BaseException:
        raws.close()
        if prior is not None:
            prior.close()
        raise
    planner = Planner(mapper, prior=prior, ledger=entries,
                      resend_uncertain=opts.resend_uncertain)
    blocking = blocking_source(opts.input)
    try:
        return await send(cfg, opts, planner.plan(raws), journal, blocking=blocking,
                          listeners=listeners, stop=stop, hard_stop=hard_stop,
                          on_start=on_start, organizers=organizers)
    finally:
        if not blocking:
            # A pipe's reader thread may still be blocked in a read of it: closing the file
            # under it would abort the interpreter; the process exit closes it instead.
            planner.close()
            raws.close()
            if prior is not None:
                prior.close()


async def run_rows(
    cfg: Config,
    opts: RunOptions,
    rows: Iterable[Row],
    *,
    listeners: Sequence[RowEvents] = (),
    stop: asyncio.Event | None = None,
    hard_stop: asyncio.Event | None = None,
    on_start: OnStart | None = None,
) -> RunStats:
    """Send rows already mapped (`retry` from recorded payloads) by the same resume rules,
    appending to the results file `opts.out`."""
    target = target_label(cfg, opts.target, credentials_for(opts.target))
    prior = read_prior(cfg, opts, target)
    try:
        ledger, entries = ledger_for(cfg, opts)
        journal = Journal(ResultsWriter(opts.out, fresh=opts.fresh, target=target), ledger)
        planner = Planner(prior=prior, ledger=entries, resend_uncertain=opts.resend_uncertain)
        try:
            return await send(cfg, opts, planner.plan_rows(rows), journal, listeners=listeners,
                              stop=stop, hard_stop=hard_stop, on_start=on_start)
        finally:
            planner.close()
    finally:
        if prior is not None:
            prior.close()


async def with_store_budget(cfg: Config, opts: RunOptions, est: Estimate) -> Estimate:
    """The estimate with today's budget as the state store counts it (every process of the
    company adds up there, and a run is held to it), when that leaves less than the count on
    this machine says."""
    url = state_url(cfg, opts.target)
    if url is None or est.budget_left is None:
        return est
    from .session import open_state

    store = await open_state(cfg, credentials_for(opts.target), url)
    try:
        left = max(0, cfg.daily_budget - await store.spent(quota_for(cfg).day))
    finally:
        await store.close()
    return dataclasses.replace(est, budget_left=min(est.budget_left, left))


def estimate(cfg: Config, opts: RunOptions) -> Estimate | None:
    """Plan the input once, without sending, to tell what the run will send and how long it
    takes. None for stdin and for inputs too large to read twice cheaply."""
    if not small_file(opts.input):
        return None
    prior = None if opts.fresh else open_prior(opts.out)
    ledger = read_ledger(cfg.ledger)[0] if cfg.ledger else {}
    # Quiet: the run itself says each row's mapping warnings.
    mapper = Mapper.from_config(cfg)
    planner = Planner(mapper, prior=prior, ledger=ledger,
                      resend_uncertain=opts.resend_uncertain, quiet=True)
    # The keys to create by organizer, for the organizer check: only where it may run.
    store = state_url(cfg, opts.target) is not None
    organizers: dict[str, list[str]] | None = {} if store and cfg.check_organizers else None
    try:
        with read_input(cfg, opts.input, mapper, sheet=opts.sheet) as raws:
            rows, to_send, invalid, done = count_work(planner.plan(raws), organizers)
    finally:
        planner.close()
        if prior is not None:
            prior.close()
    rate = None if cfg.rate_auto else cfg.rate * (1 - cfg.rate_margin)
    seconds = to_send / rate if rate else None
    budget_left = None if opts.sandbox else quota_for(cfg).remaining
    return Estimate(rows, to_send, invalid, done, seconds, budget_left, cfg.daily_budget,
                    organizers or {}, store=store)
