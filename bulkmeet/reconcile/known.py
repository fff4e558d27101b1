"""What bulkmeet made in Gong, as the state store knows it, in the shape a sync plan compares the
input with (`plan.make_plan` takes key -> LedgerEntry, from the store or from an old ledger)."""

from __future__ import annotations

from ..config import Config
from ..errors import UsageError
from ..ledger import LedgerEntry
from ..store import KeyRecord, State


def entry_of(rec: KeyRecord) -> LedgerEntry:
    """One key of the store as a plan reads it: its meeting while it exists (or the one that
    was deleted), the payload Gong holds, and a request whose answer is not known."""
    deleted = rec.state is State.DELETED
    doubt = rec.state in (State.IN_FLIGHT, State.UNCERTAIN)
    exists = rec.exists
    return LedgerEntry(
        meeting_id=rec.meeting_id if exists or deleted else None,
        payload_hash=rec.payload_digest if exists else None,
        in_flight=doubt,
        in_flight_op=rec.op.value if doubt and rec.op is not None else None,
        deleted=deleted,
        organizer=rec.organizer if exists else None,
        payload=rec.payload if exists else None,
    )


async def known_entries(cfg: Config) -> dict[str, LedgerEntry]:
    """Every key the state store of `cfg`'s Gong (base URL and the credentials in the
    environment) knows. A sandbox trial of a sync plans against the real state too.

    Raises UsageError when that target keeps no store (a server on this machine uses none
    unless --state names one), StateMissing for an empty store with state_must_exist."""
    from ..session import Target, credentials_for, open_state, state_url

    target = Target()
    url = state_url(cfg, target)
    if url is None:
        raise UsageError(
            f"plan and sync compare the input with what bulkmeet made in Gong, which the state "
            f"store keeps; {cfg.base_url} keeps none unless told (a server on this machine, or "
            "`state: off`): give --state URL (or an old --ledger FILE)")
    store = await open_state(cfg, credentials_for(target), url)
    try:
        return {rec.key: entry_of(rec) async for rec in store.iter_states(with_payload=True)}
    finally:
        await store.close()
