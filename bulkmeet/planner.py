"""Commands plan, the engine sends: the planned work of a run, made without any network.

A command turns its input into a stream of `Work`:

- `Send(row, digest)`: a request to make (create, update or delete), with its payload's digest;
- `Settled(record)`: a row this run records without a request (invalid, duplicate, left out by
  the filter, already in the ledger, cut off in flight by an earlier run);
- `Known(...)`: a row an earlier run settled (its meeting exists, or Gong refused this very
  payload, or it was recorded uncertain): counted, with no new record, no request.

`Planner` makes it for `run` (from input records), `retry` (from recorded payloads) and `sync`
and `undo` (from their plans), all through the same sorting (triage) and resume rules (decide).
The preflight estimate counts the same stream, so the run and its estimate cannot disagree.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field

from .config import Config
from .errors import InputError
from .ledger import LedgerEntry
from .mapping import Mapper
from .models import RawRow, Record, Row, Status, payload_digest, value_class
from .prior import Prior
from .reader import Rows, read_rows
from .results import ResultsState
from .triage import Decision, Triage, decide

log = logging.getLogger("bulkmeet")

IN_FLIGHT_BEFORE = ("a request for this row was in flight when an earlier run stopped; Gong may "
                    "have created it. Not sent again (check Gong, then use --resend-uncertain)")


@value_class
class Send:
    """A request to make: `row.op` says which (create, update, delete)."""

    row: Row
    digest: str


@value_class
class Settled:
    """A row recorded by this run without a request. `decision` is set when an earlier run's
    state decided it (the ledger holds it, or a request for it was cut off)."""

    record: Record
    decision: Decision | None = None


@value_class
class Known:
    """A row an earlier run settled: no record now, no request. `earlier` is its last record
    there, when the results file holds one."""

    line: int
    key: str
    decision: Decision
    earlier: Record | None = None


Work = Send | Settled | Known


class Planner:
    """Turns input records, or rows already mapped, into Work by the resume rules.

    `prior` is what the results file recorded in earlier runs, `ledger` the ledger's entries
    (key -> LedgerEntry), either may be empty. Call `close()` when done (the duplicate index may
    hold a temporary file). `quiet` leaves the mapping's warnings unsaid (the estimate: the
    run says them).
    """

    def __init__(self, mapper: Mapper | Callable[[RawRow], Row] | None = None, *,
                 prior: Prior | None = None,
                 ledger: Mapping[str, LedgerEntry] | None = None,
                 resend_uncertain: bool = False, quiet: bool = False) -> None:
        self._triage = Triage(mapper if mapper is not None else _unmapped)
        self._quiet = quiet
        self._prior = prior
        self._ledger = ledger
        self._resend_uncertain = resend_uncertain

    @property
    def triage(self) -> Triage:
        return self._triage

    def raw(self, raw: RawRow) -> Work:
        """Map one input record, sort it, and apply the resume rules."""
        verdict = self._triage(raw)
        for warning in () if self._quiet else verdict.warnings:
            log.warning(warning, extra={"event": "mapping", "line": raw.line})
        if verdict.record is not None:
            return Settled(verdict.record)
        return self._decide(verdict.row)

    def row(self, row: Row) -> Work:
        """Sort a row that is mapped already (retry, sync, undo) and apply the resume rules."""
        verdict = self._triage.sort(row)
        if verdict.record is not None:
            return Settled(verdict.record)
        return self._decide(row)

    def _decide(self, row: Row) -> Work:
        assert row.payload is not None
        digest = payload_digest(row.payload)
        ks = self._prior.get(row.key) if self._prior is not None else None
        led = self._ledger.get(row.key) if self._ledger is not None else None
        decision = decide(row, digest, ks, led, resend_uncertain=self._resend_uncertain)
        if decision is Decision.SEND:
            return Send(row, digest)
        if decision is Decision.IN_LEDGER:
            return Settled(Record(row.line, row.key, Status.SKIPPED,
                                  meeting_id=led.meeting_id if led else None,
                                  errors=("already created in an earlier run (ledger)",)),
                           decision)
        if decision is Decision.IN_FLIGHT:
            return Settled(Record(row.line, row.key, Status.UNCERTAIN, errors=(IN_FLIGHT_BEFORE,)),
                           decision)
        return Known(row.line, row.key, decision, ks.last if ks is not None else None)

    def plan(self, raws: Iterable[RawRow]) -> Iterator[Work]:
        for raw in raws:
            yield self.raw(raw)

    def plan_rows(self, rows: Iterable[Row]) -> Iterator[Work]:
        for row in rows:
            yield self.row(row)

    def close(self) -> None:
        self._triage.close()


def _unmapped(raw: RawRow) -> Row:  # pragma: no cover - a planner of rows maps nothing
    raise AssertionError("this planner takes rows already mapped")


ZONE_PEEK_ROWS = 50  # rows looked at for a start time that reads, to see if it has an offset


def read_input(cfg: Config, path: str, mapper: Mapper, *, sheet: str | None = None) -> Rows:
    """Open an input for `mapper`, and stop before any row is sent (one error, exit 2) when the
    header lacks a column the mapping reads (naming it and the columns there are), or when
    the file's times have no UTC offset and no zone is known (Mapper.zone_error)."""
    raws = read_rows(path, fmt=cfg.format, delimiter=cfg.delimiter, encoding=cfg.encoding,
                     sheet=sheet)
    try:
        mapper.check_header(raws.columns, path)
        if not mapper.zone_known:
            problem = mapper.zone_error(_peeked(raws, ZONE_PEEK_ROWS), path)
            if problem is not None:
                raise InputError(problem)
    except BaseException:
        raws.close()
        raise
    return raws


