"""The state store's behaviour, the same tests on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import orjson
import pytest

from bulkmeet.store import (
    AlreadyDone,
    BudgetSpent,
    Claimed,
    ClaimLost,
    HeldBy,
    IllegalTransition,
    NoMeeting,
    Outcome,
    RefusedSamePayload,
    State,
    Store,
    Target,
    Uncertain,
    open_store,
)
from tests.store_support import fresh_target, store_url_for

Body = Callable[[Store], Awaitable[None]]


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return store_url_for(request.param, tmp_path)


def run(url: str, body: Body, target: Target | None = None) -> None:
    async def main() -> None:
        async with await open_store(url, target or fresh_target()) as store:
            await body(store)
    asyncio.run(main())


async def _claim(s: Store, key: str, owner: str = "A", *, op: str = "create", digest: str = "d1",
                 lease: float = 30, resend: bool = False) -> object:
    return await s.claim(key, owner=owner, op=op, payload_digest=digest, lease=lease,
                         resend_uncertain=resend)


def test_claim_hold_settle_done(store_url: str) -> None:
    async def body(s: Store) -> None:
        assert await s.is_empty()
        assert await _claim(s, "k") == Claimed("k", "create", None, None)  # type: ignore[arg-type]
        held = await _claim(s, "k", "B")
        assert isinstance(held, HeldBy) and held.owner == "A" and 25 < held.seconds_left <= 30
        assert not await s.is_empty()
        rec = await s.settle("k", "A", Outcome.created("m1", organizer="o@x.com",
                                                       payload='{"title":"T"}'))
        assert (rec.state, rec.meeting_id, rec.payload, rec.exists) == (
            State.CREATED, "m1", {"title": "T"}, True)
        for owner in ("A", "B"):
            assert await _claim(s, "k", owner) == AlreadyDone("k", State.CREATED, "m1")
        got = await s.get("k")
        assert got is not None and got.organizer == "o@x.com" and got.owner is None
        events = [(h["event"], h["from_state"], h["to_state"]) for h in await s.history("k")]
        assert events == [("claim", None, "in_flight"), ("settle", "in_flight", "created")]
    run(store_url, body)


def test_settle_needs_the_claims_owner(store_url: str) -> None:
    async def body(s: Store) -> None:
        with pytest.raises(ClaimLost):
            await s.settle("nobody", "A", Outcome.created("m"))
        await _claim(s, "k")
        with pytest.raises(ClaimLost):
            await s.settle("k", "B", Outcome.created("m"))
        with pytest.raises(IllegalTransition):  # a create cannot end "updated"
            await s.settle("k", "A", Outcome.updated("m"))
        assert (await s.get("k")).state is State.IN_FLIGHT  # type: ignore[union-attr]
    run(store_url, body)


def test_refused_payload_never_resent_but_a_corrected_one_is(store_url: str) -> None:
    async def body(s: Store) -> None:
        await _claim(s, "k", digest="bad")
        errs = orjson.dumps(["title too long"]).decode()
        rec = await s.settle("k", "A", Outcome.refused(400, errs))
        assert (rec.state, rec.http_status, rec.errors) == (State.REFUSED, 400, ("title too long",))
        assert await _claim(s, "k", "B", digest="bad") == RefusedSamePayload("k", 400, errs)
        assert isinstance(await _claim(s, "k", "B", digest="fixed"), Claimed)
        # the corrected row meets a 429: released back to refused, still not the bad payload
        rec = await s.settle("k", "B", Outcome.not_created(429))
        assert rec.state is State.REFUSED
        assert isinstance(await _claim(s, "k", "C", digest="bad"), RefusedSamePayload)
        assert isinstance(await _claim(s, "k", "C", digest="fixed"), Claimed)
        rec = await s.settle("k", "C", Outcome.created("m9"))
        assert (rec.state, rec.refused_digest, rec.payload_digest) == (
            State.CREATED, None, "fixed")
    run(store_url, body)


def test_not_created_releases_the_claim(store_url: str) -> None:
    async def body(s: Store) -> None:
        await _claim(s, "k")
        assert (await s.settle("k", "A", Outcome.not_created(503))).state is State.NOT_CREATED
        assert isinstance(await _claim(s, "k", "B"), Claimed)
    run(store_url, body)


def test_expired_claim_is_uncertain_and_needs_resend(store_url: str) -> None:
    async def body(s: Store) -> None:
        await _claim(s, "k", lease=0.2)
        assert isinstance(await _claim(s, "k", "B"), HeldBy)
        await asyncio.sleep(0.3)
        got = await s.get("k")
        assert got is not None and got.state is State.UNCERTAIN  # observed, not yet written
        assert (await s.count()).get(State.UNCERTAIN) == 1
        assert await s.renew("A") == 0  # an expired claim is not revived
        assert await _claim(s, "k", "B") == Uncertain("k", "create", None)  # type: ignore[arg-type]
        assert isinstance(await _claim(s, "k", "B"), Uncertain)
        assert isinstance(await _claim(s, "k", "B", resend=True), Claimed)
        events = [h["event"] for h in await s.history("k")]
        assert events == ["claim", "lease_expired", "claim"]
    run(store_url, body)


def test_late_answer_of_an_expired_claim_is_kept(store_url: str) -> None:
    async def body(s: Store) -> None:
        await _claim(s, "k", lease=0.1)
        await asyncio.sleep(0.2)
        assert isinstance(await _claim(s, "k", "B"), Uncertain)  # written uncertain
        rec = await s.settle("k", "A", Outcome.created("m1"))  # the answer arrives after all
        assert rec.state is State.CREATED
        assert isinstance(await _claim(s, "k", "B", resend=True), AlreadyDone)
    run(store_url, body)


def test_renew_keeps_a_live_claim(store_url: str) -> None:
    async def body(s: Store) -> None:
        await _claim(s, "k1", lease=0.4)
        await _claim(s, "k2", lease=0.4)
        await _claim(s, "other", "B", lease=0.4)
        for _ in range(4):
            await asyncio.sleep(0.15)
            assert await s.renew("A") == 2
        assert isinstance(await _claim(s, "k1", "C"), HeldBy)
        assert (await s.get("other")).state is State.UNCERTAIN  # type: ignore[union-attr]
    run(store_url, body)


def test_update_and_delete_life_cycle(store_url: str) -> None:
    async def body(s: Store) -> None:
        assert await _claim(s, "k", op="update") == NoMeeting("k", None)
        assert await _claim(s, "k", op="delete") == NoMeeting("k", None)
        await _claim(s, "k", digest="v1")
        await s.settle("k", "A", Outcome.created("m1"))
        c = await _claim(s, "k", op="update", digest="v1")
        assert c == AlreadyDone("k", State.CREATED, "m1")  # Gong already has this payload
        c = await _claim(s, "k", op="update", digest="v2")
        assert isinstance(c, Claimed) and c.meeting_id == "m1" and c.previous is State.CREATED
        # a refused update never demotes the meeting, and that payload is not sent again
        assert (await s.settle("k", "A", Outcome.refused(400))).state is State.CREATED
        assert isinstance(await _claim(s, "k", op="update", digest="v2"), RefusedSamePayload)
        await _claim(s, "k", op="update", digest="v3")
        assert (await s.settle("k", "A", Outcome.not_created(429))).state is State.CREATED
        await _claim(s, "k", op="update", digest="v3")
        rec = await s.settle("k", "A", Outcome.updated("m1"))
        assert (rec.state, rec.payload_digest) == (State.UPDATED, "v3")
        # 404 to an update: the meeting was deleted by hand; the key can be created again
        await _claim(s, "k", op="update", digest="v4")
        assert (await s.settle("k", "A", Outcome.deleted(http_status=404))).state is State.DELETED
        assert isinstance(await _claim(s, "k", op="update", digest="v5"), NoMeeting)
        assert await _claim(s, "k", op="delete") == AlreadyDone("k", State.DELETED, "m1")
        assert isinstance(await _claim(s, "k", digest="v5"), Claimed)
        await s.settle("k", "A", Outcome.created("m2"))
        await _claim(s, "k", op="delete")
        assert (await s.settle("k", "A", Outcome.deleted())).state is State.DELETED
        assert await _claim(s, "k", op="delete") == AlreadyDone("k", State.DELETED, "m2")
    run(store_url, body)


def test_targets_never_read_each_others_state(store_url: str) -> None:
    # the same key id on another host (a sandbox): a shared database must not mix them
    real = fresh_target()
    sandbox = Target.for_access_key("http://127.0.0.1:8080", real.principal.split(":", 1)[1])

    async def body(s: Store) -> None:
        await _claim(s, "k")
        await s.settle("k", "A", Outcome.created("m1"))
        await s.spend("2026-01-01", 10)
        await s.take_slot(0.5)

    async def other(s: Store) -> None:
        assert await s.is_empty()
        assert await s.get("k") is None and await s.get_many(["k"]) == {}
        assert [r async for r in s.iter_states()] == []
        assert await s.spent("2026-01-01") == 0
        assert await s.take_slot(0.5) == 0.0  # the other target's pacing slot is not ours
        assert isinstance(await _claim(s, "k"), Claimed)

    run(store_url, body, real)
    run(store_url, other, sandbox)
    run(store_url, lambda s: _assert_state(s, "k", State.CREATED), real)


async def _assert_state(s: Store, key: str, state: State) -> None:
    got = await s.get(key)
    assert got is not None and got.state is state


def test_get_many_and_iter_states_page_through_every_key(store_url: str) -> None:
    async def body(s: Store) -> None:
        keys = [f"key-{i:05d}" for i in range(1234)]
        for i, key in enumerate(keys):
            await _claim(s, key)
            if i % 2:
                await s.settle(key, "A", Outcome.created(f"m{i}"))
        many = await s.get_many([*keys, "absent"])
        assert len(many) == 1234 and many["key-00001"].meeting_id == "m1"
        seen = [r.key async for r in s.iter_states()]
        assert seen == sorted(keys)
        created = [r async for r in s.iter_states(states=[State.CREATED])]
        assert len(created) == 617 and all(r.payload is None for r in created)
        assert await s.count() == {State.CREATED: 617, State.IN_FLIGHT: 617}
    run(store_url, body)


def test_take_slot_spaces_every_caller_and_a_pause_holds_everyone(store_url: str) -> None:
    async def body(s: Store) -> None:
        waits = [await s.take_slot(4.0) for _ in range(4)]
        assert waits[0] == 0.0
        for i, w in enumerate(waits[1:], start=1):  # 0.25 s apart, less the time the calls took
            assert 0.25 * i - 0.1 < w <= 0.25 * i + 1e-6
        now = await s.now()
        end = await s.pause_for(2.0)
        assert now + 2.0 <= end < now + 2.5
        assert await s.pause_for(0.5) == end  # a shorter pause never cuts a longer one
        assert await s.pause_until(end - 1) == end
        assert await s.take_slot(4.0) >= end - await s.now() - 0.05
        later = await s.pause_until(end + 3)
        assert later == end + 3
    run(store_url, body)


def test_daily_budget_is_counted_exactly(store_url: str) -> None:
    async def body(s: Store) -> None:
        assert [await s.spend("2026-03-01", 3) for _ in range(3)] == [1, 2, 3]
        with pytest.raises(BudgetSpent) as info:
            await s.spend("2026-03-01", 3)
        assert info.value.used == 3
        assert await s.spent("2026-03-01") == 3
        assert await s.spend("2026-03-02", 3, calls=2) == 2  # a new day starts at 0
        with pytest.raises(BudgetSpent):
            await s.spend("2026-03-02", 3, calls=2)  # would pass it: nothing counted
        assert await s.spent("2026-03-02") == 2
    run(store_url, body)


def test_concurrent_claims_in_one_process(store_url: str) -> None:
    async def body(s: Store) -> None:
        results = await asyncio.gather(*(_claim(s, "same", f"o{i}") for i in range(20)))
        assert sum(isinstance(r, Claimed) for r in results) == 1
    run(store_url, body)


def test_async_api_does_not_block_the_loop_on_a_lock(tmp_path: Path) -> None:
    """Another process holds SQLite's write lock for 0.5 s: the loop keeps ticking meanwhile."""
    import sqlite3

    path = tmp_path / "locked.sqlite3"
    url = f"sqlite:///{path}"

    async def main() -> None:
        async with await open_store(url, fresh_target()) as s:
            other = sqlite3.connect(path, isolation_level=None)
            other.execute("BEGIN IMMEDIATE")
            ticks = 0

            async def tick() -> None:
                nonlocal ticks
                while True:
                    await asyncio.sleep(0.01)
                    ticks += 1

            ticker = asyncio.create_task(tick())
            claim = asyncio.create_task(_claim(s, "k"))
            await asyncio.sleep(0.5)
            assert not claim.done()
            other.execute("COMMIT")
            other.close()
            assert isinstance(await claim, Claimed)
            ticker.cancel()
            assert ticks >= 20
    asyncio.run(main())


