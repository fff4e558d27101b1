"""The results file: an append-only journal, one line per event, flushed as it is written.

Each row gets a `sending` line just before each request and exactly one final line per run
(created, invalid, failed, not_sent, duplicate, uncertain or deferred). The last final line of a
key is that row's outcome; `read_results` folds a file into exactly that, and tolerates a torn
last line (a process killed mid-write).

JSONL by default; CSV when the path ends in .csv. Cells of the CSV that a spreadsheet would run
as a formula are neutralised with a leading apostrophe (OWASP "CSV injection"), and read back
without it; the JSONL keeps every value as it is.
"""

from __future__ import annotations

import csv
import errno
import io
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import orjson

from .errors import InputError, JournalError
from .models import FINAL_STATUSES, RESULT_FIELDS, Record, Row, Status

CSV_FIELDS = (*RESULT_FIELDS, "payload")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_SENDING, _ANSWERED = Status.SENDING.value, Status.ANSWERED.value


_second: list[Any] = [-1, ""]  # the last whole second formatted, reused within that second


def now_iso() -> str:
    """UTC now as 2026-11-25T12:00:00.123Z. Every journal line has one, so the formatted second
    is kept (a tenth of the cost of formatting a datetime each time)."""
    t = time.time()
    sec = int(t)
    if sec != _second[0]:
        _second[0], _second[1] = sec, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec))
    return f"{_second[1]}.{int((t - sec) * 1000):03d}Z"


def neutralise(cell: str) -> str:
    """Make a CSV cell inert for spreadsheets: a formula-looking cell gets a leading apostrophe."""
    if cell.startswith(_FORMULA_START) or cell.startswith("'"):
        return "'" + cell
    return cell


def unneutralise(cell: str) -> str:
    if cell.startswith("'") and cell[1:].startswith((*_FORMULA_START, "'")):
        return cell[1:]
    return cell


def is_csv(path: str | Path) -> bool:
    return str(path).lower().endswith(".csv")


