"""One frozen Config, loaded from YAML, then the environment, then flags; validated once, here."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

from .errors import ConfigError

DEFAULT_BASE_URL = "https://api.gong.io"
DEFAULT_RATE = 3.0
DEFAULT_RATE_MARGIN = 0.02
DEFAULT_CONCURRENCY = 8
DEFAULT_QUEUE_SIZE = 64
DEFAULT_MAX_ATTEMPTS = 5
DEFAULT_BACKOFF_BASE = 0.5
DEFAULT_BACKOFF_MAX = 30.0
DEFAULT_REQUEST_TIMEOUT = 30.0
DEFAULT_RETRY_AFTER = 5.0
DEFAULT_MAX_WAIT = 900.0
DEFAULT_DAILY_BUDGET = 10_000
DEFAULT_GRACE_PERIOD = 10.0
DEFAULT_CLAIM_LEASE = 120.0  # a run renews its claims every third of it
DEFAULT_STATUS_INTERVAL = 15.0  # seconds between status lines when stderr is not a terminal


@dataclass(frozen=True, slots=True)
class Config:
    """Every setting of a run. Field names are the YAML keys."""

    base_url: str = DEFAULT_BASE_URL
    # pacing
    rate: float = DEFAULT_RATE
    rate_auto: bool = False
    rate_ceiling: float = DEFAULT_RATE
    rate_floor: float = 0.1
    rate_margin: float = DEFAULT_RATE_MARGIN
    # calls/s of the limit left for other integrations, or a share of it as "25%"
    reserve: float | str = 0.0
    concurrency: int = DEFAULT_CONCURRENCY
    queue_size: int = DEFAULT_QUEUE_SIZE
    # retries and waits
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    backoff_base: float = DEFAULT_BACKOFF_BASE
    backoff_max: float = DEFAULT_BACKOFF_MAX
    request_timeout: float = DEFAULT_REQUEST_TIMEOUT
    retry_after_default: float = DEFAULT_RETRY_AFTER
    max_wait: float = DEFAULT_MAX_WAIT
    grace_period: float = DEFAULT_GRACE_PERIOD
    # daily quota
    daily_budget: int = DEFAULT_DAILY_BUDGET
    quota_file: str | None = None
    quota_reset: str = "00:00"
    quota_timezone: str = "UTC"
    # input
    format: str | None = None
    delimiter: str | None = None
    encoding: str = "utf-8"
    timezone: str | None = None
    mapping: Mapping[str, Any] = field(default_factory=dict)
    # state
    ledger: str | None = None
    # The state store (claims before each send, pacing and the daily count shared by every
    # process): "default" (a SQLite file per Gong company under the state directory),
    # sqlite:///path, a path, or postgresql://...; "off": none; unset: "default" for a real
    # Gong host, none for the sandbox or a server on this machine.
    state: str | None = None
    state_must_exist: bool = False  # refuse to start on a new or empty store (a lost CI cache)
    # Ask integration/status about organizers not checked today before a run sends (with a store)
    check_organizers: bool = True
    claim_lease: float = DEFAULT_CLAIM_LEASE  # seconds a claim holds without being renewed
    # display
    status_interval: float = DEFAULT_STATUS_INTERVAL

    def replace(self, **changes: Any) -> Config:
        return validate(dataclasses.replace(self, **changes), source="the command line")


_FIELDS = {f.name: f for f in dataclasses.fields(Config)}


def load(path: str | Path | None, *, env: Mapping[str, str] | None = None) -> Config:
    """Read the YAML file (if any), then GONG_BASE_URL from the environment."""
    env = os.environ if env is None else env
    values: dict[str, Any] = {}
    source = "defaults"
    if path is not None:
        source = str(path)
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot read config file {path}: {exc.strerror or exc}") from None
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML: {exc}") from None
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: the top level must be a mapping of keys to values")
        for key, value in data.items():
            if key not in _FIELDS:
                known = ", ".join(sorted(_FIELDS))
                raise ConfigError(f"{path}: unknown key {key!r} (known keys: {known})")
            values[key] = value
    url_source = source
    if env.get("GONG_BASE_URL"):
        values["base_url"] = env["GONG_BASE_URL"]
        url_source = "GONG_BASE_URL"  # a bad URL is said to come from where it came from
    try:
        cfg = Config(**values)
    except TypeError as exc:  # pragma: no cover - guarded by the key check above
        raise ConfigError(f"{source}: {exc}") from None
    return validate(cfg, source=source, url_source=url_source)


# mapping keys (or key paths) that hold a CSV path; relative ones are read from the config's folder
_PATH_KEYS: Final = (("invitee_directory",), ("organizerEmail", "directory"),
                     ("invitees", "directory"))


def local_zone(env: Mapping[str, str] | None = None) -> str | None:
    """This computer's IANA zone name: $TZ, else /etc/localtime's link, else /etc/timezone."""
    env = os.environ if env is None else env
    candidates = []
    tz = env.get("TZ", "").removeprefix(":")
    if tz:
        candidates.append(tz.split("/zoneinfo/", 1)[-1])
    try:
        target = os.path.realpath("/etc/localtime")
        if "/zoneinfo/" in target:
            candidates.append(target.split("/zoneinfo/", 1)[1])
        candidates.append(Path("/etc/timezone").read_text(encoding="utf-8").strip())
    except (OSError, UnicodeDecodeError):
        pass
    for name in candidates:
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError, OSError):
            continue
        return name
    return None


def _export_zone(mapping: Mapping[str, Any]) -> str | None:
    """The zone the mapping's export format writes its times in (mapping.export_timezone,
    else its preset's), or None."""
    from .presets import PRESETS

    zone = mapping.get("export_timezone")
    if zone is None and isinstance(mapping.get("preset"), str):
        zone = PRESETS.get(mapping["preset"], {}).get("export_timezone")
    return zone if isinstance(zone, str) else None


