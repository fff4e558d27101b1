"""Every test runs with its own state folder and no CI step summary, so no test touches the
quota file of the machine it runs on or appends to a real GitHub step summary."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _isolated_state(tmp_path_factory: pytest.TempPathFactory,
                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path_factory.mktemp("state")))
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    for name in ("GONG_BASE_URL", "GONG_ACCESS_KEY", "GONG_ACCESS_KEY_SECRET",
                 "GONG_BEARER_TOKEN"):
        monkeypatch.delenv(name, raising=False)
