"""Organizers Gong does not know: no request for a row that cannot pass.

A create whose organizer Gong answers 404 "No Gong user found" fails; so will every other row
of that organizer in the run. `OrganizerMemo` remembers the refusal (with the line where Gong
gave it), and the workers record the organizer's remaining rows failed without a request.

So that rows sent at once (concurrency) do not each spend a request on an organizer not yet
heard of, the first create of each organizer goes out alone: the organizer's other rows wait
for its answer. One success (or any answer that is not that 404) lets them all go at once;
the wait costs one round trip per organizer, once.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from ..client import Outcome, Rejected, Succeeded

NO_USER = "no gong user found"


@dataclass(frozen=True, slots=True)
class Refusal:
    line: int
    message: str

    def error(self) -> str:
        if self.line == 0:  # found before sending (integration/status)
            return (f"not sent: Gong's integration/status says this organizer is "
                    f"{self.message}; every row of theirs would fail. Add them in Gong (or fix "
                    "the email), then `bulkmeet retry`")
        return (f"not sent: Gong refused this organizer on line {self.line} ({self.message}); "
                "every row of theirs would fail the same way. Add them in Gong (or fix the "
                "email), then `bulkmeet retry`")


def no_such_user(outcome: Outcome) -> str | None:
    """Gong's message when `outcome` is its 404 for an organizer it does not know, else None.
    A 404 without Gong's requestId (a proxy, a wrong endpoint) says nothing about the user."""
    if isinstance(outcome, Rejected) and outcome.http_status == 404 \
            and outcome.request_id is not None:
        for error in outcome.errors:
            if NO_USER in error.lower():
                return error
    return None


class OrganizerMemo:
    __slots__ = ("_refused", "_known", "_probing", "saved")

    def __init__(self) -> None:
        self.saved = 0  # rows recorded failed without a request
        self._refused: dict[str, Refusal] = {}
        self._known: set[str] = set()
        self._probing: dict[str, asyncio.Event] = {}

    async def admit(self, organizer: str) -> tuple[Refusal | None, bool]:
        """(Gong's refusal of `organizer`, if any; whether this row is the organizer's probe,
        which must call `release` once it is finished). Waits while a probe is out."""
        key = organizer.lower()
        while True:
            refusal = self._refused.get(key)
            if refusal is not None:
                return refusal, False
            if key in self._known:
                return None, False
            event = self._probing.get(key)
            if event is None:
                self._probing[key] = asyncio.Event()
                return None, True
            await event.wait()

    def answered(self, organizer: str, outcome: Outcome, line: int) -> None:
        """Gong answered a create of `organizer`'s (on `line`)."""
        key = organizer.lower()
        message = no_such_user(outcome)
        if message is not None:
            self._refused.setdefault(key, Refusal(line, message))
        elif isinstance(outcome, Succeeded):
            self._known.add(key)

    def refuse_checked(self, organizer: str, message: str) -> None:
        """Gong said before the run that `organizer` is not a user: no row of theirs is sent."""
        self._refused.setdefault(organizer.lower(), Refusal(0, message))

    def release(self, organizer: str) -> None:
        """The probe is finished: the organizer's waiting rows go on (one becomes the next
        probe when the answer settled nothing, such as a 5xx or a stop)."""
        event = self._probing.pop(organizer.lower(), None)
        if event is not None:
            event.set()

    @property
    def refused(self) -> int:
        return len(self._refused)