class ResultsWriter:
    """Appends entries to the results file and flushes each one, so a finished row is on disk
    even if the process is killed right after."""

    def __init__(self, path: str | Path, *, fresh: bool = False,
                 target: str | None = None) -> None:
        self.path = Path(path)
        # Where this run sends (a label: host and key id, or "sandbox"; never a secret). Kept on
        # every `sending` entry of a JSONL file, so a resume can tell whose results these are.
        self.target = target
        self._csv = is_csv(path)
        existed = self.path.exists() and self.path.stat().st_size > 0 and not fresh
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | (os.O_TRUNC if fresh else 0)
        try:
            # A raw O_APPEND descriptor: each entry is one write(2) of the whole line, nothing
            # is buffered in this process, so a kill right after still leaves the line on disk.
            self._fd: int | None = os.open(self.path, flags | getattr(os, "O_CLOEXEC", 0), 0o644)
        except OSError as exc:
            raise InputError(f"cannot write results file {path}: {exc.strerror or exc}") from None
        self._buf = io.StringIO()
        self._writer = csv.writer(self._buf, lineterminator="\r\n") if self._csv else None
        self.finals = 0
        self.error: JournalError | None = None  # the first write that failed
        try:
            if existed:
                self._repair_torn_tail()
            if self._writer is not None and not existed:
                self._writer.writerow(CSV_FIELDS)
                self._write_line(self._take_csv())
        except BaseException:
            os.close(self._fd)
            self._fd = None
            raise

    def _repair_torn_tail(self) -> None:
        """Cut a torn last entry (the process killed mid-write) back to the last whole one.

        Appending after it would glue the next entry onto it, and in a CSV a torn quoted cell
        would swallow every later line. read_results already warned about it.
        """
        good = _complete_length(self.path, self._csv)
        if good < self.path.stat().st_size:
            os.truncate(self.path, good)

    def answered(self, row: Row, http_status: int | None) -> None:
        """Gong answered and created nothing (429, 5xx): the `sending` before it is settled, so
        a resume after a crash here does not call the row uncertain."""
        self._emit({"line": row.line, "key": row.key, "status": _ANSWERED,
                    "httpStatus": http_status, "finishedAt": now_iso()})

    def sending(self, row: Row, attempt: int, payload_hash: str) -> None:
        data = {
            "line": row.line,
            "key": row.key,
            "status": _SENDING,
            "attempts": attempt,
            "finishedAt": now_iso(),
            "payloadHash": payload_hash,
            "payload": row.payload,
        }
        if self.target is not None and self._writer is None:
            data["target"] = self.target
        self._emit(data)

    def record(self, record: Record, payload: dict[str, Any] | None = None) -> None:
        """A row's final record; `payload` is kept for rows never sent (so `retry` can)."""
        data = record.to_json()
        if data["finishedAt"] is None:
            data["finishedAt"] = now_iso()
        if payload is not None:
            data["payload"] = payload
        self._emit(data)
        self.finals += 1

    def _emit(self, data: dict[str, Any]) -> None:
        if self._writer is None:
            self._write_line(orjson.dumps(data, option=orjson.OPT_APPEND_NEWLINE))
            return
        self._writer.writerow([_csv_cell(name, data.get(name)) for name in CSV_FIELDS])
        self._write_line(self._take_csv())

    def _take_csv(self) -> bytes:
        text = self._buf.getvalue()
        self._buf.seek(0)
        self._buf.truncate()
        return text.encode("utf-8", errors="surrogateescape")

    def _write_line(self, line: bytes) -> None:
        """Append one entry whole, or raise JournalError leaving no part of it in the file."""
        fd = self._fd
        if fd is None:
            raise self._fail(OSError(errno.EBADF, "the results file is closed"))
        try:
            append_whole(fd, line)
        except OSError as exc:
            raise self._fail(exc) from None

    def _fail(self, exc: OSError) -> JournalError:
        error = JournalError(f"cannot write the results file {self.path}: "
                             f"{exc.strerror or exc}")
        if self.error is None:
            self.error = error
        return error

    def close(self) -> None:
        """Flush to the disk and close. Raises JournalError if the disk refuses (after closing)."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            os.fsync(fd)
        except OSError as exc:
            raise self._fail(exc) from None
        finally:
            os.close(fd)


def append_whole(fd: int, line: bytes) -> None:
    """Append `line` to the O_APPEND descriptor `fd` whole, or raise OSError leaving no part
    of it in the file.

    write(2) may write less than asked (a disk filling up): the rest is written in further
    calls. When one fails (ENOSPC, EIO), the part already written is cut off again, so the
    file never holds a torn entry that a resume would cut and so forget what it said.
    """
    done = 0
    try:
        done = os.write(fd, line)
        if done == len(line):  # the usual case: one write(2), nothing more to do
            return
        view = memoryview(line)
        while done < len(line):
            done += os.write(fd, view[done:])
    except OSError:
        if done:
            try:
                # O_APPEND: the file ends with the `done` bytes of this entry.
                os.ftruncate(fd, os.fstat(fd).st_size - done)
            except OSError:
                pass  # the resume cuts a torn last entry as after a kill
        raise


def _complete_length(path: Path, as_csv: bool) -> int:
    """The byte length of the file's whole entries (header included). Read as a stream: a
    million-row results file is ~600 MB, which must not be held to find its last entry."""
    if not as_csv:
        return _after_last_newline(path)
    # Walk the records with the csv module, counting the bytes each one used.
    good = used = 0
    ended = True
    with open(path, "rb") as f:

        def counted() -> Iterator[str]:
            nonlocal used, ended
            for raw in f:
                used += len(raw)
                ended = raw.endswith(b"\n")
                yield raw.decode("utf-8", errors="surrogateescape")

        reader = csv.reader(counted())
        try:
            for cells in reader:
                if not ((len(cells) == len(CSV_FIELDS) or good == 0) and ended):
                    break
                good = used
        except csv.Error:
            pass
    return good


def _after_last_newline(path: Path, block: int = 1 << 16) -> int:
    """The offset just past the file's last newline (0 if it has none), read from the end."""
    with open(path, "rb") as f:
        end = f.seek(0, os.SEEK_END)
        while end > 0:
            start = max(0, end - block)
            f.seek(start)
            found = f.read(end - start).rfind(b"\n")
            if found >= 0:
                return start + found + 1
            end = start
    return 0


def _csv_cell(name: str, value: Any) -> str:
    if value is None:
        return ""
    if name == "errors":
        return neutralise(" | ".join(value)) if value else ""
    if name == "payload":
        return neutralise(orjson.dumps(value).decode())
    if isinstance(value, str):
        return neutralise(value)
    return str(value)


@dataclass(slots=True)
class KeyState:
    """What the results file says of one key: its last final record, whether a request was
    started after it without an outcome (a `sending` line left dangling), and whether a meeting
    made for it still exists (created, updated or skipped with a meetingId, and not deleted
    since) — whatever the last record says, a key with a meeting is never created again."""

    last: Record | None = None
    in_flight: bool = False
    payload: dict[str, Any] | None = None  # the last one sent; dropped once a meeting exists
    sent_line: int | None = None
    meeting_id: str | None = None
    organizer: str | None = None  # of the last payload (what `undo` needs to delete)
    created: str | None = None  # the meeting a run into this file created (for `undo`)

    @property
    def exists(self) -> bool:
        return self.meeting_id is not None


@dataclass(slots=True)
class ResultsState:
    keys: dict[str, KeyState] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    targets: set[str] = field(default_factory=set)  # where the runs into this file sent

    def get(self, key: str) -> KeyState | None:
        return self.keys.get(key)

    def close(self) -> None:
        """Nothing to release (prior.DiskPrior holds a temporary file)."""



SANDBOX_TARGET = "sandbox"


