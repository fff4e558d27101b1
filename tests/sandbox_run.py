"""Running the CLI in-process against a SandboxThread on a loopback port, counting the
requests the sandbox saw (server-side)."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from click.testing import CliRunner, Result

from bulkmeet.cli import main
from bulkmeet.sandbox import SandboxSettings, SandboxThread

from .helpers import CREDS


def run_against_sandbox(monkeypatch: pytest.MonkeyPatch, args: Sequence[str],
                        settings: SandboxSettings | None = None) -> tuple[Result, int]:
    """`bulkmeet ARGS` against a fresh sandbox; (the result, requests the sandbox received)."""
    for k, v in CREDS.items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("GONG_BEARER_TOKEN", raising=False)
    with SandboxThread(settings or SandboxSettings(rate=None)) as sb:
        monkeypatch.setenv("GONG_BASE_URL", sb.url)
        res = CliRunner().invoke(main, list(args))
        return res, sb.state.requests