def test_open_store_urls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from bulkmeet.errors import ConfigError
    from bulkmeet.store import default_path

    monkeypatch.setenv("BULKMEET_STATE_DIR", str(tmp_path / "states"))
    target = fresh_target()

    async def main() -> None:
        async with await open_store(None, target) as s:
            assert s.location.endswith(f"{target.id}.sqlite3")
        assert default_path(target).exists()
        assert default_path(target).parent == tmp_path / "states"
        async with await open_store(tmp_path / "bare.db", target) as s:
            assert s.location == f"sqlite:///{tmp_path / 'bare.db'}"
        async with await open_store(tmp_path, target) as s:  # a folder: the default name in it
            assert s.location == f"sqlite:///{default_path(target, tmp_path)}"
        monkeypatch.chdir(tmp_path)
        async with await open_store("sqlite:///rel.db", target):
            pass
        assert (tmp_path / "rel.db").exists()
        for bad in ("mysql://x/y", "sqlite://rel.db"):
            with pytest.raises(ConfigError):
                await open_store(bad, target)
    asyncio.run(main())


def test_default_state_dir_follows_xdg(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from bulkmeet.store import state_dir

    monkeypatch.delenv("BULKMEET_STATE_DIR", raising=False)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    assert state_dir() == tmp_path / "bulkmeet"
    monkeypatch.delenv("XDG_STATE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert state_dir() == tmp_path / "home" / ".local" / "state" / "bulkmeet"


def test_wall_clock_lease_is_seconds(store_url: str) -> None:
    async def body(s: Store) -> None:
        before = time.time()
        await _claim(s, "k", lease=60)
        got = await s.get("k")
        assert got is not None and got.lease_until is not None
        assert before + 59 < got.lease_until < time.time() + 61
    run(store_url, body)


def test_organizer_checks_are_kept_per_day_and_per_target(store_url: str) -> None:
    """What integration/status said of an organizer is found again on the same day only, the
    last answer wins, and another target never reads it; more than one batch of emails."""
    target = fresh_target()
    emails = [f"rep{i}@seller.example" for i in range(1200)]

    async def body(s: Store) -> None:
        assert await s.organizers_checked("2026-12-03", emails) == {}
        await s.record_organizers("2026-12-03", {e: None for e in emails}
                                  | {"x@unknown.example": "not a Gong user"})
        got = await s.organizers_checked("2026-12-03", [*emails, "x@unknown.example", "new@x.y"])
        assert len(got) == 1201 and got["x@unknown.example"] == "not a Gong user"
        assert got["rep1199@seller.example"] is None
        assert await s.organizers_checked("2026-12-04", emails[:3]) == {}  # a new day
        await s.record_organizers("2026-12-04", {"x@unknown.example": None})  # added since
        assert await s.organizers_checked("2026-12-04", ["x@unknown.example"]) == {
            "x@unknown.example": None}

    async def other(s: Store) -> None:
        assert await s.organizers_checked("2026-12-04", ["x@unknown.example"]) == {}

    run(store_url, body, target)
    run(store_url, other, fresh_target())
