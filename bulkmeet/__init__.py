"""bulkmeet: turn spreadsheet rows into Gong meetings."""

from .errors import AuthError, BulkmeetError, ConfigError, InputError, QuotaExhausted, UsageError
from .models import RawRow, Record, Row, Status

__version__ = "0.1.0"

__all__ = [
    "AuthError",
    "BulkmeetError",
    "ConfigError",
    "InputError",
    "QuotaExhausted",
    "RawRow",
    "Record",
    "Row",
    "Status",
    "UsageError",
    "__version__",
]