def anchor_paths(mapping: Mapping[str, Any], base_dir: Path) -> dict[str, Any]:
    """A copy of `mapping` whose relative directory CSV paths start at `base_dir`."""
    out = dict(mapping)
    for keys in _PATH_KEYS:
        parent: dict[str, Any] = out
        for key in keys[:-1]:
            child = parent.get(key)
            if not isinstance(child, Mapping):
                break
            parent[key] = parent = dict(child)
        else:
            value = parent.get(keys[-1])
            if isinstance(value, str) and value and not Path(value).is_absolute():
                parent[keys[-1]] = str(base_dir / value)
    return out


def load_settings(path: str | Path | None, *, preset: str | None = None,
                  organizer: str | None = None, timezone: str | None = None,
                  all_day: str | None = None, env: Mapping[str, str] | None = None,
                  **flags: Any) -> tuple[Config, list[str]]:
    """The one way every command (and the Python API) loads its settings: the YAML file, then
    the environment (GONG_BASE_URL), then the flags; the mapping flags; paths anchored; the
    local-zone rule. Returns the config and notes for the user.

    Flags beat the file; a flag given as None is not given. `preset` replaces mapping.preset
    (the file's other mapping keys still override the preset's), `organizer` replaces
    mapping.organizerEmail with {const: organizer}, `timezone` the config's `timezone`,
    `all_day` mapping.all_day.
    Relative directory paths in the file are read from the file's folder. This computer's
    zone is never applied: a time without an offset is read in the zone the user names
    (`timezone`, a zone column) or the one the export format defines (a preset's
    `export_timezone`); with neither, reading the input stops (see Mapper.zone_error).
    """
    cfg = load(path, env=env)
    changes = {k: v for k, v in flags.items() if v is not None}
    if timezone is not None:
        changes["timezone"] = timezone
    mapping = dict(cfg.mapping)
    if path is not None:
        mapping = anchor_paths(mapping, Path(path).resolve().parent)
    if preset is not None:
        mapping["preset"] = preset
    if organizer is not None:
        mapping["organizerEmail"] = {"const": organizer}
    if all_day is not None:
        mapping["all_day"] = all_day
    changes["mapping"] = mapping
    notes = []
    export_zone = _export_zone(mapping)
    zone = changes.get("timezone", cfg.timezone)
    if export_zone is not None and zone is not None and zone != export_zone:
        notes.append(f"times without a UTC offset are read in {zone} (the `timezone` set), "
                     f"not {export_zone}, the zone the {mapping.get('preset') or 'mapping'} "
                     "export writes; right for a report exported in a user's zone, wrong for "
                     "a data export")
    return cfg.replace(**changes), notes


def _hide_userinfo(url: str) -> str:
    """The URL with any user:password@ replaced, for messages."""
    head, sep, rest = url.partition("://")
    netloc, slash, tail = rest.partition("/")
    if "@" in netloc:
        netloc = "***@" + netloc.rpartition("@")[2]
    return (head + sep + netloc + slash + tail).splitlines()[0] if url else url


