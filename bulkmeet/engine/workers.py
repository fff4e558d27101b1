"""The workers: each takes a row from the queue and sends it until it has its final record,
through the gate and the quota, acting on each answer as `policy.next_step` says."""

from __future__ import annotations

import asyncio
import dataclasses
import logging

import orjson

from ..client import Lost, Outcome, Rejected, Succeeded
from ..errors import AuthError, JournalError, QuotaExhausted, Unreachable
from ..gate import GateClosed
from ..models import Record, Row, Status
from ..planner import Send
from ..policy import Again, Done, Finish, Pause, TooLong, next_step, no_answer
from ..store import AlreadyDone, Claimed, HeldBy, NoMeeting, RefusedSamePayload, Uncertain
from ..store import Outcome as StoreOutcome
from ..store import Row as StoreRow
from ..store import State as StoreState
from .state import RunState

log = logging.getLogger("bulkmeet")

# What a successful request of each op records.
_DONE = {"create": Status.CREATED, "update": Status.UPDATED, "delete": Status.DELETED}
CUT_IN_FLIGHT = ("the run was stopped while this request was in flight; Gong may have created "
                 "the meeting")


def _store_outcome(record: Record | None, row: Row, op: str) -> StoreOutcome:
    """The final record of a claimed request (`op`), as the state store takes it."""
    if record is None:  # no record at all (the journal refused it): nothing is known
        return StoreOutcome.uncertain("no final record was written")
    status = record.status
    if status is Status.CREATED and record.meeting_id:
        return StoreOutcome.created(record.meeting_id, organizer=_organizer(row),
                                    payload=_payload_text(row))
    if status is Status.UPDATED:
        return StoreOutcome.updated(record.meeting_id or row.meeting_id,
                                    organizer=_organizer(row), payload=_payload_text(row))
    if status is Status.DELETED:
        return StoreOutcome.deleted(http_status=record.http_status)
    if status is Status.FAILED and record.request_id is not None \
            and record.http_status is not None and 400 <= record.http_status < 500:
        return StoreOutcome.refused(record.http_status, orjson.dumps(list(record.errors)).decode())
    if status is Status.UNCERTAIN and op == "create":
        return StoreOutcome.uncertain("; ".join(record.errors) or None)
    # Nothing changed in Gong, or an update or delete whose answer was lost: sending the same
    # PUT or DELETE again is safe, so the key goes back to what it was before the claim.
    return StoreOutcome.not_created(record.http_status, "; ".join(record.errors) or None)


def _organizer(row: Row) -> str | None:
    return str((row.payload or {}).get("organizerEmail") or "") or None


def _payload_text(row: Row) -> str | None:
    """The payload as the store keeps it (JSON text): made only for what the store keeps."""
    return orjson.dumps(row.payload).decode() if row.payload is not None else None


def _store_fact(record: Record | None, row: Row, digest: str) -> StoreRow | None:
    """What an update or delete sent without a claim (the store knew no meeting for the key:
    it predates the store) tells the store, or None when it changed nothing."""
    if record is None:
        return None
    if record.status is Status.UPDATED:
        return StoreRow(row.key, StoreState.UPDATED, meeting_id=record.meeting_id
                        or row.meeting_id, organizer=_organizer(row),
                        payload=_payload_text(row), payload_digest=digest)
    if record.status is Status.DELETED:
        return StoreRow(row.key, StoreState.DELETED, meeting_id=row.meeting_id)
    return None


# Extra spacing when processes pace through the store (on top of rate_margin): their sends can
# each lag their slot by a few milliseconds on a busy machine. 3/s becomes 2.91/s.
SHARED_PACING_MARGIN = 0.01

RECREATED = ("the meeting was gone in Gong (deleted there; the update was answered 404): "
             "created again from the row")


def _gone(outcome: Outcome) -> bool:
    """Gong's own 404 to an update, about the meeting (not about an unknown organizer, which
    a create would meet too): no such meeting any more."""
    return (type(outcome) is Rejected and outcome.http_status == 404
            and outcome.request_id is not None
            and not any("user" in e.lower() for e in outcome.errors))


