"""Before a run sends: ask Gong once about organizers not checked today, so no create is spent on
one that is not a Gong user.

POST /v2/meetings/integration/status answers for up to 100 emails a call. The run asks about
the organizers of the rows it will send that the state store has no "yes" for today, when that
costs fewer calls than those organizers have rows (a run of one row for one new organizer sends
the row instead). Each call goes through the gate, the daily quota and the store's shared slot
like any request, and a 429 pauses every process of the store. The answers are kept in the store
for the day (a "no" is asked again next run: an admin may add the user meanwhile); an organizer
Gong says is not a user has every row of theirs recorded failed without a request (the workers'
OrganizerMemo, after the key's claim: a row the store knows created is skipped, not failed).
A stop (Ctrl-C) cuts the check short; a long 429 or a silent Gong ends it (the rows then find
out one by one).

Without a state store (the sandbox, a server on this machine, `state: off`) or with
`check_organizers: false` (`--no-check`) nothing is asked: the first create of each organizer
then goes out alone, and a 404 "No Gong user found" stops the rest of theirs.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Mapping, Sequence
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


# The check is a saving, not a step a run waits long for: a 429 past this, or an answer that
# does not come after a retry, and the rows find out one by one instead.
KEY_BATCH = 1000  # keys looked up in the store at once
CHECK_MAX_WAIT = 30.0
CHECK_ATTEMPTS = 2


async def check_organizers(session: Session, memo: OrganizerMemo,
                           organizers: Mapping[str, Sequence[str]],
                           tally: list[int] | None = None) -> None:
    """Tell `memo` of every organizer in `organizers` (email as the input first spells it ->
    the keys of the rows to create) that Gong says is not a user; rows whose key the store
    knows created already count for nothing (they will be skipped, not sent). Only a "yes" is
    kept across runs (an admin may add a user any time): the others are asked again.
    `tally[0]` counts the calls made, as they are made. Anything that stops the check (the
    quota, a refused credential, Gong not answering) leaves the run to find out row by row, as
    without a check."""
    store = session.store
    if store is None or not organizers:
        return
    quota = session.quota
    day = quota.day
    rows: dict[str, int] = {}
    spelt: dict[str, str] = {}
    for email, keys in organizers.items():
        rows[email.lower()] = rows.get(email.lower(), 0) + len(keys)
        spelt.setdefault(email.lower(), email)
    fine = {e for e, problem in (await store.organizers_checked(day, sorted(rows))).items()
            if problem is None}
    todo = [e for e in sorted(rows) if e not in fine]
    if todo:  # a row the store knows created is skipped: no check for it (a results file lost)
        asked = set(todo)
        for email, keys in organizers.items():
            if email.lower() in asked:
                for i in range(0, len(keys), KEY_BATCH):  # a batch at a time: flat memory
                    known = await store.get_many(keys[i:i + KEY_BATCH])
                    rows[email.lower()] -= sum(1 for rec in known.values() if rec.exists)
        todo = [e for e in todo if rows[e] > 0]
    if not worth_asking(len(todo), sum(rows[e] for e in todo)):
        return
    report = Preflight([Organizer(spelt[e]) for e in todo], Counter())

    async def shared_slot() -> None:
        if tally is not None:
            tally[0] = report.requests + 1
        if quota.path is not None:
            await store.spend(quota.day, quota.budget)
        rate = session.gate.effective_rate
        if rate is not None:
            wait = await store.take_slot(rate * (1 - SHARED_PACING_MARGIN))
            if wait > 0:
                await asyncio.sleep(wait)

    cfg = session.cfg.replace(max_wait=min(session.cfg.max_wait, CHECK_MAX_WAIT),
                              max_attempts=min(session.cfg.max_attempts, CHECK_ATTEMPTS))
    try:
        await ask_gong(report, session.client, session.gate, cfg, quota=quota,
                       before_call=shared_slot, on_pause=store.pause_for)
    except (AuthError, QuotaExhausted) as exc:
        log.warning("organizers not checked before sending (%s)", exc, extra={"event": "check"})
    finally:
        if tally is not None:
            tally[0] = report.requests
    answers = {o.email.lower(): _problem(o) for o in report.organizers if o.exists is not None}
    if answers:
        await store.record_organizers(day, answers)
    if report.error is not None:
        log.warning("some organizers were not checked before sending: %s", report.error,
                    extra={"event": "check"})
    refused = sorted(e for e, problem in answers.items()
                     if problem is not None and problem.startswith(NOT_A_USER))
    for email in refused:
        memo.refuse_checked(email, answers[email] or NOT_A_USER)
    if refused:
        n = sum(rows[e] for e in refused)
        shown = ", ".join(spelt[e] for e in refused[:5]) + (
            f" and {len(refused) - 5} more" if len(refused) > 5 else "")
        log.warning("not a Gong user, by integration/status: %s (%s); %s of theirs will not "
                    "be sent", plural(len(refused), "organizer"), shown, plural(n, "row"),
                    extra={"event": "check"})


def _problem(o: Organizer) -> str | None:
    if o.ok:
        return None
    what = NOT_A_USER if o.exists is False else "integration not valid"
    return f"{what}: {o.error}" if o.error else what

