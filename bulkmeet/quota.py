"""The daily call budget, shared by every run against the same Gong host on the same day.

Gong allows 10,000 calls a day per company. Every request this tool sends, failures and 429s
included, is counted in a small JSON state file; the day turns at `reset` (HH:MM) in `tz`.
Precisely: day D begins at the first instant whose wall time in `tz`, on date D, is `reset` or
later. Where the clocks go forward past `reset` (02:30 on a spring-forward night) that is the
instant of the jump (03:00); where they go back and `reset` happens twice, the first time.
A run saves the count once a second (`save_every`, a task of its own) and at its end, so a
process killed with -9 can under-count by the calls of its last second.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime
from pathlib import Path
from zoneinfo import ZoneInfo

import orjson

from .config import Config
from .errors import ConfigError, QuotaExhausted

SAVE_EVERY = 1.0
log = logging.getLogger("bulkmeet")


def default_quota_path(base_url: str) -> Path:
    """Per host, under $XDG_STATE_HOME (or ~/.local/state): two companies never share a count."""
    from urllib.parse import urlsplit

    host = urlsplit(base_url).netloc.replace(":", "_") or "default"
    root = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local",
                                                            "state")
    return Path(root) / "bulkmeet" / f"quota-{host}.json"


def quota_for(cfg: Config, *, sandbox: bool = False) -> DailyQuota:
    """The day's budget for `cfg`'s host: its state file, or none for a sandbox run (a sandbox
    spends nothing of Gong's quota)."""
    path = None if sandbox else (
        Path(cfg.quota_file) if cfg.quota_file else default_quota_path(cfg.base_url))
    return DailyQuota(cfg.daily_budget, path, reset=cfg.quota_reset, tz=cfg.quota_timezone)


class DailyQuota:
    def __init__(self, budget: int, path: Path | None, *, reset: str = "00:00",
                 tz: str = "UTC", now: datetime | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.budget = budget
        self.path = path
        try:
            hh, mm = (int(x) for x in reset.split(":"))
            if not (0 <= hh < 24 and 0 <= mm < 60):
                raise ValueError
            self._reset = dtime(hh, mm)
        except ValueError:
            raise ConfigError(f"quota_reset must be HH:MM, not {reset!r}") from None
        try:
            self._tz = ZoneInfo(tz)
        except (ValueError, KeyError):
            raise ConfigError(f"quota_timezone {tz!r} is not an IANA time zone") from None
        self._clock = clock
        start = now or datetime.fromtimestamp(clock(), self._tz)
        self.day = self.day_of(start)
        self._turns_at = self.next_reset(start).timestamp()  # epoch seconds of the next reset
        self.used = 0
        self._unsaved = 0  # calls counted here and not yet added to the file
        if path is not None:
            # An unreadable state file counts as a fresh day rather than stopping work.
            self.used = self._read_used()

    def day_of(self, now: datetime | None = None) -> str:
        """The day `now` counts for (an ISO date): the latest day whose reset is not after it."""
        now = now or datetime.fromtimestamp(self._clock(), self._tz)
        return self._day(now).isoformat()

    def next_reset(self, now: datetime | None = None) -> datetime:
        """When the day after `now`'s begins, in the quota's zone."""
        now = now or datetime.fromtimestamp(self._clock(), self._tz)
        return self._turn(self._day(now) + timedelta(days=1))

    def _day(self, now: datetime) -> date:
        # The local date, or the day before it until its reset; a clock set back across
        # midnight can put the local date behind the day already begun: try the dates around it.
        local = now.astimezone(self._tz).date()
        t = now.timestamp()
        for day in (local + timedelta(days=1), local, local - timedelta(days=1)):
            if self._turn(day).timestamp() <= t:
                return day
        return local - timedelta(days=2)

    def _turn(self, day: date) -> datetime:
        """The instant `day` begins: the first one whose wall time on that date is the reset or
        later. A wall time that happens twice (a fold) is taken the first time; one that does not
        happen at all (a gap) gives the instant the clock jumps over it."""
        wall = datetime.combine(day, self._reset)
        first = wall.replace(tzinfo=self._tz)  # fold=0: the first of two, or before a gap's
        if first.astimezone(UTC).astimezone(self._tz).replace(tzinfo=None) == wall:
            return datetime.fromtimestamp(first.timestamp(), self._tz)
        # In a gap, the offset after it (fold=1) puts the wall time before the jump, the offset
        # before it (fold=0) after: the jump is the first second in between whose wall time is
        # the reset or later.
        lo = int(wall.replace(tzinfo=self._tz, fold=1).timestamp())
        hi = int(first.timestamp())
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if datetime.fromtimestamp(mid, self._tz).replace(tzinfo=None) >= wall:
                hi = mid
            else:
                lo = mid
        return datetime.fromtimestamp(hi, self._tz)

    @property
    def remaining(self) -> int:
        self._roll()
        return max(0, self.budget - self.used)

    def _roll(self) -> None:
        # Called for every request: one float comparison until the day turns.
        if self._clock() < self._turns_at:
            return
        self._try_save()  # what was spent before the reset belongs to that day
        now = datetime.fromtimestamp(self._clock(), self._tz)
        self.day, self.used, self._unsaved = self.day_of(now), 0, 0
        self._turns_at = self.next_reset(now).timestamp()

    def spend(self) -> None:
        """Count one call, or raise QuotaExhausted if the budget for today is spent."""
        self._roll()
        if self.used >= self.budget:
            self._try_save()
            raise QuotaExhausted(
                f"daily budget of {self.budget} calls is spent for {self.day}; "
                f"it resets at {self.next_reset().isoformat(timespec='minutes')}"
            )
        self.used += 1
        self._unsaved += 1

    def _try_save(self) -> None:
        """Save from inside spend(): a disk that refuses must not turn a call into a crash
        (a worker with a row in hand). The save at the end of the run says it."""
        try:
            self.save()
        except OSError as exc:
            log.debug("cannot save the daily quota to %s: %s", self.path, exc.strerror or exc,
                      extra={"event": "quota"})

    async def save_every(self, seconds: float = SAVE_EVERY) -> None:
        """Save now and then while a run goes on (a task of its own, cancelled at the end).

        Saving takes a lock and writes a file, which on a busy disk can hold the loop up for
        milliseconds. Done in spend(), that hold-up fell between a call's token and its send,
        and let the next call leave too soon after it; here it never does.
        """
        while True:
            await asyncio.sleep(seconds)
            try:
                self.save()
            except OSError as exc:  # a full disk must not stop the run; the next save retries
                # Not a warning each second: the save at the end of the run says it once.
                log.debug("cannot save the daily quota to %s: %s", self.path,
                          exc.strerror or exc, extra={"event": "quota"})

    def save(self) -> None:
        """Add this process's unsaved calls to the file's count, under a lock, so that runs at
        the same time add up instead of overwriting each other; learn theirs on the way."""
        if self.path is None or not self._unsaved:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_name(self.path.name + ".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            day, used = self._read_file()
            if day > self.day:
                # Another run has counted a newer day already: these calls belong to a day that
                # is over, and writing them would replace its count with an old one.
                self._unsaved = 0
                return
            total = (used if day == self.day else 0) + self._unsaved
            fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".quota-")
            with os.fdopen(fd, "wb") as f:
                f.write(orjson.dumps({"day": self.day, "used": total, "budget": self.budget}))
            os.replace(tmp, self.path)
        self.used = max(self.used, total)
        self._unsaved = 0

    def _read_file(self) -> tuple[str, int]:
        """The day the state file counts and its count; ("", 0) when it is missing or cannot be
        read (an unreadable file counts as a fresh day rather than stopping work)."""
        assert self.path is not None
        try:
            data = orjson.loads(self.path.read_bytes())
            day, used = data.get("day"), int(data["used"])
        except (OSError, orjson.JSONDecodeError, ValueError, TypeError, KeyError,
                AttributeError):
            return "", 0
        return (day, used) if isinstance(day, str) else ("", 0)

    def _read_used(self) -> int:
        """Today's count in the file; 0 when it is missing, unreadable or of another day."""
        day, used = self._read_file()
        return used if day == self.day else 0
