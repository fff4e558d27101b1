"""Import the loose files of earlier versions (the ledger, results files) into a store, once.

The files are read by their own readers (`ledger.read_ledger`, `results.read_results`), which
already fold each file into one state per key and skip torn or unreadable lines with a warning.
Each folded key becomes a fact merged by the store's merge table, so:
  * importing twice changes nothing (a fact already held is KEEP: no write, no history);
  * a key the store holds as created/updated is never demoted by a file that says otherwise;
  * a request left in flight in a file (`sending` without an outcome) imports as uncertain.
Memory: the readers hold one small entry per key while folding (a one-off cost of the import;
the store itself is never read whole).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ..ledger import LedgerEntry, read_ledger
from ..models import Status
from ..results import KeyState, other_targets, read_results
from .base import Store, dumps
from .transitions import Op, Row, State

CHUNK = 1000


@dataclass(slots=True)
class ImportReport:
    source: str
    keys: int = 0      # keys in the file with a state worth keeping
    changed: int = 0   # keys the store took (0 on a second import)
    warnings: list[str] = field(default_factory=list)


def ledger_fact(key: str, e: LedgerEntry) -> Row:
    if e.in_flight:
        op = Op(e.in_flight_op) if e.in_flight_op in ("create", "update", "delete") else Op.CREATE
        return Row(key, State.UNCERTAIN, meeting_id=e.meeting_id, organizer=e.organizer, op=op,
                   payload=dumps(e.payload), payload_digest=e.payload_hash)
    if e.deleted:
        return Row(key, State.DELETED, meeting_id=e.meeting_id, organizer=e.organizer,
                   op=Op.DELETE)
    if e.meeting_id is not None:
        return Row(key, State.CREATED, meeting_id=e.meeting_id, organizer=e.organizer,
                   payload=dumps(e.payload), payload_digest=e.payload_hash, op=Op.CREATE)
    return Row(key, State.NOT_CREATED, payload_digest=e.payload_hash)


def results_fact(key: str, s: KeyState) -> Row | None:
    """None for a key the file never sent (invalid, not_sent, duplicate, deferred)."""
    last = s.last
    if s.in_flight or (last is not None and last.status is Status.UNCERTAIN):
        return Row(key, State.UNCERTAIN, meeting_id=s.meeting_id, organizer=s.organizer,
                   op=Op.CREATE if s.meeting_id is None else None, payload=dumps(s.payload),
                   payload_digest=last.payload_hash if last else None)
    if s.meeting_id is not None:
        updated = last is not None and last.status is Status.UPDATED
        return Row(key, State.UPDATED if updated else State.CREATED, meeting_id=s.meeting_id,
                   organizer=s.organizer, op=Op.UPDATE if updated else Op.CREATE,
                   payload_digest=last.payload_hash if last else None)
    if last is None:
        return None
    if last.status is Status.DELETED:
        return Row(key, State.DELETED, meeting_id=last.meeting_id, organizer=s.organizer,
                   op=Op.DELETE)
    if last.status is Status.FAILED:
        code = last.http_status
        errors = dumps(list(last.errors)) if last.errors else None
        if code is not None and 400 <= code < 500 and code != 429:
            return Row(key, State.REFUSED, organizer=s.organizer, payload=dumps(s.payload),
                       payload_digest=last.payload_hash, refused_digest=last.payload_hash,
                       http_status=code, errors=errors, op=Op.CREATE)
        return Row(key, State.NOT_CREATED, organizer=s.organizer, http_status=code,
                   errors=errors, payload_digest=last.payload_hash)
    return None


async def import_ledger(store: Store, path: str | Path) -> ImportReport:
    entries, warnings = read_ledger(path)
    facts = (ledger_fact(k, e) for k, e in entries.items())
    return await _merge(store, f"import:ledger:{Path(path).name}", facts, warnings)


async def import_results(store: Store, path: str | Path, *,
                         target: str | None = None) -> ImportReport:
    """`target`: where this store's runs send (session.target_label); a file whose runs sent
    elsewhere (the sandbox, another company) is refused: its meetings are not this target's."""
    state = read_results(path)
    never, maybe = other_targets(state.targets, target)
    if never:
        from ..errors import UsageError

        raise UsageError(f"{path} holds the results of runs that sent to {', '.join(never)}, "
                         f"not to {target}: its meetings are not this store's; nothing was "
                         "imported")
    if maybe:
        state.warnings.append(f"{path} was written by runs that sent to {', '.join(maybe)}, "
                              f"this store is {target}'s: imported as the same company's "
                              "(another credential or host name of it)")
    facts = (results_fact(k, s) for k, s in state.keys.items())
    return await _merge(store, f"import:results:{Path(path).name}",
                        (f for f in facts if f is not None), state.warnings)


async def _merge(store: Store, source: str, facts: Iterable[Row],
                 warnings: list[str]) -> ImportReport:
    report = ImportReport(source, warnings=warnings)
    for chunk in _chunks(facts):
        report.keys += len(chunk)
        report.changed += await store.record(chunk, source=source)
    return report


def _chunks(facts: Iterable[Row]) -> Iterator[list[Row]]:
    chunk: list[Row] = []
    for fact in facts:
        chunk.append(fact)
        if len(chunk) == CHUNK:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
