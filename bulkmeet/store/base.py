"""The store's public values and its abstract API, shared by the SQLite and PostgreSQL stores."""

from __future__ import annotations

import hashlib
import os
import socket
import uuid
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import orjson

from ..errors import ConfigError, QuotaExhausted
from .transitions import ClaimResult, Op, Outcome, Row, State

SCHEMA_VERSION = 1
BATCH = 500  # keys per query in get_many, rows per page in iter_states


@dataclass(frozen=True, slots=True)
class Target:
    """Whose state this is: one Gong company as one credential sees it.

    `base_url` normalised (scheme and host lower case, default port and trailing slash dropped,
    no user info, query or fragment); `principal` is `key:<access key id>` or
    `bearer:<sha256 of the token>`: never a secret.
    """

    base_url: str
    principal: str

    @classmethod
    def for_access_key(cls, base_url: str, access_key_id: str) -> Target:
        if not access_key_id:
            raise ConfigError("a state store needs the access key id")
        return cls(normalise_url(base_url), f"key:{access_key_id}")

    @classmethod
    def for_bearer(cls, base_url: str, token: str) -> Target:
        if not token:
            raise ConfigError("a state store needs the bearer token's digest")
        digest = hashlib.sha256(token.encode()).hexdigest()
        return cls(normalise_url(base_url), f"bearer:{digest}")

    @property
    def id(self) -> str:
        """16 hex digits, the same on every machine for the same company and credential."""
        text = f"{self.base_url}\n{self.principal}"
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    @property
    def host(self) -> str:
        return urlsplit(self.base_url).netloc

    @property
    def label(self) -> str:
        kind, _, value = self.principal.partition(":")
        who = f"key {value}" if kind == "key" else f"bearer token {value[:8]}…"
        return f"{self.host} ({who})"


def normalise_url(url: str) -> str:
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"the base URL must be an http(s) URL, not {url!r}")
    host = parts.hostname.lower()
    if ":" in host:
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        raise ConfigError(f"the base URL's port is not valid: {url!r}") from None
    if port is not None and port != {"http": 80, "https": 443}[scheme]:
        host = f"{host}:{port}"
    return urlunsplit((scheme, host, parts.path.rstrip("/"), "", ""))


def state_dir() -> Path:
    """$BULKMEET_STATE_DIR, else $XDG_STATE_HOME/bulkmeet, else ~/.local/state/bulkmeet."""
    explicit = os.environ.get("BULKMEET_STATE_DIR")
    if explicit:
        return Path(explicit)
    root = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local",
                                                            "state")
    return Path(root) / "bulkmeet"


def new_owner() -> str:
    """A claim owner name: host, process and a random part (a pid is reused after a reboot)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


@dataclass(frozen=True, slots=True)
class KeyRecord:
    """What the store knows of one key, as read (an expired claim reads `uncertain`)."""

    key: str
    state: State
    meeting_id: str | None
    organizer: str | None
    payload: dict[str, Any] | None
    payload_digest: str | None
    op: Op | None
    owner: str | None
    lease_until: float | None
    refused_digest: str | None
    http_status: int | None
    errors: tuple[str, ...]
    updated_at: float

    @property
    def exists(self) -> bool:
        """A meeting made for this key is (as far as we know) in Gong."""
        return self.state in (State.CREATED, State.UPDATED) or (
            self.state in (State.IN_FLIGHT, State.UNCERTAIN) and self.meeting_id is not None
            and self.op is not Op.CREATE)

    @classmethod
    def of(cls, row: Row, *, with_payload: bool = True) -> KeyRecord:
        payload = orjson.loads(row.payload) if with_payload and row.payload else None
        errors = tuple(orjson.loads(row.errors)) if row.errors else ()
        return cls(row.key, row.state, row.meeting_id, row.organizer, payload,
                   row.payload_digest, row.op, row.owner, row.lease_until, row.refused_digest,
                   row.http_status, errors, row.updated_at)


class BudgetSpent(QuotaExhausted):
    def __init__(self, day: str, used: int, budget: int) -> None:
        super().__init__(f"daily budget of {budget} calls is spent for {day} ({used} used)")
        self.day, self.used, self.budget = day, used, budget


def dumps(value: Any) -> str | None:
    return None if value is None else orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


class Store(ABC):
    """One target's state. Every method is one transaction; none blocks the event loop."""

    target: Target
    location: str  # where the state lives, for messages (no password)

    async def __aenter__(self) -> Store:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.close()

    @abstractmethod
    async def close(self) -> None: ...

    # keys
    @abstractmethod
    async def claim(self, key: str, *, owner: str, op: Op | str, payload_digest: str,
                    lease: float, resend_uncertain: bool = False) -> ClaimResult: ...

    @abstractmethod
    async def settle(self, key: str, owner: str, outcome: Outcome) -> KeyRecord: ...

    @abstractmethod
    async def renew(self, owner: str) -> int:
        """Extend every live claim of `owner` by its lease; returns how many. A claim whose
        lease already ran out is not revived (it may have been reported uncertain)."""

    @abstractmethod
    async def record(self, facts: Sequence[Row], *, source: str = "record") -> int:
        """Fold facts learnt outside a claim (an import) by the merge table, in one
        transaction; returns how many keys changed."""

    @abstractmethod
    async def get(self, key: str) -> KeyRecord | None: ...

    @abstractmethod
    async def get_many(self, keys: Iterable[str]) -> dict[str, KeyRecord]: ...

    @abstractmethod
    def iter_states(self, *, with_payload: bool = False,
                    states: Iterable[State] | None = None) -> AsyncIterator[KeyRecord]:
        """Every key in key order, a page at a time (no cursor is held between pages)."""

    @abstractmethod
    async def history(self, key: str) -> list[dict[str, Any]]: ...

    @abstractmethod
    async def is_empty(self) -> bool: ...

    @abstractmethod
    async def count(self) -> dict[State, int]: ...

    # pacing and budget
    @abstractmethod
    async def take_slot(self, rate: float, *, burst: float = 0.0) -> float:
        """Reserve the next request slot; returns the seconds to wait before sending."""

    @abstractmethod
    async def pause_for(self, seconds: float) -> float:
        """Pause every process until now + seconds (store clock), unless already paused longer;
        returns the pause's end."""

    @abstractmethod
    async def pause_until(self, deadline: float) -> float: ...

    @abstractmethod
    async def spend(self, day: str, budget: int, calls: int = 1) -> int:
        """Count calls for `day`; returns the day's count, or raises BudgetSpent (nothing
        counted) when they would pass `budget`."""

    @abstractmethod
    async def spent(self, day: str) -> int: ...

    @abstractmethod
    async def now(self) -> float:
        """The store's clock (epoch seconds)."""

    # organizers checked through integration/status
    @abstractmethod
    async def organizers_checked(self, day: str, emails: Sequence[str]) -> dict[str, str | None]:
        """Of `emails` (lower-cased), those checked on `day`: email -> None (a Gong user
        whose integration is valid) or what was wrong."""

    @abstractmethod
    async def record_organizers(self, day: str, checked: Mapping[str, str | None]) -> None:
        """Keep what `day`'s check said of each organizer (the last check of each wins)."""


def as_op(op: Op | str) -> Op:
    try:
        return Op(op)
    except ValueError:
        raise ValueError(f"op must be create, update or delete, not {op!r}") from None
