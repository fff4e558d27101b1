"""The engine that sends planned work: bounded queue, N workers, row events (see core.py)."""

from .core import Engine
from .events import Journal, RowEvents
from .feed import READER_THREAD
from .stats import QuotaView, RunStats

__all__ = ["READER_THREAD", "Engine", "Journal", "QuotaView", "RowEvents", "RunStats"]
