"""Look before sending: what `bulkmeet validate` and `bulkmeet check` find. No printing here.

- `Triage` is run's reader stage without the network: each row is mapped, then left out by the
  filter (skipped), found invalid, found to repeat an earlier row's key (duplicate: the second of
  two is not sent), or would be sent. Its `Verdict.record` is the record `run` would write.
- `preflight` asks Gong, through POST /v2/meetings/integration/status (at most 100 emails a
  call, each call through the rate gate and counted in the daily quota), whether every distinct
  organizer of the input's valid rows is a Gong user whose integration is valid. The first
  answer proves the credentials; a 401/403 raises AuthError.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from .client import GongClient, Lost, Rejected, Retryable
from .config import DEFAULT_RATE, Config
from .errors import UsageError
from .gate import Gate
from .mapping import Mapper
from .models import RawRow, Status
from .planner import read_input
from .policy import Again, Finish, Pause, TooLong, next_step
from .quota import DailyQuota
from .results import iter_entries
from .session import Target, credentials_for, open_session
from .triage import Triage, Verdict

__all__ = [
    "MAX_EMAILS_PER_CALL",
    "Organizer",
    "Preflight",
    "Triage",
    "Verdict",
    "ask_gong",
    "check_out_path",
    "preflight",
]

MAX_EMAILS_PER_CALL: Final = 100  # the API's limit for integration/status
LINES_SHOWN: Final = 5  # lines named per organizer in a report
# What validate --out may overwrite: a file holding nothing but what validate itself writes.
_VALIDATE_STATUSES: Final = frozenset({Status.INVALID.value, Status.DUPLICATE.value,
                                       Status.SKIPPED.value})


# --- validate ----------------------------------------------------------------------------------


def check_out_path(out: str, input_path: str) -> None:
    """validate --out starts its file anew, so refuse one that is the input or that holds a
    run's results (overwriting those would make a re-run create meetings twice)."""
    path = Path(out)
    if not path.exists():
        return
    if input_path != "-" and Path(input_path).exists() and path.samefile(input_path):
        raise UsageError(f"--out {out} is the input file")
    if path.is_dir():
        raise UsageError(f"--out {out} is a directory")
    for entry in iter_entries(path, []):
        if entry.get("status") not in _VALIDATE_STATUSES:
            raise UsageError(f"--out {out} holds the results of a run (a {entry.get('status')!r} "
                             "record); choose another file: validate starts its file anew")


# --- check: the preflight ----------------------------------------------------------------------


@dataclass(slots=True)
class Organizer:
    """One distinct organizerEmail of the input (compared case-insensitively), and what Gong
    said about it. `error` is Gong's userFacingError, or why the address could not be checked."""

    email: str
    rows: int = 0
    lines: list[int] = field(default_factory=list)  # the first LINES_SHOWN lines
    exists: bool | None = None
    valid: bool | None = None
    error: str | None = None
    fix_url: str | None = None
    help_url: str | None = None

    @property
    def ok(self) -> bool:
        return self.exists is True and self.valid is True

    @property
    def problem(self) -> str | None:
        """A short name for what is wrong, None when nothing is."""
        if self.ok:
            return None
        if self.exists is None:
            return "not checked"
        if not self.exists:
            return "not a Gong user"
        return "integration not valid"

    def add_line(self, line: int) -> None:
        self.rows += 1
        if len(self.lines) < LINES_SHOWN:
            self.lines.append(line)


@dataclass(slots=True)
class Preflight:
    """What `check` found. `organizers` are in the order the input first names them."""

    organizers: list[Organizer]
    counts: Counter[str]
    requests: int = 0
    answered: int = 0  # HTTP answers (401/403 raise instead): the credentials were accepted
    error: str | None = None  # why some organizers could not be checked

    @property
    def ok(self) -> bool:
        return self.error is None and all(o.ok for o in self.organizers)


def collect_organizers(raws: Iterable[RawRow], triage: Triage) -> list[Organizer]:
    """The distinct organizers of the rows that would be sent, first spelling kept."""
    found: dict[str, Organizer] = {}
    for raw in raws:
        verdict = triage(raw)
        payload = verdict.row.payload
        if verdict.record is not None or payload is None:
            continue
        email = str(payload["organizerEmail"])
        organizer = found.get(email.lower())
        if organizer is None:
            organizer = found[email.lower()] = Organizer(email)
        organizer.add_line(verdict.row.line)
    return list(found.values())


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _apply_answer(batch: Sequence[Organizer], body: Any) -> None:
    users = body.get("users") if isinstance(body, dict) else None
    if not isinstance(users, list):
        _fail(batch, "Gong answered 200 without a list of users")
        return
    by_email = {str(u.get("email", "")).lower(): u for u in users if isinstance(u, dict)}
    for organizer in batch:
        user = by_email.get(organizer.email.lower())
        if user is None:
            organizer.error = "Gong's answer does not mention this address"
            continue
        exists = user.get("exists")
        if not isinstance(exists, bool):  # not said: not taken for a "no"
            organizer.error = "Gong's answer does not say whether this address is a Gong user"
            continue
        organizer.exists = exists
        organizer.valid = exists and user.get("valid") is True
        if not organizer.ok:
            organizer.error = _text(user.get("userFacingError")) or (
                "Gong gave no reason" if organizer.exists else None)
            organizer.fix_url = _text(user.get("fixUrl"))
            organizer.help_url = _text(user.get("helpUrl"))


