"""What a sandbox saw and did: its request log and counters, and the meetings it holds."""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any, NamedTuple


class LoggedRequest(NamedTuple):
    """One API request as the sandbox saw it."""

    time: float  # settings.clock() when it arrived
    method: str
    path: str
    status: int | None  # None: dropped without an answer
    body: Any  # the parsed JSON body; None when absent or unparsable


@dataclass(eq=False)
class SandboxState:
    """What happened so far. Mutated only on the sandbox's event loop."""

    meetings: dict[str, dict[str, Any]] = field(default_factory=dict)
    created_by_external_id: Counter[str] = field(default_factory=Counter)
    log: deque[LoggedRequest] = field(default_factory=deque)
    by_status: Counter[int] = field(default_factory=Counter)
    requests: int = 0
    creates: int = 0
    updates: int = 0
    deletes: int = 0
    dropped: int = 0
    in_flight: int = 0
    max_in_flight: int = 0
    neighbour_rate: float = 0.0  # the neighbour's calls/s (0: none)
    neighbour_calls: int = 0  # calls the neighbour made ...
    neighbour_refused: int = 0  # ... and how many of them the limits refused

    @property
    def rate_limited(self) -> int:
        return self.by_status[429]

    def stats(self) -> dict[str, Any]:
        """The counters as JSON-ready values (what GET /_sandbox/stats answers)."""
        return {
            "requests": self.requests,
            "by_status": {str(code): n for code, n in sorted(self.by_status.items())},
            "creates": self.creates,
            "updates": self.updates,
            "deletes": self.deletes,
            "dropped": self.dropped,
            "rate_limited": self.rate_limited,
            "in_flight": self.in_flight,
            "max_in_flight": self.max_in_flight,
            "meetings": len(self.meetings),
            "neighbour": {
                "rate": self.neighbour_rate,
                "calls": self.neighbour_calls,
                "refused": self.neighbour_refused,
            },
            "duplicate_external_ids": {
                key: n for key, n in self.created_by_external_id.items() if n > 1
            },
        }