def _peeked(raws: Rows, limit: int) -> Iterator[RawRow]:
    """The first `limit` rows, each read only when asked for (a pipe's rows come as they are
    written: looking at the first must not wait for the fiftieth); all are handed out again."""
    for n in range(1, limit + 1):
        ahead = raws.peek(n)
        if len(ahead) < n:
            return
        yield ahead[-1]


# -- retry: the rows whose last outcome may pass now --------------------------------------

# Outcomes worth another try: the server failed, the wait was too long, or nothing was sent.
RETRYABLE = frozenset({Status.NOT_SENT, Status.DEFERRED})


def retryable(status: Status, http_status: int | None, request_id: str | None) -> bool:
    if status in RETRYABLE:
        return True
    # A redirect, or a 4xx that was not Gong's (no requestId: a proxy, a wrong base URL), is
    # no verdict on the row: it may pass once the endpoint is right.
    return status is Status.FAILED and (http_status is None or http_status >= 500
                                        or http_status == 429 or 300 <= http_status < 400
                                        or (http_status < 500 and request_id is None))



def retry_rows(state: ResultsState, *, resend_uncertain: bool = False) -> list[Row]:
    """The rows of a results file worth sending again, from their recorded payloads: 5xx,
    timeouts, 429 past the wait cap, not_sent, deferred (and uncertain when told so)."""
    rows = []
    for key, ks in state.keys.items():
        last = ks.last
        if last is None or ks.payload is None:
            continue
        if retryable(last.status, last.http_status, last.request_id) or (
                resend_uncertain and last.status is Status.UNCERTAIN):
            rows.append(Row(last.line, key, ks.payload))
    return rows


# -- the preflight estimate -----------------------------------------------------------------

PREFLIGHT_MAX_BYTES = 20 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Estimate:
    """What a run will do, known before its first request."""

    rows: int
    to_send: int
    invalid: int
    done_before: int
    seconds: float | None
    budget_left: int | None
    budget: int
    organizers: dict[str, list[str]] = field(default_factory=dict)  # organizer -> keys to create
    store: bool = False  # a state store has the last word: rows it knows done are skipped

    def lines(self) -> list[str]:
        rows = f"{self.rows} row{'' if self.rows == 1 else 's'}"
        upto = "up to " if self.store else ""
        out = [f"preflight: {rows}; {upto}{self.to_send} to send, {self.invalid} invalid, "
               f"{self.done_before} settled by earlier runs"
               + (" (the state store skips what it knows done)" if self.store else "")]
        if self.seconds is not None:
            out.append(f"  about {_duration(self.seconds)} at the set rate")
        if self.budget_left is not None:
            verdict = ("enough" if self.to_send <= self.budget_left else
                       f"not enough: about {self.to_send - self.budget_left} rows will be "
                       "deferred to the next day (exit 75)")
            out.append(f"  today's budget: {self.budget_left} of {self.budget} calls left, "
                       f"{verdict}")
        return out


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f}s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def count_work(work: Iterable[Work], organizers: dict[str, list[str]] | None = None,
               ) -> tuple[int, int, int, int]:
    """(rows, to send, invalid, settled by earlier runs) of a stream of work; `organizers`
    (when given) gets the keys to create of each organizer (as first spelt, one entry
    whatever the case)."""
    rows = to_send = invalid = done = 0
    spellings: dict[str, str] = {}
    for item in work:
        rows += 1
        if isinstance(item, Send):
            to_send += 1
            if organizers is not None and item.row.op == "create" and item.row.payload:
                email = str(item.row.payload.get("organizerEmail") or "")
                spelt = spellings.setdefault(email.lower(), email)  # the first spelling
                organizers.setdefault(spelt, []).append(item.row.key)
        elif isinstance(item, Known) or item.decision is not None:
            done += 1
        elif item.record.status is Status.INVALID:
            invalid += 1
    return rows, to_send, invalid, done


def small_file(path: str) -> bool:
    """A regular file small enough to read twice cheaply (once for the estimate)."""
    if path == "-":
        return False
    try:
        st = os.stat(path)
    except OSError:
        return False
    import stat

    return stat.S_ISREG(st.st_mode) and st.st_size <= PREFLIGHT_MAX_BYTES
