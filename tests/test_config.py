"""The config: loading, validation messages that name key and file, and the example file."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml

from bulkmeet import config
from bulkmeet.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]


def test_config_example_documents_every_key_and_loads_to_the_defaults() -> None:
    """config.example.yaml names every Config key, and loading it gives the defaults."""
    data = yaml.safe_load((ROOT / "config.example.yaml").read_text())
    assert set(data) == {f.name for f in dataclasses.fields(config.Config)}
    assert config.load(ROOT / "config.example.yaml", env={}) == config.Config()


@pytest.mark.parametrize(("text", "message"), [
    ("rate: 0\n", "rate must be greater than 0"),
    ("rate: fast\n", "rate must be int or float"),
    ("concurrency: 2.5\n", "concurrency must be int"),
    ("timezone: Mars/Olympus\n", "not an IANA time zone"),
    ("format: xml\n", "format must be csv, jsonl or xlsx"),
    ("base_url: ftp://x\n", "base_url must be an http(s) URL"),
    ("[1, 2]\n", "the top level must be a mapping"),
    ("rate: [\n", "not valid YAML"),
    ("rate_auto: 1\n", "rate_auto must be bool"),
    ("reserve: 3\n", "reserve 3 must be at least 0 and leave part of the limit (3/s)"),
    ("reserve: -1\n", "must be at least 0"),
    ("reserve: 100%\n", "leave part of the limit"),
    ("reserve: lots\n", "reserve must be calls/s (e.g. 1) or a share"),
    ("reserve: [1]\n", "reserve must be calls/s"),
])
def test_bad_values_are_refused_naming_the_key_and_the_file(tmp_path: Path, text: str,
                                                            message: str) -> None:
    """Each bad value stops the load with a message naming the file and the key."""
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        config.load(path, env={})
    assert message in str(err.value)
    assert str(path) in str(err.value)


def test_environment_base_url_overrides_the_file(tmp_path: Path) -> None:
    """GONG_BASE_URL wins over base_url in the file."""
    path = tmp_path / "c.yaml"
    path.write_text("base_url: https://a.example\n")
    cfg = config.load(path, env={"GONG_BASE_URL": "https://us-1.api.gong.io"})
    assert cfg.base_url == "https://us-1.api.gong.io"


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    """A config path that does not exist is named in the error."""
    with pytest.raises(ConfigError, match="cannot read config file"):
        config.load(tmp_path / "nope.yaml", env={})


@pytest.mark.parametrize(("url", "message"), [
    ("https://", "has no host"),
    ("http:///v2/meetings", "has no host"),
    ("https://api.gong.io:99999", "port"),
    ("https://api.gong.io:0", "port"),
    ("https://key:hunter2pw@api.gong.io", "user name or password"),
    ("https://hunter2pw@api.gong.io", "user name or password"),
    ("https://api.gong.io/v2", "no path"),
    ("https://api.gong.io/?x=1", "no query"),
])
def test_a_base_url_that_cannot_work_is_refused_without_echoing_a_password(
        url: str, message: str) -> None:
    """An unusable base URL stops the load with one line naming the problem; a password in
    it is never shown."""
    with pytest.raises(ConfigError) as err:
        config.load(None, env={"GONG_BASE_URL": url})
    assert message in str(err.value)
    assert "hunter2pw" not in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("url", ["https://api.gong.io", "https://us-4.api.gong.io/",
                                 "http://127.0.0.1:8080", "http://[::1]:9"])
def test_usable_base_urls_load(url: str) -> None:
    """Gong's base URLs (no path, a trailing slash at most) and loopback ones load."""
    assert config.load(None, env={"GONG_BASE_URL": url}).base_url == url


@pytest.mark.parametrize(("text", "calls", "gate_rate"), [
    ("reserve: 1\n", 1.0, 2.0),
    ("rate: 4\nreserve: 25%\n", 1.0, 3.0),
    ("reserve: '10%'\nrate_auto: true\nrate_ceiling: 5\n", 0.5, 1.5),  # auto: half of 3
])
def test_the_reserve_is_calls_per_second_or_a_share_of_the_limit(
    tmp_path: Path, text: str, calls: float, gate_rate: float
) -> None:
    """A share is of the rate, or of rate_ceiling in adaptive mode; the gate paces below the
    limit by that much (adaptive mode starts at half the rate, below the ceiling)."""
    from bulkmeet.session import make_gate

    path = tmp_path / "c.yaml"
    path.write_text(text)
    cfg = config.load(path, env={})
    assert config.reserve_rate(cfg) == pytest.approx(calls)
    assert make_gate(cfg).rate == pytest.approx(gate_rate)


def test_the_reserve_flag_reaches_the_config(tmp_path: Path) -> None:
    """`bulkmeet run --reserve 3` at the default 3/s leaves nothing: refused before any call,
    naming --reserve's key."""
    from click.testing import CliRunner

    from bulkmeet.cli import main

    sheet = tmp_path / "in.csv"
    sheet.write_text("title\nx\n")
    result = CliRunner().invoke(main, ["run", str(sheet), "--reserve", "3", "--sandbox"])
    assert result.exit_code != 0
    assert "reserve '3' must be at least 0 and leave part of the limit (3/s)" in result.output


def test_a_bad_base_url_from_the_environment_names_the_variable(tmp_path: Path) -> None:
    """The value came from GONG_BASE_URL, not from the defaults or the config file: the error
    says so, so the user looks in the right place."""
    from bulkmeet.config import load

    cfg = tmp_path / "c.yaml"
    cfg.write_text("rate: 2\n", encoding="utf-8")
    for path in (None, cfg):
        with pytest.raises(ConfigError, match=r"^GONG_BASE_URL: base_url must be an http\(s\)"):
            load(path, env={"GONG_BASE_URL": "ftp://gong.example"})
    with pytest.raises(ConfigError, match=r"c\.yaml: base_url must be an http\(s\)"):
        cfg.write_text("base_url: ftp://gong.example\n", encoding="utf-8")
        load(cfg, env={})
