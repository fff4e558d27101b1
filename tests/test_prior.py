"""The resume state of a large results file is folded on disk (prior.DiskPrior): it must say of
every key what the in-memory fold (results.read_results) says, whatever the chunking."""

from __future__ import annotations

import random
from pathlib import Path

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import bulkmeet
import bulkmeet.prior
from bulkmeet.prior import DiskPrior, open_prior
from bulkmeet.results import ResultsState, read_results

from .helpers import CREDS, meeting_row, write_csv

EVENTS = ["sending", "answered", "created", "updated", "skipped", "deleted", "failed",
          "invalid", "uncertain", "not_sent", "duplicate", "deferred", "torn"]


def entry(key: str, event: str, n: int) -> bytes:
    if event == "torn":
        return b'{"line": 3, "key": "' + key.encode() + b'", "sta\n'
    data: dict[str, object] = {"line": n, "key": key, "status": event, "finishedAt": None}
    if event == "sending":
        data.update(attempts=1, payloadHash=f"h{n}", payload={"title": f"t{n}"},
                    target=f"host-{n % 2}")
    elif event in ("created", "updated", "skipped"):
        data.update(meetingId=f"m{n}" if n % 5 else None, meetingUrl=None)
    elif event == "failed":
        data.update(httpStatus=400, requestId=f"r{n}", errors=["bad"], payloadHash=f"h{n}")
    elif event == "not_sent":
        data.update(payload={"title": "kept for retry"}, errors=["stopped"])
    return orjson.dumps(data) + b"\n"


def same(disk: DiskPrior, memory: ResultsState) -> None:
    assert disk.keys == len(memory.keys)
    assert disk.targets == memory.targets
    assert disk.warnings == memory.warnings
    for key, ks in memory.keys.items():
        got = disk.get(key)
        assert got is not None, key
        assert (got.last, got.in_flight, got.exists, got.meeting_id) == \
               (ks.last, ks.in_flight, ks.exists, ks.meeting_id), key
    assert disk.get("no-such-key") is None


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 6), st.sampled_from(EVENTS)), max_size=80),
       st.integers(1, 5))
def test_the_disk_fold_says_what_the_memory_fold_says(tmp_path_factory: pytest.TempPathFactory,
                                                      events: list[tuple[int, str]],
                                                      chunk: int) -> None:
    path = tmp_path_factory.mktemp("prior") / "r.jsonl"
    path.write_bytes(b"".join(entry(f"k{k}", ev, n) for n, (k, ev) in enumerate(events, 1)))
    disk = DiskPrior.fold(path, chunk_keys=chunk)
    try:
        same(disk, read_results(path))
    finally:
        disk.close()


def test_a_large_file_is_folded_on_disk_and_agrees(tmp_path: Path) -> None:
    """Thousands of keys over many chunks, each key's events spread across them."""
    rng = random.Random(7)
    lines = []
    for n in range(20_000):
        lines.append(entry(f"key-{rng.randrange(3000)}", rng.choice(EVENTS[:-1]), n + 1))
    path = tmp_path / "r.jsonl"
    path.write_bytes(b"".join(lines))
    prior = open_prior(path, in_memory_bytes=1024)
    try:
        assert isinstance(prior, DiskPrior)
        same(prior, read_results(path))
    finally:
        prior.close()
    small = open_prior(path)  # under IN_MEMORY_BYTES: the dict
    assert isinstance(small, ResultsState)
    assert open_prior(tmp_path / "none.jsonl").get("key-1") is None


def test_a_resume_from_a_disk_folded_file_sends_only_what_is_left(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The whole run with the on-disk fold: rows done before are counted, not sent again; a
    row left in flight is uncertain; the rest are sent."""
    for k, v in CREDS.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.setattr(bulkmeet.prior, "IN_MEMORY_BYTES", 0)  # every file on disk
    src = write_csv(tmp_path / "in.csv", [meeting_row(i) for i in range(6)])
    first = bulkmeet.run(src, sandbox=True, sandbox_rate=0, concurrency=2)
    assert first.counts == {"created": 6} and first.requests == 6
    # Later rows join the sheet; one of them was left in flight by a killed run.
    src = write_csv(tmp_path / "in.csv", [meeting_row(i) for i in range(9)])
    with open(first.results, "ab") as f:
        f.write(orjson.dumps({"line": 9, "key": "ext-7", "status": "sending", "attempts": 1,
                              "payloadHash": "x", "payload": {},
                              "target": "sandbox"}) + b"\n")
    again = bulkmeet.run(src, sandbox=True, sandbox_rate=0, concurrency=2)
    assert again.skipped == 6
    assert again.counts == {"created": 2, "uncertain": 1}
    assert again.requests == 2


@pytest.mark.parametrize("block", [1, 2, 3, 7, 1 << 16])
def test_the_torn_tail_is_found_from_the_end_in_any_block_size(tmp_path: Path,
                                                               block: int) -> None:
    """A resume cuts a torn last entry back without reading the file whole (a million-row
    results file is ~600 MB): the offset after the last newline, whatever the block size."""
    from bulkmeet.results import _after_last_newline

    path = tmp_path / "r.jsonl"
    for text, want in [(b"", 0), (b"torn", 0), (b"a\n", 2), (b"a\nbc", 2),
                       (b"a\nb\n" + b"x" * 50, 4), (b"\n\n", 2)]:
        path.write_bytes(text)
        assert _after_last_newline(path, block) == want, (text, block)


@pytest.mark.parametrize("in_memory_bytes", [None, 0])
def test_a_tail_torn_inside_a_utf8_character_is_a_torn_line(tmp_path: Path,
                                                            in_memory_bytes: int | None) -> None:
    """A kill can cut a line inside a multi-byte character: the resume warns of a torn last
    line, as for any other cut, instead of failing on the decoding."""
    path = tmp_path / "r.jsonl"
    path.write_bytes(b'{"line":2,"key":"a","status":"created","meetingId":"1"}\n'
                     b'{"line":3,"key":"b","status":"failed","errors":["caf\xc3')
    prior = open_prior(path, in_memory_bytes=in_memory_bytes)
    try:
        a = prior.get("a")
        assert a is not None and a.exists and prior.get("b") is None
        assert any("last line is incomplete" in w for w in prior.warnings)
    finally:
        prior.close()
