"""One decision per file for its text encoding, made before any row is read.

`decide_encoding` settles which codec a CSV or JSONL file is read with, and checks that the
whole file decodes with it, streaming it once in bounded chunks: UTF-8 (the default; a BOM is
dropped), UTF-8 because the file starts with a UTF-8 byte-order mark (it wins over a configured
codec that says otherwise, with a warning: reading such a file as cp1252 gives "ChloÃ© Dubois"),
or the configured codec. A file that does not decode is one InputError naming the first bad
byte's line and what to set; no row of it is sent. Without this, rows were judged one by one:
the ASCII rows of a cp1252 file would be sent and the others refused, each with the hint.

The decision for a file (by path, size and modification time) is kept, so the estimate, the
run and the progress count do not each decode it again, and a warning is said once. stdin and
named pipes cannot be read twice: they are decoded as they come, and an undecodable record
there is that row's error.
"""

from __future__ import annotations

import codecs
import os
import stat
from dataclasses import dataclass
from typing import BinaryIO, Final, NoReturn

from ..errors import InputError
from .sources import _shown, _text_codec

CHUNK: Final = 1 << 20  # bytes decoded at a time: memory stays bounded whatever the file size
EXCEL_HINT: Final = ("if the file was saved by Excel on Windows, set `encoding: cp1252` in the "
                     "config (or pass --encoding cp1252)")


@dataclass(frozen=True, slots=True)
class Decision:
    """The codec a file is read with, and what to tell the user about it (or None)."""

    codec: str
    warning: str | None = None


_decided: dict[tuple[str, int, int, str], Decision] = {}


def decide_encoding(path: str, encoding: str, *, name: str | None = None) -> Decision:
    """The codec to read the file at `path` with, given the configured `encoding`; raises
    InputError when the file does not decode with it (or cannot be opened). `name` is how
    messages call the file (its path by default)."""
    name = path if name is None else name
    configured = _text_codec(encoding)
    try:
        st = os.stat(path)
    except OSError:
        return Decision(configured)  # the reader says what is wrong with it
    if not stat.S_ISREG(st.st_mode):
        return Decision(configured)  # a pipe would be used up: decoded as it comes, as stdin
    key = (os.path.abspath(path), st.st_size, st.st_mtime_ns, configured)
    decision = _decided.get(key)
    if decision is not None:
        return Decision(decision.codec)  # its warning was said the first time
    decision = _decide(path, name, configured)
    if len(_decided) > 64:
        _decided.clear()
    _decided[key] = decision
    return decision


def _decide(path: str, name: str, configured: str) -> Decision:
    try:
        with open(path, "rb") as f:
            head = f.read(len(codecs.BOM_UTF8))
            if head == codecs.BOM_UTF8:
                codec = "utf-8-sig"
                warning = None if configured == "utf-8-sig" else (
                    f"{name} starts with a UTF-8 byte-order mark: read as UTF-8, not "
                    f"{_shown(configured)} as `encoding` says")
            else:
                codec, warning = configured, None
                f.seek(0)
            # utf-8-sig's decoder would count error positions from after the BOM: the BOM is
            # skipped above and the rest checked as plain UTF-8.
            looks_utf8 = _check(f, name, "utf-8" if codec == "utf-8-sig" else codec)
    except OSError:
        return Decision(configured)
    if looks_utf8 and codec != "utf-8-sig":
        warning = (f"{name} decodes as UTF-8 and holds non-ASCII text, but `encoding` says "
                   f"{_shown(codec)}: if names come out like 'ChloÃ© Dubois', drop the "
                   "encoding setting")
    return Decision(codec, warning)


def _check(f: BinaryIO, name: str, codec: str) -> bool:
    """Decode the whole of `f` with `codec`; InputError at the first undecodable byte. Returns
    whether a codec other than UTF-8 was given a file that is non-ASCII UTF-8 (a likely
    mistake)."""
    decoder = codecs.getincrementaldecoder(codec)()
    # A second opinion only where it matters: a non-UTF-8 codec reading non-ASCII bytes.
    utf8 = (None if codec in ("utf-8-sig", "utf-8") else
            codecs.getincrementaldecoder("utf-8")())
    non_ascii = False
    lines = 1
    while True:
        chunk = f.read(CHUNK)
        final = not chunk
        pending = decoder.getstate()[0]  # an unfinished character from the chunk before
        try:
            decoder.decode(chunk, final)
        except UnicodeDecodeError as exc:
            _fail(name, codec, chunk, exc, lines, pending)
        if utf8 is not None:
            non_ascii = non_ascii or not chunk.isascii()
            try:
                utf8.decode(chunk, final)
            except UnicodeDecodeError:
                utf8 = None
        if final:
            return utf8 is not None and non_ascii
        lines += chunk.count(b"\n")


def _fail(name: str, codec: str, chunk: bytes, exc: UnicodeDecodeError, lines: int,
          pending: bytes) -> NoReturn:
    # exc.start is an offset into the bytes handed to the codec: the pending tail of the
    # previous chunk, then this one.
    data = pending + chunk
    start = max(0, min(exc.start, len(data) - 1))
    line = lines + data[:start].count(b"\n") - pending.count(b"\n")
    byte = data[start] if data else 0
    hint = EXCEL_HINT if codec in ("utf-8-sig", "utf-8") else (
        "set `encoding:` (or --encoding) to the codec the file was saved in")
    if line == 1 and data.startswith(b"PK\x03\x04"):  # a ZIP: an .xlsx workbook, not text
        hint = ("this is a ZIP file, as an Excel workbook is: read it with --format xlsx (or "
                "name it .xlsx)")
    raise InputError(
        f"{name}: line {line}: byte 0x{byte:02X} is not valid {_shown(codec)}, so the file "
        f"cannot be read as {_shown(codec)}. Nothing was sent: {hint}")
