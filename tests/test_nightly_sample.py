"""samples/ci/nightly.yml, the workflow users copy: it must never install bulkmeet by a bare
name from a package index (the project publishes none; whoever registers the name would run
their code next to the Gong credentials), and every action it runs is pinned to a commit."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml

WORKFLOW = Path(__file__).resolve().parents[1] / "samples" / "ci" / "nightly.yml"
SHA = re.compile(r"[0-9a-f]{40}")
NAME = re.compile(r"([A-Za-z0-9][A-Za-z0-9._-]*)")
SEPARATORS = {";", "&&", "||", "|", "&"}
TAKES_VALUE = {"-i", "--index-url", "--extra-index-url", "-f", "--find-links", "-t", "--target",
               "--prefix", "--root", "--python-version", "--platform", "--cache-dir"}


def pip_installs(script: str) -> list[str]:
    """The requirement arguments of every `pip install` in a shell script (any pip: pip3,
    python -m pip, uv pip); `-r FILE` and `-c FILE` come back as `-r FILE`, to be refused."""
    found: list[str] = []
    for line in script.replace("\\\n", " ").splitlines():
        lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        tokens = list(lexer)
        for i, token in enumerate(tokens):
            if token != "install" or i == 0 or not re.fullmatch(r"pip3?", tokens[i - 1]):
                continue
            args = iter(tokens[i + 1:])
            for arg in args:
                if arg in SEPARATORS:
                    break
                if arg in ("-r", "--requirement", "-c", "--constraint"):
                    found.append(f"-r {next(args, '')}")
                elif arg in ("-e", "--editable"):
                    found.append(next(args, ""))
                elif arg in TAKES_VALUE:
                    next(args, None)
                elif not arg.startswith("-"):
                    found.append(arg)
    return found


def source_of_bulkmeet(requirement: str) -> str | None:
    """Why `requirement` is not a safe way to install bulkmeet, or None when it is safe (a local
    path or wheel, a git URL pinned to a full commit SHA) or is not bulkmeet at all."""
    if requirement.startswith("-r "):
        return "a requirements file this check cannot see into"
    name, _, url = (part.strip() for part in requirement.partition(" @ "))
    if not url and "://" in requirement:
        name, url = "", requirement
    if url:
        if not url.startswith("git+"):
            return None if "bulkmeet" not in url.lower() else f"not a git URL: {url}"
        ref = url.split("#", 1)[0].rsplit("/", 1)[-1].partition("@")[2]
        return None if SHA.fullmatch(ref) else f"git URL not pinned to a full commit SHA: {url}"
    if requirement.startswith((".", "/", "~")) or requirement.endswith(".whl"):
        return None  # the checkout, or a wheel built in the same workflow
    match = NAME.match(name)
    if match and re.sub(r"[-_.]+", "-", match.group(1)).lower() == "bulkmeet":
        return f"a bare name, resolved by a package index: {requirement}"
    return None


def _steps() -> list[dict[str, Any]]:
    workflow = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))
    return [step for job in workflow["jobs"].values() for step in job["steps"]]


@pytest.mark.parametrize(("requirement", "safe"), [
    ("bulkmeet", False),
    ("bulkmeet==0.1.0", False),
    ("BulkMeet[x]>=0.1", False),
    ("-r requirements.txt", False),
    ("git+https://github.com/acme/bulkmeet@v0.1.0", False),
    ("git+https://github.com/acme/bulkmeet@main", False),
    ("bulkmeet @ git+https://github.com/acme/bulkmeet@v0.1.0", False),
    ("https://example.com/bulkmeet-0.1.0.tar.gz", False),
    ("git+https://github.com/acme/bulkmeet@" + "0123456789abcdef" * 2 + "01234567", True),
    ("bulkmeet @ git+https://github.com/acme/bulkmeet@" + "ab" * 20 + "#egg=bulkmeet", True),
    ("./", True),
    (".", True),
    ("dist/bulkmeet-0.1.0-py3-none-any.whl", True),
    ("pip", True),
])
def test_the_check_tells_safe_sources_from_unsafe_ones(requirement: str, safe: bool) -> None:
    assert (source_of_bulkmeet(requirement) is None) is safe


def test_the_parser_finds_every_pip_install() -> None:
    script = ('python -m pip install --upgrade pip && pip install "bulkmeet==0.1.0"\n'
              "pip3 install -i https://example.com/simple -e ./ \\\n  wheel; echo done\n"
              "uv pip install -r requirements.txt\n")
    assert pip_installs(script) == ["pip", "bulkmeet==0.1.0", "./", "wheel",
                                    "-r requirements.txt"]


def test_the_nightly_sample_installs_bulkmeet_only_from_a_source_the_user_controls() -> None:
    """No step installs bulkmeet by a bare name from an index; one installs it from the checkout
    (or a wheel or a git commit), after the checkout step."""
    steps = _steps()
    unsafe, installs = [], []
    for index, step in enumerate(steps):
        for requirement in pip_installs(step.get("run", "")):
            reason = source_of_bulkmeet(requirement)
            if reason:
                unsafe.append(f"{step.get('name')}: {reason}")
            elif requirement.startswith((".", "/", "git+")) or requirement.endswith(".whl"):
                installs.append(index)
    assert unsafe == []
    checkout = next(i for i, s in enumerate(steps)
                    if str(s.get("uses", "")).startswith("actions/checkout@"))
    assert installs and all(i > checkout for i in installs)


def test_the_nightly_sample_pins_every_action_to_a_commit() -> None:
    """A tag can be moved to other code; a full commit SHA cannot. The checkout leaves no token
    behind for the steps that run installed code."""
    steps = _steps()
    for step in steps:
        if "uses" in step:
            ref = step["uses"].partition("@")[2]
            assert SHA.fullmatch(ref), step["uses"]
    checkout = next(s for s in steps if str(s.get("uses")).startswith("actions/checkout@"))
    assert checkout["with"]["persist-credentials"] is False
