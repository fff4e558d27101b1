"""Logging for a run: text or JSON lines on stderr, and no credential in any of it.

The engine (engine/workers.py) logs each retry, pause, rate change and final failure on the
"bulkmeet" logger with `extra={"event": ..., "line": ..., "key": ...}`. The text format appends
those fields in brackets; the JSON format (one object per line, for log shippers) emits them as
fields.

`RedactSecrets` is defence in depth: nothing is meant to log a credential, but if a message, an
argument, an extra field or a traceback ever carries one, it is replaced before any handler
formats the record.
"""

from __future__ import annotations

import base64
import logging
import os
import sys
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

import orjson

LOGGER = "bulkmeet"
FORMATS = ("text", "json")
LEVELS = ("debug", "info", "warning", "error")
REDACTED = "[REDACTED]"
# Shorter strings are not redacted: replacing every "ab" would garble the log and hide nothing
# worth hiding (real access keys and tokens are dozens of characters).
MIN_SECRET = 4
# Fields every LogRecord has; anything else on a record came in through `extra=`.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message", "asctime", "taskName"}


def secret_forms(secrets: Iterable[str]) -> tuple[str, ...]:
    """Each secret and its base64 form, longest first (so a longer match wins)."""
    forms: set[str] = set()
    for s in secrets:
        if len(s) >= MIN_SECRET:
            forms.add(s)
            forms.add(base64.b64encode(s.encode()).decode("ascii"))
    return tuple(sorted(forms, key=len, reverse=True))


def env_secrets(env: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """Every credential the environment holds, in each form it could leak in (see secret_forms)."""
    env = os.environ if env is None else env
    key = env.get("GONG_ACCESS_KEY", "")
    secret = env.get("GONG_ACCESS_KEY_SECRET", "")
    token = env.get("GONG_BEARER_TOKEN", "")
    found: list[str] = [s for s in (key, secret, token) if s]
    if not found:
        return secret_forms(found)
    from .client import Credentials  # aiohttp: imported only when there are credentials

    if key and secret:
        found.extend(Credentials.basic(key, secret).secrets())
    if token:
        found.extend(Credentials.bearer(token).secrets())
    return secret_forms(found)


def redact(text: str, secrets: Iterable[str]) -> str:
    for s in secrets:
        if s in text:
            text = text.replace(s, REDACTED)
    return text


class RedactSecrets(logging.Filter):
    """Replace known secrets in a record's message, arguments, extra fields and traceback."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self.secrets = secret_forms(secrets)

    def filter(self, record: logging.LogRecord) -> bool:
        if not self.secrets:
            return True
        try:
            message = record.getMessage()
        except (TypeError, ValueError):  # bad %-args: the handler reports it; redact the parts
            record.msg = redact(str(record.msg), self.secrets)
            record.args = tuple(redact(str(a), self.secrets) for a in record.args or ())
        else:
            record.msg, record.args = redact(message, self.secrets), None
        for name, value in list(vars(record).items()):
            if name not in _STANDARD and isinstance(value, str):
                setattr(record, name, redact(value, self.secrets))
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text, self.secrets)
            record.exc_info = None  # the text above is what gets shown
        if record.stack_info:
            record.stack_info = redact(record.stack_info, self.secrets)
        return True


def extras(record: logging.LogRecord) -> dict[str, Any]:
    """The fields a record got through `extra=` (event, line, key, seconds, rate, ...)."""
    return {k: v for k, v in vars(record).items() if k not in _STANDARD}


class TextFormatter(logging.Formatter):
    """`bulkmeet: WARNING: message [line 5, key 'crm-1']`: the row's line and key when the
    record names a row (the JSON format carries every extra field)."""

    def __init__(self) -> None:
        super().__init__("bulkmeet: %(levelname)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        fields = extras(record)
        where = [f"line {fields['line']}" if "line" in fields else "",
                 f"key {fields['key']!r}" if "key" in fields else ""]
        shown = ", ".join(w for w in where if w)
        if shown:
            head, sep, tail = text.partition("\n")  # keep a traceback below the line
            text = f"{head} [{shown}]{sep}{tail}"
        return text


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, the extra fields, traceback."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for k, v in extras(record).items():
            data.setdefault(k, v)
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            data["traceback"] = record.exc_text
        return orjson.dumps(data, default=str).decode()


class _CurrentStderr:
    """Writes to whatever sys.stderr is at the time, so a live progress bar that redirects
    stderr (rich) prints log lines above itself instead of tearing through it."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def setup_logging(level: str = "warning", fmt: str = "text",
                  secrets: Iterable[str] | None = None) -> logging.Logger:
    """Point the "bulkmeet" logger at stderr in `fmt`, with secrets (default: the env's)
    redacted. Calling it again replaces the earlier set-up."""
    if fmt not in FORMATS:
        raise ValueError(f"log format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    logger = logging.getLogger(LOGGER)
    for h in list(logger.handlers):
        logger.removeHandler(h)
    for f in list(logger.filters):
        if isinstance(f, RedactSecrets):
            logger.removeFilter(f)
    handler = logging.StreamHandler(_CurrentStderr())
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    # On the handler, so records of child loggers ("bulkmeet.x") pass through it too.
    handler.addFilter(RedactSecrets(env_secrets() if secrets is None else secrets))
    logger.addHandler(handler)
    logger.setLevel(level.upper())
    logger.propagate = False
    return logger