def _fail(batch: Sequence[Organizer], reason: str) -> None:
    for organizer in batch:
        organizer.error = reason


Sleep = Callable[[float], Awaitable[None]]


async def ask_gong(
    report: Preflight,
    client: GongClient,
    gate: Gate,
    cfg: Config,
    *,
    quota: DailyQuota | None = None,
    sleep: Sleep = asyncio.sleep,
    rng: random.Random | None = None,
    before_call: Callable[[], Awaitable[None]] | None = None,
    on_pause: Callable[[float], Awaitable[Any]] | None = None,
) -> None:
    """Fill in what Gong says of each organizer of `report`, and its requests, answered and
    error. With no organizers it still asks once, with no emails, to prove the credentials.
    Each call waits for the gate; a 429 pauses it (up to cfg.max_wait); a 5xx or a lost answer
    is retried up to cfg.max_attempts with backoff. AuthError (401/403) propagates."""
    rng = rng or random.Random()
    organizers = report.organizers
    batches = [organizers[i:i + MAX_EMAILS_PER_CALL]
               for i in range(0, len(organizers), MAX_EMAILS_PER_CALL)] or [[]]
    for n, batch in enumerate(batches):
        failures = 0
        while True:
            await gate.acquire()
            if quota is not None:
                quota.spend()
                quota.save()  # a call every 100 organizers: save each one as it goes
            if before_call is not None:  # a run's shared slot and count (the state store)
                await before_call()
            report.requests += 1
            answer = await client.integration_status([o.email for o in batch])
            if not isinstance(answer, Retryable | Lost) or answer.http_status is not None:
                report.answered += 1
            if isinstance(answer, tuple):
                _apply_answer(batch, answer[1])
                break
            if isinstance(answer, Lost):  # asking again is safe: a status check changes nothing
                answer = Retryable(answer.http_status, answer.message, answer.request_id,
                                   answer.kind)
            step = next_step(answer, failures=failures, cfg=cfg, rand=rng.random())
            if isinstance(step, Pause):
                gate.pause(step.seconds)
                if on_pause is not None:  # every process sharing the store waits too
                    await on_pause(step.seconds)
                continue
            if isinstance(step, Again):
                failures += 1
                await sleep(step.delay)
                continue
            if isinstance(step, TooLong):
                report.error = (f"Gong's rate limit asks to wait {step.seconds:.0f}s, more than "
                                f"max_wait ({cfg.max_wait:g}s)")
            elif isinstance(answer, Rejected):
                report.error = f"Gong answered {answer.http_status}: " + "; ".join(answer.errors)
            elif isinstance(step, Finish):
                report.error = f"{step.errors[0]} (tried {failures + 1} times)"
            else:  # pragma: no cover - a 200 comes back as a tuple, never as Succeeded
                report.error = f"unexpected answer {answer!r}"
            break
        if report.error is not None:
            for rest in batches[n:]:
                _fail(rest, report.error)
            return


async def preflight(
    cfg: Config,
    input_path: str,
    *,
    sheet: str | None = None,
    sandbox: bool = False,
    insecure: bool = False,
    mapper: Mapper | None = None,
    sandbox_rate: float | None = DEFAULT_RATE,
) -> Preflight:
    """Read and map the input (no network), then ask Gong about its organizers."""
    target = Target(sandbox=sandbox, sandbox_rate=sandbox_rate, insecure=insecure)
    credentials = credentials_for(target)
    mapper = mapper or Mapper.from_config(cfg)
    triage = Triage(mapper)
    with read_input(cfg, input_path, mapper, sheet=sheet) as raws:
        organizers = collect_organizers(raws, triage)
    report = Preflight(organizers, triage.counts)
    async with open_session(cfg, target, credentials=credentials, connections=1) as session:
        await ask_gong(report, session.client, session.gate, session.cfg,
                       quota=None if sandbox else session.quota)
    return report
