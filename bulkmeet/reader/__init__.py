"""Rows from CSV / JSONL / XLSX (being split into a package; see csvfile.py for now)."""

from .csvfile import MAX_JSON_DEPTH as MAX_JSON_DEPTH
from .csvfile import MAX_RECORD_CHARS as MAX_RECORD_CHARS
from .csvfile import Format, Rows, detect_format, read_rows

__all__ = ["Format", "Rows", "detect_format", "read_rows"]
