"""`bulkmeet init`: write the commented example config, which ships inside the package (a user
who installed bulkmeet from a wheel has no repository to copy config.example.yaml from)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import click

from ..errors import UsageError
from ..exits import EXIT_OK
from .common import guard, main

EXAMPLE = "config.example.yaml"  # package data; tests keep it identical to the repository's
DEFAULT_PATH = "bulkmeet.yaml"


def example_config() -> bytes:
    """The example config's bytes, every key at its default with what it does."""
    return resources.files("bulkmeet").joinpath(EXAMPLE).read_bytes()


@main.command()
@click.argument("path", default=DEFAULT_PATH, metavar="[PATH]")
@click.option("--force", is_flag=True, help="Overwrite PATH if it exists.")
def init(path: str, force: bool) -> None:
    """Write the commented example config to PATH.

    PATH is bulkmeet.yaml by default; - writes to stdout. Every key is there with its default
    and what it does; edit it, then pass it to any command with --config PATH. An existing
    PATH is kept unless --force is given (exit 2).
    """

    def go() -> int:
        text = example_config()
        if path == "-":
            click.echo(text, nl=False)
            return EXIT_OK
        target = Path(path)
        if target.is_dir():  # `bulkmeet init .`: the default name in that folder
            target = target / DEFAULT_PATH
        try:
            # "x" creates the file or fails if anything is there: nothing is overwritten, even a
            # file that appears between a check and the write.
            with open(target, "wb" if force else "xb") as f:
                f.write(text)
        except FileExistsError:
            raise UsageError(f"{target} exists; bulkmeet init --force overwrites it") from None
        except OSError as exc:
            raise UsageError(f"cannot write {target}: {exc.strerror or exc}") from None
        click.echo(f"bulkmeet: wrote the example config to {target}; use it with --config "
                   f"{target}",
                   err=True)
        return EXIT_OK

    guard(go)
