"""Gong's contract for the four /v2/meetings operations, shipped with the package.

``openapi-meetings.json`` is the /v2/meetings part of an OpenAPI 3.0.1 description of Gong API V2,
taken from the Apache-2.0 licensed repository cedricziel/gong-rs (file spec/openapi.json): only the
four meetings operations and the schemas they use. See NOTICE beside it. The sandbox follows it and
the tests validate what the client sends and what the sandbox answers against it.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any, cast

SPEC_FILE = "openapi-meetings.json"


@cache
def spec() -> dict[str, Any]:
    """The OpenAPI document, parsed once (callers must not change it)."""
    text = resources.files(__name__).joinpath(SPEC_FILE).read_text(encoding="utf-8")
    return cast(dict[str, Any], json.loads(text))
