"""Importing the ledger and results files of earlier versions into a store, on both stores."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bulkmeet.ledger import Ledger
from bulkmeet.models import Record, Row, Status
from bulkmeet.results import ResultsWriter
from bulkmeet.store import (
    Claimed,
    Outcome,
    RefusedSamePayload,
    State,
    Store,
    Uncertain,
    open_store,
)
from bulkmeet.store.importer import import_ledger, import_results
from tests.store_support import fresh_target, store_url_for


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return store_url_for(request.param, tmp_path)


def _ledger(path: Path) -> None:
    led = Ledger.open(path)
    payload = {"title": "A", "organizerEmail": "o@x.com"}
    led.write("a", "sending", intent="create", payload_hash="ha")
    led.write("a", "created", meeting_id="m-a", payload_hash="ha", organizer="o@x.com",
              payload=payload)
    led.write("b", "sending", intent="create", payload_hash="hb")  # never answered
    led.write("c", "created", meeting_id="m-c", payload_hash="hc")
    led.write("c", "deleted", meeting_id="m-c")
    led.write("d", "sending", intent="create", payload_hash="hd")
    led.write("d", "not_created", payload_hash="hd")
    led.close()
    with open(path, "ab") as f:
        f.write(b'{"key": "e", "op": "crea')  # torn by a kill mid-write


def _results(path: Path) -> None:
    w = ResultsWriter(path)

    def row(key: str) -> Row:
        return Row(line=2, key=key, payload={"title": key, "organizerEmail": "o@x.com"})

    w.sending(row("r1"), 1, "h1")
    w.record(Record(2, "r1", Status.CREATED, 201, meeting_id="m-r1", payload_hash="h1"))
    w.record(Record(2, "r1", Status.INVALID, errors=("bad date",)))  # a later run's record
    w.sending(row("r2"), 1, "h2")
    w.record(Record(3, "r2", Status.FAILED, 400, errors=("title too long",),
                    payload_hash="h2"))
    w.sending(row("r3"), 1, "h3")  # dangling: the process died mid-request
    w.record(Record(5, "r4", Status.INVALID, errors=("no organizer",)))
    w.sending(row("r5"), 1, "h5")
    w.record(Record(6, "r5", Status.FAILED, 503, payload_hash="h5"))
    w.sending(row("held"), 1, "hh")
    w.record(Record(7, "held", Status.FAILED, 400, payload_hash="hh"))
    w.close()
    with open(path, "ab") as f:
        f.write(b'{"line": 9, "key": "r9", "sta')


async def _states(s: Store) -> dict[str, tuple[State, str | None]]:
    return {r.key: (r.state, r.meeting_id) async for r in s.iter_states()}


async def _history_len(s: Store, keys: list[str]) -> int:
    return sum([len(await s.history(k)) for k in keys])


def test_import_ledger_and_results(store_url: str, tmp_path: Path) -> None:
    ledger, results = tmp_path / "ledger.jsonl", tmp_path / "run.results.jsonl"
    _ledger(ledger)
    _results(results)

    async def main() -> None:
        async with await open_store(store_url, fresh_target()) as s:
            # this key is already created in the store; the file's later failure must not demote
            await s.claim("held", owner="A", op="create", payload_digest="hh", lease=30)
            await s.settle("held", "A", Outcome.created("m-held"))
            rep = await import_ledger(s, ledger)
            assert (rep.keys, rep.changed) == (4, 4)
            assert any("incomplete" in w for w in rep.warnings)  # the torn line, skipped
            rep = await import_results(s, results)
            assert (rep.keys, rep.changed) == (5, 4)  # r4 (invalid only) is no state
            assert any("incomplete" in w for w in rep.warnings)
            want = {
                "a": (State.CREATED, "m-a"), "b": (State.UNCERTAIN, None),
                "c": (State.DELETED, "m-c"), "d": (State.NOT_CREATED, None),
                "r1": (State.CREATED, "m-r1"), "r2": (State.REFUSED, None),
                "r3": (State.UNCERTAIN, None), "r5": (State.NOT_CREATED, None),
                "held": (State.CREATED, "m-held"),
            }
            assert await _states(s) == want
            a = await s.get("a")
            assert a is not None and a.payload == {"title": "A", "organizerEmail": "o@x.com"}
            assert a.organizer == "o@x.com" and a.payload_digest == "ha"
            # the rules hold after an import: the refused payload and the doubt stay guarded
            r2 = await s.claim("r2", owner="B", op="create", payload_digest="h2", lease=5)
            assert isinstance(r2, RefusedSamePayload)
            assert isinstance(await s.claim("r3", owner="B", op="create", payload_digest="h3",
                                            lease=5), Uncertain)
            keys = list(want)
            history = await _history_len(s, keys)
            # importing again changes nothing, not even the history
            assert (await import_ledger(s, ledger)).changed == 0
            assert (await import_results(s, results)).changed == 0
            assert await _states(s) == want
            assert await _history_len(s, keys) == history
            assert isinstance(await s.claim("d", owner="B", op="create", payload_digest="hd",
                                            lease=5), Claimed)
    asyncio.run(main())


def test_import_of_missing_file_is_empty(store_url: str, tmp_path: Path) -> None:
    async def main() -> None:
        async with await open_store(store_url, fresh_target()) as s:
            assert (await import_ledger(s, tmp_path / "none.jsonl")).keys == 0
            assert (await import_results(s, tmp_path / "none.jsonl")).keys == 0
            assert await s.is_empty()
    asyncio.run(main())
