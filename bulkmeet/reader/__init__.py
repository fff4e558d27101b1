"""Rows from CSV / JSONL / XLSX: sniff, decode, stream; each row keeps its line number.

`read_rows` opens the source and reads its header at call time, so every problem with the
source as a whole (missing file, unknown format or encoding, bad header, an .xlsx that is not
a zip) raises InputError there. After that a malformed record never raises: it becomes a
RawRow with `fields=None` and an `error` naming its line, and reading goes on; so does a record
longer than MAX_RECORD_CHARS (its text never becomes rows) and a JSONL object nested deeper than
MAX_JSON_DEPTH. The mid-stream InputErrors left: an input with no data row at all (a header-only
CSV or sheet, an empty JSONL), raised when reading reaches its end, and a multi-byte codec such
as utf-16 meeting a cut-off character.

Nothing reads the whole file: CSV and JSONL go line by line through the C parsers (csv,
orjson), XLSX through openpyxl's read-only streaming mode.

The package, one module per part: sources.py (format detection, opening, decoding, stdin),
records.py (what every format's reader shares), csvfile.py with csvlines.py (CSV, and keeping
its long records bounded), jsonl.py, xlsx.py, and rows.py (the Rows handle and read_rows).
"""

from .csvfile import DELIMITERS as DELIMITERS
from .csvfile import SNIFF_MAX_CHARS as SNIFF_MAX_CHARS
from .csvfile import SNIFF_MAX_LINES as SNIFF_MAX_LINES
from .jsonl import MAX_JSON_DEPTH as MAX_JSON_DEPTH
from .records import MAX_RECORD_CHARS as MAX_RECORD_CHARS
from .rows import Rows, read_rows
from .sources import EXTENSIONS as EXTENSIONS
from .sources import STDIN_NAME as STDIN_NAME
from .sources import Format, detect_format

__all__ = ["Format", "Rows", "detect_format", "read_rows"]
