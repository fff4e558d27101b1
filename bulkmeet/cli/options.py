"""The options the commands share, declared once each.

- `input_options`: what reads and maps an input (--config, --preset, --organizer, --timezone,
  --encoding, --all-day, --format, --sheet), on every command that maps one: run, validate,
  check, retry, plan, sync. --encoding and --all-day reach `input_config` through click's
  context rather than each command's parameters.
- `sending_options`: how requests go out (--rate, --reserve, --concurrency, --insecure, --sandbox,
  --sandbox-rate), on every command that talks to Gong: run, check, retry, sync, undo.
- `output_options`: what a run shows and leaves (--quiet, --status-interval, --junit,
  --summary, and the log options), on every command that sends: run, retry, sync, undo.
- `state_options`: --state and --state-must-exist, on run, retry, sync and undo.
- `log_options`: --log-level and --log-format, on the others.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final, TypeVar

import click

from ..config import DEFAULT_RATE
from ..presets import PRESETS

F = TypeVar("F", bound=Callable[..., Any])


def _apply(fn: F, *decorators: Callable[[F], F]) -> F:
    for decorate in reversed(decorators):
        fn = decorate(fn)
    return fn


def config_option(fn: F) -> F:
    return click.option("--config", "config_path", type=click.Path(dir_okay=False),
                        help="YAML config file (see `bulkmeet init`).")(fn)


def mapping_options(fn: F) -> F:
    """--preset, --organizer and --timezone."""
    return _apply(
        fn,
        click.option("--preset", type=click.Choice(sorted(PRESETS)),
                     help="Mapping for a known export layout; the config's `mapping:` keys "
                     "override the preset's."),
        click.option("--organizer", metavar="EMAIL",
                     help="Organizer of every meeting: sets mapping.organizerEmail to "
                     "{const: EMAIL} (for exports without one, e.g. Google's)."),
        click.option("--timezone", "tz", metavar="ZONE",
                     help="IANA zone for times without an offset (e.g. Europe/Berlin); "
                     "overrides the config's `timezone`."),
    )


INPUT_META: Final = "bulkmeet.input"
"""Where --encoding and --all-day leave their values in click's context (`ctx.meta`):
`validate.input_config` reads them there, so a command's signature need not name them."""


def _remember(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    if value is not None and param.name is not None:
        ctx.meta.setdefault(INPUT_META, {})[param.name] = value
    return value


def input_options(fn: F) -> F:
    """--config, --preset, --organizer, --timezone, --encoding, --all-day, --format, --sheet."""
    return _apply(
        fn,
        config_option,
        mapping_options,
        click.option("--encoding", metavar="CODEC", expose_value=False, callback=_remember,
                     help="Text encoding of a CSV or JSONL input and its directory CSVs, e.g. "
                     "cp1252 (default utf-8; a file starting with a UTF-8 byte-order mark is "
                     "read as UTF-8 whatever this says). Overrides the config's `encoding`."),
        click.option("--all-day", "all_day", type=click.Choice(["reject", "skip", "allow"]),
                     expose_value=False, callback=_remember,
                     help="What to do with rows the all-day column marks: reject them as "
                     "invalid (the default), skip them, or allow them as midnight to midnight. "
                     "Sets mapping.all_day."),
        click.option("--format", "fmt", type=click.Choice(["csv", "jsonl", "xlsx"]),
                     help="Input format (default: from the extension; needed for stdin)."),
        click.option("--sheet", help="Worksheet name for .xlsx input (default: the first)."),
    )


def sandbox_options(fn: F) -> F:
    """--sandbox and --sandbox-rate."""
    return _apply(
        fn,
        click.option("--sandbox", is_flag=True, help="Against the built-in fake Gong server on "
                     "a free loopback port, limited like Gong (3 calls/s, 10,000 a day)."),
        click.option("--sandbox-rate", type=click.FloatRange(min=0), default=DEFAULT_RATE,
                     show_default=True, metavar="R",
                     help="Calls per second the built-in sandbox allows before it answers "
                     "429, like Gong (0: no limit, for fast trials)."),
    )


def sending_options(fn: F) -> F:
    """--rate, --reserve, --concurrency, --insecure, --sandbox, --sandbox-rate."""
    return _apply(
        fn,
        click.option("--rate", help="Requests per second, or 'auto' to adapt to a shared quota "
                     "(default 3)."),
        click.option("--reserve", metavar="R|N%", help="Calls/s of the limit left for the "
                     "company's other integrations, or a share of it such as 25% (default 0)."),
        click.option("--concurrency", type=click.IntRange(min=1),
                     help="Workers sending at once (8)."),
        click.option("--insecure", is_flag=True, help="Allow a base URL that is plain http."),
        sandbox_options,
    )


def state_options(fn: F) -> F:
    """--state and --state-must-exist."""
    return _apply(
        fn,
        click.option("--state", metavar="URL", help="State store shared by every process "
                     "sending to this Gong company: 'default' (a SQLite file under the state "
                     "directory; used for a real Gong host when nothing is set), "
                     "sqlite:///PATH, PATH, postgresql://..., or 'off'. Each create is claimed "
                     "there before it is sent; pacing and the daily count are shared through "
                     "it (config: state)."),
        click.option("--state-must-exist", is_flag=True, default=None,
                     help="Refuse to start (exit 78) when the state store is new or empty: "
                     "for nightly jobs, where a lost cache must not create every row again."),
    )


def log_options(fn: F) -> F:
    """--log-level and --log-format."""
    return _apply(
        fn,
        click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"]),
                     default="warning", show_default=True),
        click.option("--log-format", type=click.Choice(["text", "json"]), default="text",
                     show_default=True, help="Log lines as text, or as one JSON object per line "
                     "with the event, line and key as fields."),
    )


def output_options(fn: F) -> F:
    """--quiet, --status-interval, --junit, --summary, --log-level, --log-format."""
    return _apply(
        fn,
        click.option("-q", "--quiet", is_flag=True,
                     help="Show nothing but errors and the final summary."),
        click.option("--status-interval", type=click.FloatRange(min=0, min_open=True),
                     help="Seconds between status lines when stderr is not a terminal (15)."),
        click.option("--junit", type=click.Path(dir_okay=False), help="Write a JUnit XML "
                     "report here: one testcase per row, failures with their errors and "
                     "requestId."),
        click.option("--summary", "summary_path", type=click.Path(dir_okay=False),
                     help="Write a JSON summary here: counts by status, timings, rate, 429 "
                     "pauses, quota, exit code."),
        log_options,
    )