class Workers(RunState):
    """The worker stage of the engine."""

    async def _work(self, queue: asyncio.Queue[Send | None]) -> None:
        task = asyncio.current_task()
        assert task is not None
        while True:
            item = queue.get_nowait() if not queue.empty() else await queue.get()
            if item is None:
                return
            if self.stop.is_set() or self._drain is not None:
                self._finish_drained(item)
                continue
            self._busy.add(task)
            try:
                if item.row.op == "create":
                    await self._send_create(item)
                elif self.store is not None:
                    await self._send_claimed(item)
                else:
                    await self._send(item)
            finally:
                self._busy.discard(task)

    async def _send_create(self, item: Send) -> None:
        """A create, unless Gong refused its organizer earlier in this run; the first create
        of each organizer goes out alone (organizers.OrganizerMemo)."""
        row = item.row
        organizer = str((row.payload or {}).get("organizerEmail") or "")
        memo = self.organizers
        refusal, probe = await memo.admit(organizer)
        if refusal is not None:
            memo.saved += 1
            if self.store is not None:
                # The store may know the key created already (a results file lost, another
                # run): then the row is skipped, not failed. Claimed: let go after the record.
                if not await self._claim(item):
                    return
                self._finish(Record(row.line, row.key, Status.FAILED, errors=(refusal.error(),),
                                    payload_hash=item.digest), row, row.payload)
                await self._settle(item)
                return
            self._finish(Record(row.line, row.key, Status.FAILED, errors=(refusal.error(),),
                                payload_hash=item.digest), row, row.payload)
            return
        try:
            if self.store is None:
                await self._send(item)
            else:
                await self._send_claimed(item)
        finally:
            if probe:
                memo.release(organizer)

    async def _send_claimed(self, item: Send) -> None:
        """Send one row with a state store: claimed first (no other process, here or on
        another machine, can send the key while the claim stands), settled there after its
        final record. An update or delete of a key the store knows no meeting for (it predates
        the store) is sent as planned, and what it did is recorded there after."""
        if not await self._claim(item):
            return
        try:
            await self._send(item)
        finally:
            await self._settle(item)

    async def _claim(self, item: Send) -> bool:
        """Claim the row's key in the store for its op; a key that cannot be claimed gets its
        record. True: send it (claimed, or an update or delete the store cannot claim because
        it knows no meeting for the key)."""
        assert self.store is not None
        row = item.row
        change = row.op != "create"
        result = await self.store.claim(row.key, owner=self.owner, op=row.op,
                                        payload_digest=item.digest, lease=self.cfg.claim_lease,
                                        resend_uncertain=self.resend_uncertain)
        if isinstance(result, Claimed):
            self._claimed[row.key] = None
            if change and result.meeting_id not in (None, row.meeting_id):
                # The store follows another meeting for this key (made since this request was
                # planned): what it does to the older one must not move the key's state. The
                # claim is let go; the outcome is recorded as a fact, which the store keeps
                # only for the meeting it holds.
                try:
                    await self.store.settle(row.key, self.owner, StoreOutcome.not_created(
                        detail=f"the store follows meeting {result.meeting_id}; this "
                               f"{row.op} acts on {row.meeting_id}"))
                except Exception as exc:  # the claim runs out by itself: uncertain, retried
                    log.warning("line %d: the state store did not let go of this row's claim "
                                "(%s)", row.line, exc,
                                extra={"line": row.line, "key": row.key, "event": "state"})
                self._claim_op[row.key] = None
                return True
            self._claim_op[row.key] = row.op
            return True
        if change and isinstance(result, NoMeeting | Uncertain):
            # The store knows no meeting for the key (it predates the store), or holds a doubt
            # about it: an update or delete is safe to send, unclaimed (a claim let go would
            # lose what the doubt was about); what it did is recorded after as a fact, which
            # the store keeps only where it settles something (transitions.MERGE_TABLE).
            self._claimed[row.key] = None
            self._claim_op[row.key] = None
            return True
        if isinstance(result, AlreadyDone):
            self.stats.skipped += 1
            if row.op == "create":
                said = (f"already {result.state.value} (state store): sent by an earlier run, "
                        "or by another process sharing the store")
            elif row.op == "update":
                said = "unchanged: Gong holds this very payload already (state store)"
            else:
                said = "already deleted (state store)"
            record = Record(row.line, row.key, Status.SKIPPED, meeting_id=result.meeting_id,
                            errors=(said,), payload_hash=item.digest)
        elif isinstance(result, HeldBy):
            record = Record(row.line, row.key, Status.NOT_SENT, errors=(
                f"another run ({result.owner}) is sending this key now; not sent twice (run "
                "again later: it will be skipped if that run created it)",),
                payload_hash=item.digest)
        elif isinstance(result, Uncertain):
            record = Record(row.line, row.key, Status.UNCERTAIN, errors=(
                "the state store holds a request for this key whose answer was lost (a run "
                "stopped mid-request); Gong may have created it. Not sent again (check Gong, "
                "then use --resend-uncertain)",), payload_hash=item.digest)
        elif isinstance(result, RefusedSamePayload):
            record = Record(row.line, row.key, Status.FAILED, result.http_status, errors=(
                "Gong refused this very payload before (state store); fix the row to send it "
                "again",), payload_hash=item.digest)
        else:  # NoMeeting cannot answer a create
            record = Record(row.line, row.key, Status.NOT_SENT, errors=(str(result),),
                            payload_hash=item.digest)
        self._finish(record, None, row.payload if record.status is Status.NOT_SENT else None)
        return False

    async def _renew_claims(self) -> None:
        """Keep this engine's claims alive while it runs (a task of its own)."""
        assert self.store is not None
        while True:
            await asyncio.sleep(self.cfg.claim_lease / 3)
            try:
                await self.store.renew(self.owner)
            except Exception as exc:  # a passing store fault: the next renewal tries again
                log.warning("cannot renew this run's claims in the state store: %s", exc,
                            extra={"event": "state"})

    async def _settle(self, item: Send) -> None:
        """Tell the store how the claimed request ended (a lost or cut answer to a create:
        uncertain), or what an update or delete sent without a claim did."""
        assert self.store is not None
        row = item.row
        if row.key not in self._claimed:
            return  # settled already (an update turned into a create), or never claimed
        record = self._claimed.pop(row.key)
        op = self._claim_op.pop(row.key, "create")
        try:
            if op is None:
                fact = _store_fact(record, row, item.digest)
                if fact is not None:
                    await self.store.record([fact], source=row.op)
                return
            await self.store.settle(row.key, self.owner, _store_outcome(record, row, op))
        except Exception as exc:  # the claim ran out: the store calls the key uncertain
            log.warning("line %d: the state store did not take this row's outcome (%s); it "
                        "counts as uncertain there", row.line, exc,
                        extra={"line": row.line, "key": row.key, "event": "state"})

    async def _send(self, item: Send) -> None:
        """Send one row until it has its final record: through the gate and the quota, with
        retries. Runs once per row, so it allocates little (no closures, a direct path for
        the usual `Succeeded`)."""
        row = item.row
        attempts = failures = 0
        in_flight = recreated = False
        try:
            while True:
                try:
                    await self.gate.acquire()
                except GateClosed:
                    self._finish_drained(item, attempts=attempts)
                    return
                if self.stop.is_set():
                    self._finish_drained(item, attempts=attempts)
                    return
                try:
                    self.quota.spend()
                    if self.store is not None and self.quota.path is not None:
                        await self.store.spend(self.quota.day, self.quota.budget)
                except QuotaExhausted as exc:
                    self._start_drain(Status.DEFERRED, str(exc))
                    self._finish_drained(item, attempts=attempts)
                    return
                if self.store is not None and self.gate.effective_rate is not None:
                    # The company's slot, shared with every process that uses the store: the
                    # last step before the request, so nothing slow falls between the two;
                    # spaced a little wider than one process alone, for the scheduling delay
                    # between a slot and its send in two processes at once.
                    rate = self.gate.effective_rate * (1 - SHARED_PACING_MARGIN)
                    wait = await self.store.take_slot(rate)
                    if wait > 0:
                        await asyncio.sleep(wait)
                try:
                    self.events.sending(row, attempts + 1, item.digest)
                except JournalError as exc:
                    self._journal_failed(exc)
                    return  # not sent, and no record can be written: the resume sends it
                attempts += 1
                self._count_request()
                in_flight = True
                try:
                    outcome: Outcome = await self._call(row)
                except AuthError as exc:
                    in_flight = False
                    self.stats.auth_error = exc
                    self._start_drain(Status.NOT_SENT, f"not sent: the run stopped on {exc}")
                    self._finish(Record(row.line, row.key, Status.FAILED, exc.http_status,
                                        request_id=exc.request_id, errors=(str(exc),),
                                        attempts=attempts, payload_hash=item.digest), row)
                    return
                in_flight = False
                if type(outcome) is Succeeded:
                    self._done(item, outcome, attempts, recreated)
                    return
                if row.op == "update" and _gone(outcome):
                    # Gong says the meeting is gone (deleted by hand): the sheet still holds the
                    # row, so it is created again, and the record says so.
                    log.warning("line %d: meeting %s is gone in Gong (the update was answered "
                                "404); creating it again", row.line, row.meeting_id,
                                extra={"line": row.line, "key": row.key, "event": "recreate"})
                    try:
                        self.events.answered(row, 404)
                    except JournalError as exc:
                        self._journal_failed(exc)
                        return
                    gone = row
                    row = dataclasses.replace(row, op="create", meeting_id=None)
                    item = Send(row, item.digest)
                    recreated = True
                    if self.store is not None and not await self._reclaim(gone, item):
                        return
                    continue
                done, failures = await self._handle(item, outcome, attempts, failures)
                if done:
                    return
        except asyncio.CancelledError:
            # Cancelled at an await: the gate, the request or a back-off. A row is finished
            # only right before a return, so here it never is.
            if in_flight:
                self._finish(Record(row.line, row.key, Status.UNCERTAIN, errors=(CUT_IN_FLIGHT,),
                                    attempts=attempts, payload_hash=item.digest), row)
            else:
                self._finish_drained(item, attempts=attempts)
            raise

    async def _reclaim(self, gone: Row, item: Send) -> bool:
        """An update found its meeting gone: the store records the deletion, and the create
        that replaces it is claimed like any create. False: not claimed (the row has its
        record)."""
        assert self.store is not None
        op = self._claim_op.pop(gone.key, None)
        self._claimed.pop(gone.key, None)
        try:
            if op is None:
                await self.store.record([StoreRow(gone.key, StoreState.DELETED,
                                                  meeting_id=gone.meeting_id)], source="update")
            else:
                await self.store.settle(gone.key, self.owner, StoreOutcome.deleted(
                    http_status=404, detail="the update was answered 404: gone in Gong"))
        except Exception as exc:
            # Without the deletion in the store the create cannot be claimed safely: the row
            # is left for the next sync, which finds the meeting gone again.
            row = item.row
            self._finish(Record(row.line, row.key, Status.NOT_SENT, 404, errors=(
                f"meeting {gone.meeting_id} is gone in Gong (the update was answered 404), "
                f"and the state store did not take that ({exc}); not created again now: the "
                "next sync will",), payload_hash=item.digest), row, row.payload)
            return False
        return await self._claim(item)

    def _done(self, item: Send, outcome: Succeeded, attempts: int,
              recreated: bool = False) -> None:
        """The request did what it asked: created, updated or deleted."""
        self.breaker.answered(self.gate.paused_seconds)
        row = item.row
        notes = (RECREATED,) if recreated else ()
        if row.op == "create" and row.payload is not None:
            self.organizers.answered(str(row.payload.get("organizerEmail") or ""), outcome,
                                     row.line)
        self._finish(Record(row.line, row.key, _DONE[row.op], outcome.http_status,
                            outcome.meeting_id, outcome.meeting_url, outcome.request_id,
                            errors=notes, attempts=attempts, payload_hash=item.digest), row)

    async def _handle(self, item: Send, outcome: Outcome, attempts: int,
                      failures: int) -> tuple[bool, int]:
        """Act on an outcome other than Succeeded. Returns (row finished, failures so far)."""
        row = item.row
        extra = {"line": row.line, "key": row.key}
        step = next_step(outcome, failures=failures, cfg=self.cfg, rand=self.rng.random(),
                         resend_uncertain=self.resend_uncertain)
        if isinstance(outcome, Lost) and isinstance(step, Again) \
                and not self.breaker.may_resend_lost():
            step = Finish(Status.UNCERTAIN, outcome.http_status, outcome.request_id,
                         (outcome.message,), "uncertain")
        if isinstance(step, Done):
            self._done(item, step.outcome, attempts)
            return True, failures
        if isinstance(step, Pause | TooLong):
            finished = self._limited(item, step, attempts)
            if not finished and self.store is not None and isinstance(step, Pause):
                await self.store.pause_for(step.seconds)  # every process of the company waits
            return finished, failures
        if isinstance(step, Again):
            failures += 1
            if isinstance(outcome, Lost):
                log.warning("line %d: %s; sending again (--resend-uncertain)", row.line,
                            step.message, extra={**extra, "event": "retry"})
                return False, failures
            if not self._answered(item, outcome) or self._drain is not None:
                self._finish_drained(item, attempts=attempts)
                return True, failures
            log.info("line %d: %s; retry %d in %.2fs", row.line, step.message, failures,
                     step.delay, extra={**extra, "event": "retry"})
            await self._sleep_unless_stopped(step.delay)
            return False, failures
        # Finish
        if row.op == "create":
            self.organizers.answered(str(row.payload.get("organizerEmail") or "")
                                     if row.payload else "", outcome, row.line)
        if isinstance(outcome, Rejected):
            self.breaker.answered(self.gate.paused_seconds)  # the host is up, not limiting
        elif step.status is Status.FAILED:  # a 5xx or no connection, tried max_attempts times
            if not self._answered(item, outcome) or self._drain is not None:
                self._finish_drained(item, attempts=attempts)
                return True, failures
        if step.log == "failed" and isinstance(outcome, Rejected):
            log.error("line %d: Gong answered %d: %s", row.line, outcome.http_status,
                      "; ".join(outcome.errors), extra={**extra, "event": "failed"})
        elif step.log == "failed":
            log.error("line %d: giving up after %d attempts: %s", row.line, failures + 1,
                      "; ".join(step.errors), extra={**extra, "event": "failed"})
        else:
            log.error("line %d: %s; recorded uncertain", row.line, "; ".join(step.errors),
                      extra={**extra, "event": "uncertain"})
        self._finish(Record(row.line, row.key, step.status, step.http_status,
                            request_id=step.request_id, errors=step.errors, attempts=attempts,
                            payload_hash=item.digest), row)
        if step.status is Status.UNCERTAIN:
            self._silence(outcome, "did not answer")
        return True, failures

    def _answered(self, item: Send, outcome: Outcome) -> bool:
        """A 5xx or no connection: nothing was created. Settle the `sending` entries and count
        it for the breaker. False when the journal refused (the run is stopping)."""
        http_status = getattr(outcome, "http_status", None)
        try:
            self.events.answered(item.row, http_status)
        except JournalError as exc:
            self._journal_failed(exc)  # the `sending` stays: the resume calls it uncertain
            return False
        self._silence(outcome, "could not connect")
        return True

    def _silence(self, outcome: Outcome, what: str) -> None:
        """Count an answer (or its absence) for the breaker; stop the run past its bound."""
        if not no_answer(outcome):
            self.breaker.heard()
            return
        if self.breaker.silent() and self._drain is None:
            n, message = self.breaker.no_answer_count, getattr(outcome, "message", "")
            if what == "could not connect":
                error = Unreachable(f"cannot reach {self.client.base_url}: {n} requests in a "
                                    f"row could not connect (last: {message}); the rest is "
                                    "not sent")
                self._stop_run(error, "Gong cannot be reached")
            else:
                error = Unreachable(f"{self.client.base_url} did not answer {n} requests in a "
                                    f"row (last: {message}); the rest is not sent")
                self._stop_run(error, "Gong does not answer")

    def _limited(self, item: Send, step: Pause | TooLong, attempts: int) -> bool:
        """A 429. Returns True when the row is finished (the rest is deferred)."""
        row = item.row
        extra = {"line": row.line, "key": row.key}
        self.stats.rate_limited += 1
        self.breaker.heard()
        try:
            self.events.answered(row, 429)
        except JournalError as exc:
            self._journal_failed(exc)
        if self._drain is not None:
            self._finish_drained(item, attempts=attempts)
            return True
        if isinstance(step, TooLong):
            self._start_drain(Status.DEFERRED, (
                f"Gong asked to wait {step.seconds:.0f}s (Retry-After {step.raw!r}), more than "
                f"max_wait {self.cfg.max_wait:.0f}s; the rest is deferred"))
            self._finish_deferred(item, step.request_id, attempts)
            return True
        if step.defaulted:
            log.warning("429 without a usable Retry-After (%r); waiting the default %.1fs",
                        step.raw, step.seconds, extra={**extra, "event": "pause"})
        now = asyncio.get_running_loop().time()
        reason = self.breaker.limited(now, self.gate.paused_seconds, step.seconds,
                                      new_pause=self.gate.remaining_pause() <= 0,
                                      max_wait=self.cfg.max_wait)
        if reason is not None:
            self._start_drain(Status.DEFERRED, reason)
            self._finish_deferred(item, step.request_id, attempts)
            return True
        if self.gate.pause(step.seconds):
            self.breaker.pauses += 1
            log.warning("429: pausing every worker for %.1fs (Retry-After %r)", step.seconds,
                        step.raw, extra={**extra, "event": "pause", "seconds": step.seconds})
        return False  # a 429 is not a failed attempt

    def _finish_deferred(self, item: Send, request_id: str | None, attempts: int) -> None:
        row = item.row
        self._finish(Record(row.line, row.key, Status.DEFERRED, 429, request_id=request_id,
                            errors=(self.stats.stop_reason or "",), attempts=attempts,
                            payload_hash=item.digest), row)

    async def _call(self, row: Row) -> Outcome:
        assert row.payload is not None
        if row.op == "create":
            return await self.client.create_meeting(row.payload)
        assert row.meeting_id is not None, f"{row.op} needs a meeting id"
        if row.op == "update":
            return await self.client.update_meeting(row.meeting_id, row.payload)
        if row.op == "delete":
            outcome = await self.client.delete_meeting(
                row.meeting_id, str(row.payload.get("organizerEmail", "")))
            if (isinstance(outcome, Rejected) and outcome.http_status == 404
                    and outcome.request_id is not None):
                # Gong says it is already gone: the state asked for. A 404 without Gong's
                # requestId (a proxy, a wrong endpoint) says nothing about the meeting.
                return Succeeded(404, row.meeting_id, None, outcome.request_id)
            return outcome
        raise AssertionError(f"unknown op {row.op!r}")  # pragma: no cover

    async def _sleep_unless_stopped(self, seconds: float) -> None:
        """A back-off sleep, cut short when the run stops sending."""
        try:
            await asyncio.wait_for(self._wake.wait(), timeout=seconds)
        except TimeoutError:
            pass
