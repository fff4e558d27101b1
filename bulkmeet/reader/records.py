"""What every format's reader shares: the record size cap, the hand-off before the first row,
the no-rows check, and the header's column-name rules."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from ..errors import InputError
from ..models import RawRow

# One record (a CSV row with all its cells, a JSONL line) holds at most this many characters;
# a longer one is one invalid row, and reading goes on after it. csv's own field limit is
# raised to it, so no cell under the cap is cut (csv's default, 131,072, is not enough for long
# notes) and none over it ever reaches the csv module.
MAX_RECORD_CHARS = 4 * 1024 * 1024


@dataclass(slots=True)
class _Opened:
    """What a reader learns while opening its source, handed out before the first row."""

    columns: tuple[str, ...] | None = None
    delimiter: str | None = None


_READY = RawRow(0, None, "source opened")  # the first value every reader generator yields


def _not_empty(rows: Iterator[RawRow], message: str) -> Iterator[RawRow]:
    """`rows`, then InputError(message) at the end if there were none: an input without a
    row is a mistake (the wrong file, an export cut short), said once like an empty file.
    Raised at the end, not up front, so that read_rows returns on a pipe with just the header.
    """
    for row in rows:
        yield row
        break
    else:
        raise InputError(message)
    yield from rows


def _fields(n: int) -> str:
    return "1 field" if n == 1 else f"{n} fields"


def _column_names(cells: list[str], where: str) -> tuple[str, ...]:
    """Header cells stripped; trailing empty ones dropped (Excel writes them), no other gaps."""
    names = [cell.strip() for cell in cells]
    while names and not names[-1]:
        names.pop()
    seen: dict[str, int] = {}
    for number, cell in enumerate(names, 1):
        if not cell:
            raise InputError(f"{where}: header column {number} is empty; every column needs a name")
        if cell in seen:
            raise InputError(
                f"{where}: header column {number} {cell!r} repeats column {seen[cell]}; "
                "names must be unique"
            )
        seen[cell] = number
    return tuple(names)
