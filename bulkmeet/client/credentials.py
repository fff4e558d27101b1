"""Gong credentials from the environment: the Authorization header, never shown."""

from __future__ import annotations

import base64
import os
from collections.abc import Mapping

from ..errors import ConfigError


class Credentials:
    """The Authorization header value, kept out of every repr, str and log."""

    __slots__ = ("_header", "kind")

    def __init__(self, header: str, kind: str) -> None:
        self._header = header
        self.kind = kind

    @classmethod
    def basic(cls, key: str, secret: str) -> Credentials:
        token = base64.b64encode(f"{key}:{secret}".encode()).decode("ascii")
        return cls(f"Basic {token}", "basic")

    @classmethod
    def bearer(cls, token: str) -> Credentials:
        return cls(f"Bearer {token}", "bearer")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, *,
                 sandbox_hint: bool = True) -> Credentials:
        """The credentials in the environment. `sandbox_hint`: the command has --sandbox, so
        the message may suggest it."""
        env = os.environ if env is None else env
        key = env.get("GONG_ACCESS_KEY", "")
        secret = env.get("GONG_ACCESS_KEY_SECRET", "")
        token = env.get("GONG_BEARER_TOKEN", "")
        if key and secret:
            return cls.basic(key, secret)
        if token:
            return cls.bearer(token)
        if key or secret:
            missing = "GONG_ACCESS_KEY_SECRET" if key else "GONG_ACCESS_KEY"
            raise ConfigError(f"{missing} is not set (both access key variables are needed)")
        raise ConfigError(
            "no credentials: set GONG_ACCESS_KEY and GONG_ACCESS_KEY_SECRET, or GONG_BEARER_TOKEN"
            + (" (or use --sandbox to try against the built-in fake server)" if sandbox_hint
               else " (they name the Gong company whose state store this reads)"))

    def secrets(self) -> tuple[str, ...]:
        """Every string that must never be printed (for tests and for output scrubbing)."""
        scheme, _, token = self._header.partition(" ")
        parts = [self._header, token, token.rstrip("=")]
        if scheme == "Basic":
            decoded = base64.b64decode(token).decode()
            parts.extend([decoded, *decoded.split(":", 1)])
        return tuple(p for p in parts if p)

    def header(self) -> str:
        return self._header

    def __repr__(self) -> str:
        return f"<Credentials {self.kind} (hidden)>"

    __str__ = __repr__
