"""Shared test helpers: made-up input files, the OpenAPI contract, reading results back."""

from __future__ import annotations

import csv
from functools import cache
from pathlib import Path
from typing import Any

import orjson

from bulkmeet import contract

HEADER = ["startTime", "endTime", "title", "organizerEmail", "externalId", "invitees"]
# The built-in sandbox with its Gong-like rate limit off: for tests that are not about pacing.
SANDBOX = ["--sandbox", "--sandbox-rate", "0"]
CREDS = {"GONG_ACCESS_KEY": "test-key-7f3a", "GONG_ACCESS_KEY_SECRET": "test-secret-91bc"}


def meeting_row(i: int, *, organizer: str = "ana@seller.example", ext: str | None = None,
                invalid: bool = False) -> list[str]:
    day = 1 + i % 28
    start = f"2026-12-{day:02d}T{9 + i % 8:02d}:00:00Z"
    end = f"2026-12-{day:02d}T{9 + i % 8:02d}:30:00Z"
    if invalid:
        end = f"2026-12-{day:02d}T08:00:00Z"  # before the start
    return [start, end, f"Meeting {i}", organizer, ext or f"ext-{i}",
            f"Guest {i} <guest{i}@client.example>"]


def write_csv(path: Path, rows: list[list[str]]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(HEADER)
        w.writerows(rows)
    return path


def entries(path: Path) -> list[dict[str, Any]]:
    """Every entry of a JSONL results file, in order (a torn line is left out)."""
    out = []
    for line in path.read_bytes().splitlines():
        try:
            out.append(orjson.loads(line))
        except orjson.JSONDecodeError:
            continue
    return out


def finals(path: Path) -> list[dict[str, Any]]:
    return [e for e in entries(path) if e["status"] not in ("sending", "answered")]


def last_by_key(path: Path) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for e in finals(path):
        out[e["key"]] = e
    return out


@cache
def new_meeting_schema() -> dict[str, Any]:
    """NewMeetingRequest with its $refs resolved, for jsonschema."""
    spec = contract.spec()
    schemas = spec["components"]["schemas"]

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            if "$ref" in node:
                return resolve(schemas[node["$ref"].rsplit("/", 1)[-1]])
            return {k: resolve(v) for k, v in node.items() if k != "example"}
        if isinstance(node, list):
            return [resolve(v) for v in node]
        return node

    schema: dict[str, Any] = resolve(schemas["NewMeetingRequest"])
    schema["additionalProperties"] = False
    return schema
