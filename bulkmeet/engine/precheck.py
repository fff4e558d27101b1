"""Before a run sends: ask Gong once about organizers not checked today, so no create is spent on
one that is not a Gong user.

POST /v2/meetings/integration/status answers for up to 100 emails a call. The run asks about
the organizers of the rows it will send that the state store has no answer for today, when that
costs fewer calls than those organizers have rows (a run of one row for one new organizer sends
the row instead). Each call goes through the gate, the daily quota and the store's shared slot
like any request. The answers are kept in the store for the day; an organizer Gong says is not a
user has every row of theirs recorded failed without a request (the workers' OrganizerMemo).

Without a state store (the sandbox, a server on this machine, `state: off`) or with
`check_organizers: false` (`--no-check`) nothing is asked: the first create of each organizer
then goes out alone, and a 404 "No Gong user found" stops the rest of theirs.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Mapping
from typing import TYPE_CHECKING

from ..errors import AuthError, QuotaExhausted
from ..preflight import MAX_EMAILS_PER_CALL, Organizer, Preflight, ask_gong
from ..words import plural
from .workers import SHARED_PACING_MARGIN

if TYPE_CHECKING:
    from ..session import Session
    from .organizers import OrganizerMemo

log = logging.getLogger("bulkmeet")

NOT_A_USER = "not a Gong user"


def worth_asking(todo: int, rows: int) -> bool:
    """Whether asking about `todo` organizers (with `rows` rows to send between them) costs
    fewer calls than the rows it could save."""
    calls = -(-todo // MAX_EMAILS_PER_CALL)
    return todo > 0 and calls < rows


async def check_organizers(session: Session, memo: OrganizerMemo,
                           organizers: Mapping[str, int]) -> int:
    """Tell `memo` of every organizer in `organizers` (lower-cased email -> rows to send) that
    Gong says is not a user, asking about those the store has no answer for today. Returns the
    calls made. Anything that stops the check (the quota, a refused credential, Gong not
    answering) leaves the run to find out row by row, as without a check."""
    store = session.store
    if store is None or not organizers:
        return 0
    quota = session.quota
    day = quota.day
    emails = sorted(organizers)
    known = await store.organizers_checked(day, emails)
    todo = [e for e in emails if e not in known]
    calls = 0
    if worth_asking(len(todo), sum(organizers[e] for e in todo)):
        report = Preflight([Organizer(e) for e in todo], Counter())

        async def shared_slot() -> None:
            if quota.path is not None:
                await store.spend(quota.day, quota.budget)
            rate = session.gate.effective_rate
            if rate is not None:
                wait = await store.take_slot(rate * (1 - SHARED_PACING_MARGIN))
                if wait > 0:
                    await asyncio.sleep(wait)

        try:
            await ask_gong(report, session.client, session.gate, session.cfg, quota=quota,
                           before_call=shared_slot)
        except (AuthError, QuotaExhausted) as exc:
            log.warning("organizers not checked before sending (%s)", exc,
                        extra={"event": "check"})
        calls = report.requests
        answers = {o.email: _problem(o) for o in report.organizers if o.exists is not None}
        if answers:
            await store.record_organizers(day, answers)
            known.update(answers)
        if report.error is not None:
            log.warning("some organizers were not checked before sending: %s", report.error,
                        extra={"event": "check"})
    refused = sorted(e for e, problem in known.items()
                     if problem is not None and problem.startswith(NOT_A_USER))
    for email in refused:
        memo.refuse_checked(email, known[email] or NOT_A_USER)
    if refused:
        rows = sum(organizers[e] for e in refused)
        shown = ", ".join(refused[:5]) + (f" and {len(refused) - 5} more"
                                          if len(refused) > 5 else "")
        log.warning("not a Gong user, by integration/status: %s (%s); %s of theirs will not "
                    "be sent", plural(len(refused), "organizer"), shown, plural(rows, "row"),
                    extra={"event": "check"})
    return calls


def _problem(o: Organizer) -> str | None:
    if o.ok:
        return None
    what = NOT_A_USER if o.exists is False else "integration not valid"
    return f"{what}: {o.error}" if o.error else what

