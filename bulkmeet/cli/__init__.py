"""The command line: the only place that prints, draws progress and chooses exit codes.

`common` holds the click group; each module below adds its commands to it.
"""

from . import init as _init  # noqa: F401  (registers init)
from . import retry as _retry  # noqa: F401  (registers retry)
from . import run as _run  # noqa: F401  (registers run, sandbox)
from . import state as _state  # noqa: F401  (registers state import, state show)
from . import sync as _sync  # noqa: F401  (registers plan, sync, undo)
from . import validate as _validate  # noqa: F401  (registers validate, check)
from .common import main

__all__ = ["main"]