def other_targets(targets: set[str], here: str | None) -> tuple[list[str], list[str]]:
    """Of the targets a results file names, (those that can never be `here`'s, those that may
    be): the sandbox's meetings are never a real company's (and the other way round); another
    host name or credential may be the same company (a rotated key, a refreshed token)."""
    if here is None:
        return [], []
    others = sorted(targets - {here})
    sandbox = here == SANDBOX_TARGET
    never = [t for t in others if (t == SANDBOX_TARGET) != sandbox]
    return never, [t for t in others if t not in never]


def iter_entries(path: str | Path, warnings: list[str]) -> Iterator[dict[str, Any]]:
    """Every entry of a results file, JSONL or CSV; a torn or unreadable line gives a warning."""
    p = Path(path)
    try:
        # errors="replace": a process killed mid-write can leave half a UTF-8 character at the
        # end; that line is then torn JSON (a warning), not a UnicodeDecodeError.
        f = open(p, encoding="utf-8", errors="replace", newline="")  # noqa: SIM115
    except OSError as exc:
        raise InputError(f"cannot read results file {path}: {exc.strerror or exc}") from None
    with f:
        if is_csv(p):
            yield from _iter_csv(f, p, warnings)
            return
        for n, text in enumerate(f, start=1):
            if not text.strip():
                continue
            try:
                data = orjson.loads(text)
            except orjson.JSONDecodeError:
                where = "last line" if not text.endswith("\n") else f"line {n}"
                warnings.append(f"{p}: {where} is incomplete or not JSON (a run killed mid-write?)"
                                "; it is ignored")
                continue
            if isinstance(data, dict) and "key" in data and "status" in data:
                yield data
            else:
                warnings.append(f"{p}: line {n} is not a results entry; it is ignored")


def _iter_csv(f: TextIO, p: Path, warnings: list[str]) -> Iterator[dict[str, Any]]:
    reader = csv.reader(f)
    header = next(reader, None)
    if header is None:
        return
    for cells in reader:
        if len(cells) != len(header):
            if cells:
                warnings.append(f"{p}: line {reader.line_num} has {len(cells)} cells, expected "
                                f"{len(header)} (a run killed mid-write?); it is ignored")
            continue
        raw = {h: unneutralise(c) for h, c in zip(header, cells, strict=True)}
        try:
            data: dict[str, Any] = {
                "line": int(raw["line"]),
                "key": raw["key"],
                "status": raw["status"],
                "httpStatus": int(raw["httpStatus"]) if raw.get("httpStatus") else None,
                "meetingId": raw.get("meetingId") or None,
                "meetingUrl": raw.get("meetingUrl") or None,
                "requestId": raw.get("requestId") or None,
                "errors": raw["errors"].split(" | ") if raw.get("errors") else [],
                "attempts": int(raw["attempts"]) if raw.get("attempts") else 0,
                "finishedAt": raw.get("finishedAt") or None,
                "payloadHash": raw.get("payloadHash") or None,
                "payload": orjson.loads(raw["payload"]) if raw.get("payload") else None,
            }
        except (KeyError, ValueError, orjson.JSONDecodeError):
            warnings.append(f"{p}: line {reader.line_num} cannot be read; it is ignored")
            continue
        yield data


def read_results(path: str | Path) -> ResultsState:
    """Fold a results file into the last known state of every key.

    A payload is kept only while its key has no meeting (`retry` may send it again); once one
    exists only its organizer stays (for `undo`). Resuming a 100k-row run held 152 MB when
    every payload was kept.
    """
    state = ResultsState()
    if not Path(path).exists():
        return state
    for data in iter_entries(path, state.warnings):
        key = str(data["key"])
        ks = state.keys.get(key)
        if ks is None:
            ks = state.keys[key] = KeyState()
        status = data["status"]
        payload = data.get("payload")
        if isinstance(payload, dict):
            ks.payload = payload
            organizer = payload.get("organizerEmail")
            # Interned: a few organizers are shared by many thousands of keys.
            ks.organizer = sys.intern(organizer) if isinstance(organizer, str) else None
        if status == Status.SENDING.value:
            target = data.get("target")
            if isinstance(target, str):
                state.targets.add(target)
            ks.in_flight = True
            ks.sent_line = int(data.get("line") or 0)
            continue
        if status == Status.ANSWERED.value:
            ks.in_flight = False
            continue
        try:
            rec = Record.from_json(data)
        except (KeyError, ValueError, TypeError):
            state.warnings.append(f"{path}: an entry for key {key!r} cannot be read; ignored")
            continue
        if rec.status in FINAL_STATUSES:
            ks.last = rec
            ks.in_flight = False
            if rec.status is Status.DELETED:
                ks.meeting_id = ks.created = None
            elif rec.status is Status.CREATED and rec.meeting_id:
                ks.meeting_id = ks.created = rec.meeting_id
                ks.payload = None
            elif rec.meeting_id and rec.status in HAS_MEETING:
                ks.meeting_id = rec.meeting_id
                ks.payload = None  # never sent again: a key with a meeting is skipped
    return state


HAS_MEETING = frozenset({Status.CREATED, Status.UPDATED, Status.SKIPPED})
