"""The daily call budget, shared by every run against the same Gong host on the same day.

Gong allows 10,000 calls a day per company. Every request this tool sends, failures and 429s
included, is counted in a small JSON state file; the day turns at `reset` (HH:MM) in `tz`.
The count is saved at most once a second and on close, so a process killed with -9 can
under-count by the calls of its last second.
"""

from __future__ import annotations

import os
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import orjson

from .errors import ConfigError, QuotaExhausted

SAVE_EVERY = 1.0


def default_quota_path(base_url: str) -> Path:
    """Per host, under $XDG_STATE_HOME (or ~/.local/state): two companies never share a count."""
    from urllib.parse import urlsplit

    host = urlsplit(base_url).netloc.replace(":", "_") or "default"
    root = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local",
                                                            "state")
    return Path(root) / "bulkmeet" / f"quota-{host}.json"


class DailyQuota:
    def __init__(self, budget: int, path: Path | None, *, reset: str = "00:00",
                 tz: str = "UTC", now: datetime | None = None) -> None:
        self.budget = budget
        self.path = path
        try:
            hh, mm = (int(x) for x in reset.split(":"))
            self._reset = timedelta(hours=hh, minutes=mm)
            if not (0 <= hh < 24 and 0 <= mm < 60):
                raise ValueError
        except ValueError:
            raise ConfigError(f"quota_reset must be HH:MM, not {reset!r}") from None
        try:
            self._tz = ZoneInfo(tz)
        except (ValueError, KeyError):
            raise ConfigError(f"quota_timezone {tz!r} is not an IANA time zone") from None
        self.day = self.day_of(now)
        self.used = 0
        self._saved_at = 0.0
        self._dirty = False
        if path is not None and path.exists():
            try:
                data = orjson.loads(path.read_bytes())
                if data.get("day") == self.day:
                    self.used = int(data.get("used", 0))
            except (orjson.JSONDecodeError, ValueError, TypeError, AttributeError):
                pass  # an unreadable state file counts as a fresh day rather than stopping work

    def day_of(self, now: datetime | None = None) -> str:
        now = now or datetime.now(self._tz)
        local = now.astimezone(self._tz) - self._reset
        return local.date().isoformat()

    def next_reset(self, now: datetime | None = None) -> datetime:
        now = (now or datetime.now(self._tz)).astimezone(self._tz)
        start = datetime.combine((now - self._reset).date(), datetime.min.time(), self._tz)
        return start + self._reset + timedelta(days=1)

    @property
    def remaining(self) -> int:
        self._roll()
        return max(0, self.budget - self.used)

    def _roll(self) -> None:
        day = self.day_of()
        if day != self.day:
            self.day, self.used = day, 0

    def spend(self) -> None:
        """Count one call, or raise QuotaExhausted if the budget for today is spent."""
        self._roll()
        if self.used >= self.budget:
            self.save()
            raise QuotaExhausted(
                f"daily budget of {self.budget} calls is spent for {self.day}; "
                f"it resets at {self.next_reset().isoformat(timespec='minutes')}"
            )
        self.used += 1
        self._dirty = True
        if time.monotonic() - self._saved_at >= SAVE_EVERY:
            self.save()

    def save(self) -> None:
        if self.path is None or not self._dirty:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".quota-")
        with os.fdopen(fd, "wb") as f:
            f.write(orjson.dumps({"day": self.day, "used": self.used, "budget": self.budget}))
        os.replace(tmp, self.path)
        self._saved_at = time.monotonic()
        self._dirty = False