def base_url_problem(url: str) -> str | None:
    """Why an http(s) base URL cannot be used, or None. Checked before anything is sent: a
    URL like `https://` or port 99999 would otherwise fail each row, one request at a time."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return "has no valid port (a number from 1 to 65535)"
    if any(c.isspace() or ord(c) < 32 for c in url):
        return "holds a space or a control character"
    if not parts.hostname:
        return "has no host (for example https://us-12345.api.gong.io)"
    if port == 0:
        return "has no valid port (a number from 1 to 65535)"
    if parts.username is not None or parts.password is not None:
        return ("must not hold a user name or password (credentials come from GONG_ACCESS_KEY "
                "and GONG_ACCESS_KEY_SECRET, or GONG_BEARER_TOKEN)")
    if parts.query or parts.fragment:
        return "must have no query or fragment"
    if parts.path not in ("", "/"):
        return (f"must have no path ({parts.path!r}): Gong's base URLs are a host only, such as "
                "https://us-12345.api.gong.io; bulkmeet adds /v2/meetings itself")
    return None


def _text_codec_known(name: str) -> bool:
    import codecs

    try:
        return codecs.lookup(name)._is_text_encoding
    except LookupError:
        return False


def _check_type(cfg: Config, name: str, types: tuple[type, ...], source: str) -> None:
    value = getattr(cfg, name)
    if isinstance(value, bool) and bool not in types:
        raise ConfigError(f"{source}: {name} must be a number, not {value!r}")
    if not isinstance(value, types):
        want = " or ".join(t.__name__ for t in types)
        raise ConfigError(f"{source}: {name} must be {want}, not {value!r}")


def reserve_rate(cfg: Config, *, source: str = "reserve") -> float:
    """The reserve in calls/s: a number as it is, "N%" as that share of the limit (the rate,
    or rate_ceiling in adaptive mode). ConfigError unless it leaves part of the limit."""
    value, limit = cfg.reserve, cfg.rate_ceiling if cfg.rate_auto else cfg.rate
    shown = f"{source}: reserve must be calls/s (e.g. 1) or a share of the limit (e.g. \"25%\")"
    if isinstance(value, str):
        text = value.strip()
        try:
            share = float(text[:-1]) / 100 if text.endswith("%") else float(text)
        except ValueError:
            raise ConfigError(f"{shown}, not {value!r}") from None
        calls = share * limit if text.endswith("%") else share
    elif isinstance(value, int | float) and not isinstance(value, bool):
        calls = float(value)
    else:
        raise ConfigError(f"{shown}, not {value!r}")
    if not 0 <= calls < limit or calls != calls:
        raise ConfigError(f"{source}: reserve {value!r} must be at least 0 and leave part of "
                          f"the limit ({limit:g}/s)")
    return calls


def validate(cfg: Config, *, source: str, url_source: str | None = None) -> Config:
    """Check every value once; the message names the key and where it came from."""
    for name in ("rate", "rate_ceiling", "rate_floor", "rate_margin", "backoff_base", "backoff_max",
                 "request_timeout", "retry_after_default", "max_wait", "grace_period",
                 "status_interval", "claim_lease"):
        _check_type(cfg, name, (int, float), source)
    for name in ("concurrency", "queue_size", "max_attempts", "daily_budget"):
        _check_type(cfg, name, (int,), source)
    _check_type(cfg, "rate_auto", (bool,), source)
    _check_type(cfg, "check_organizers", (bool,), source)
    positive = ("rate", "rate_ceiling", "rate_floor", "concurrency", "queue_size", "max_attempts",
                "request_timeout", "status_interval")
    for name in positive:
        if getattr(cfg, name) <= 0:
            value = getattr(cfg, name)
            raise ConfigError(f"{source}: {name} must be greater than 0, not {value!r}")
    for name in ("backoff_base", "backoff_max", "retry_after_default", "max_wait", "grace_period",
                 "daily_budget"):
        if getattr(cfg, name) < 0:
            raise ConfigError(f"{source}: {name} must not be negative, not {getattr(cfg, name)!r}")
    if not 0 <= cfg.rate_margin < 0.5:
        raise ConfigError(f"{source}: rate_margin must be in [0, 0.5), not {cfg.rate_margin!r}")
    reserve_rate(cfg, source=source)
    if cfg.format not in (None, "csv", "jsonl", "xlsx"):
        raise ConfigError(f"{source}: format must be csv, jsonl or xlsx, not {cfg.format!r}")
    delim = cfg.delimiter
    if delim is not None and (not isinstance(delim, str) or len(delim) != 1):
        raise ConfigError(f"{source}: delimiter must be one character, not {cfg.delimiter!r}")
    if not isinstance(cfg.mapping, Mapping):
        raise ConfigError(f"{source}: mapping must be a mapping of API field to column")
    where = url_source or source
    if not isinstance(cfg.base_url, str) or not cfg.base_url.startswith(("http://", "https://")):
        shown = _hide_userinfo(cfg.base_url) if isinstance(cfg.base_url, str) else cfg.base_url
        raise ConfigError(f"{where}: base_url must be an http(s) URL, not {shown!r}")
    problem = base_url_problem(cfg.base_url)
    if problem is not None:
        raise ConfigError(f"{where}: base_url {_hide_userinfo(cfg.base_url)!r} {problem}")
    if cfg.state is not None and (not isinstance(cfg.state, str) or not cfg.state.strip()):
        raise ConfigError(f"{source}: state must be default, sqlite:///path, a path or "
                          f"postgresql://..., not {cfg.state!r}")
    if not cfg.claim_lease > 0:
        raise ConfigError(f"{source}: claim_lease must be greater than 0, not {cfg.claim_lease!r}")
    if cfg.state_must_exist and cfg.state == "off":
        raise ConfigError(f"{source}: state_must_exist needs a state store (not state: off)")
    if not isinstance(cfg.encoding, str) or not _text_codec_known(cfg.encoding):
        raise ConfigError(f"{source}: encoding {cfg.encoding!r} is not a text codec Python "
                          "knows (for example utf-8 or cp1252)")
    if cfg.timezone is not None:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(cfg.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ConfigError(
                f"{source}: timezone {cfg.timezone!r} is not an IANA time zone name "
                "(for example Europe/Berlin or America/New_York)"
            ) from None
    return cfg
