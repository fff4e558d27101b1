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
