"""`bulkmeet state`: the state store of a Gong company, shown, and filled once from old files."""

from __future__ import annotations

import asyncio

import click

from ..exits import EXIT_OK
from .common import guard, main, setup_logging
from .options import config_option
from .validate import input_config


@main.group()
def state() -> None:
    """The state store: which keys became which meetings, for the Gong host and credentials of
    the environment (GONG_BASE_URL, GONG_ACCESS_KEY...). See README "State"."""


def _store_options(fn: click.decorators.FC) -> click.decorators.FC:
    fn = click.option("--state", "state_url", metavar="URL", default=None,
                      help="The store: 'default', sqlite:///PATH, PATH or postgresql://... "
                      "(default: the config's `state`, else 'default').")(fn)
    return config_option(fn)


@state.command("import")
@_store_options
@click.option("--ledger", "ledgers", multiple=True, metavar="FILE",
              help="A ledger file of earlier versions (repeatable).")
@click.option("--results", "results", multiple=True, metavar="FILE",
              help="A results file of earlier runs (repeatable).")
def import_(config_path: str | None, state_url: str | None, ledgers: tuple[str, ...],
            results: tuple[str, ...]) -> None:
    """Bring the keys that ledger and results files know into the store, once: a created
    meeting is never demoted by a later invalid or failed record, and importing the same files
    again changes nothing."""
    setup_logging("warning")

    def go() -> int:
        from ..errors import UsageError

        if not ledgers and not results:
            raise UsageError("give --ledger FILE and/or --results FILE to import")
        if state_url == "off":
            raise UsageError("state import needs a state store: --state off names none")
        cfg, _ = input_config(config_path)
        cfg = cfg.replace(state=state_url or cfg.state or "default", state_must_exist=False)
        return asyncio.run(_import(cfg, ledgers, results))

    guard(go)


async def _import(cfg: object, ledgers: tuple[str, ...], results: tuple[str, ...]) -> int:
    from ..config import Config
    from ..session import Target, credentials_for, open_state, target_label
    from ..store.importer import import_ledger, import_results

    assert isinstance(cfg, Config)
    credentials = credentials_for(Target(), sandbox_hint=False)
    label = target_label(cfg, Target(), credentials)
    store = await open_state(cfg, credentials)
    try:
        for kind, paths in (("ledger", ledgers), ("results", results)):
            for path in paths:
                report = await (import_ledger(store, path) if kind == "ledger" else
                                import_results(store, path, target=label))
                for warning in report.warnings:
                    click.echo(f"bulkmeet: warning: {warning}", err=True)
                click.echo(f"{kind} {path}: {report.keys} keys read, {report.changed} changed "
                           f"in {store.target.label}")
        counts = await store.count()
    finally:
        await store.close()
    click.echo("state: " + (", ".join(f"{n} {s.value}" for s, n in sorted(counts.items()))
                            or "empty"))
    return EXIT_OK


@state.command("show")
@_store_options
def show(config_path: str | None, state_url: str | None) -> None:
    """How many keys the store holds in each state."""
    setup_logging("warning")

    def go() -> int:
        cfg, _ = input_config(config_path)
        return asyncio.run(_show(cfg.replace(state=state_url or cfg.state,
                                            state_must_exist=False)))

    guard(go)


async def _show(cfg: object) -> int:
    from ..config import Config
    from ..session import Target, credentials_for, open_state

    assert isinstance(cfg, Config)
    from ..session import principal, state_url
    from ..store import Target as StoreTarget
    from ..store import normalise_url, sqlite_path

    credentials = credentials_for(Target(), sandbox_hint=False)
    url = state_url(cfg, Target())
    if url is None:
        click.echo(f"{cfg.base_url} keeps no state store (a server on this machine keeps none "
                   "unless --state names one; or `state: off`)")
        return EXIT_OK
    path = sqlite_path(None if url == "default" else url,
                       StoreTarget(normalise_url(cfg.base_url), principal(credentials)))
    if path is not None and not path.exists():
        click.echo(f"no state store at {path} yet: nothing has been kept there")
        return EXIT_OK
    store = await open_state(cfg, credentials, url)
    try:
        counts = await store.count()
        click.echo(f"{store.target.label}: " + (
            ", ".join(f"{n} {s.value}" for s, n in sorted(counts.items())) or "empty"))
    finally:
        await store.close()
    return EXIT_OK
