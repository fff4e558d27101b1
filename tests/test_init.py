"""`bulkmeet init`: the commented example config, shipped inside the package, written where the
user asks; an existing file is kept unless --force."""

from __future__ import annotations

import tomllib
from importlib import resources
from pathlib import Path

import pytest
from click.testing import CliRunner

from bulkmeet import config
from bulkmeet.cli import main

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = (ROOT / "config.example.yaml").read_bytes()


@pytest.fixture(autouse=True)
def elsewhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """In an empty folder, as a user who installed the tool is."""
    monkeypatch.chdir(tmp_path)


def test_the_packaged_example_is_the_repositorys_byte_for_byte() -> None:
    """bulkmeet/config.example.yaml (what init writes) is config.example.yaml at the root: an
    edit to one without the other fails here."""
    packaged = resources.files("bulkmeet").joinpath("config.example.yaml").read_bytes()
    assert packaged == EXAMPLE


def test_the_example_is_package_data() -> None:
    """pyproject ships it in the wheel (an editable install would find it without)."""
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert "config.example.yaml" in pyproject["tool"]["setuptools"]["package-data"]["bulkmeet"]


def test_init_writes_the_example_to_bulkmeet_yaml(tmp_path: Path) -> None:
    """No argument: ./bulkmeet.yaml, the example's bytes, which load to the defaults; stderr says
    where and how to use it."""
    res = CliRunner().invoke(main, ["init"])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "bulkmeet.yaml").read_bytes() == EXAMPLE
    assert res.stdout == ""
    assert res.stderr == ("bulkmeet: wrote the example config to bulkmeet.yaml; use it with "
                          "--config bulkmeet.yaml\n")
    assert config.load(tmp_path / "bulkmeet.yaml", env={}) == config.Config()


def test_init_writes_to_the_path_given(tmp_path: Path) -> None:
    (tmp_path / "ci").mkdir()
    res = CliRunner().invoke(main, ["init", "ci/nightly.yaml"])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "ci" / "nightly.yaml").read_bytes() == EXAMPLE
    assert not (tmp_path / "bulkmeet.yaml").exists()


def test_init_refuses_to_overwrite_without_force(tmp_path: Path) -> None:
    """An existing file is left as it is: exit 2 and one line naming it and --force."""
    mine = tmp_path / "bulkmeet.yaml"
    mine.write_text("rate: 1\n")
    res = CliRunner().invoke(main, ["init"])
    assert res.exit_code == 2
    assert res.stderr == ("bulkmeet: error: bulkmeet.yaml exists; "
                          "bulkmeet init --force overwrites it\n")
    assert res.stdout == ""
    assert mine.read_text() == "rate: 1\n"


def test_init_force_overwrites(tmp_path: Path) -> None:
    mine = tmp_path / "c.yaml"
    mine.write_text("rate: 1\n")
    res = CliRunner().invoke(main, ["init", "c.yaml", "--force"])
    assert res.exit_code == 0, res.output
    assert mine.read_bytes() == EXAMPLE


def test_init_dash_writes_to_stdout(tmp_path: Path) -> None:
    """`-`: the example on stdout, byte for byte, nothing else and no file."""
    res = CliRunner().invoke(main, ["init", "-"])
    assert res.exit_code == 0, res.output
    assert res.stdout_bytes == EXAMPLE
    assert res.stderr == ""
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("target", "message"), [
    ("nowhere/bulkmeet.yaml",
     "bulkmeet: error: cannot write nowhere/bulkmeet.yaml: No such file or directory\n"),
])
@pytest.mark.parametrize("force", [False, True], ids=["", "--force"])
def test_init_cannot_write_exits_2_with_one_line(tmp_path: Path, target: str, message: str,
                                                 force: bool) -> None:
    (tmp_path / "folder").mkdir()
    res = CliRunner().invoke(main, ["init", target, *(["--force"] if force else [])])
    assert res.exit_code == 2
    assert res.stderr == message


def test_init_into_a_folder_writes_bulkmeet_yaml_there(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """`bulkmeet init .` (or any folder): the default name inside it; kept unless --force."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "conf").mkdir()
    res = CliRunner().invoke(main, ["init", "conf"])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "conf" / "bulkmeet.yaml").read_bytes() == EXAMPLE
    res = CliRunner().invoke(main, ["init", "conf"])
    assert res.exit_code == 2
    assert res.stderr == "bulkmeet: error: conf/bulkmeet.yaml exists; bulkmeet init --force " \
                         "overwrites it\n"
