"""The typer application and what every command shares: the consoles, `guarded` (a SweepError
becomes its message and exit code 2) and `choice`, which makes an option's choices from the tuple its
owner checks against, so the CLI never keeps a copy that could drift from it."""

from __future__ import annotations

import functools
import sys
from enum import Enum
from typing import Iterable

import typer
from rich.console import Console

from sweep.config import DEVICES
from sweep.errors import SweepError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Measure scaling laws: train a ladder of Transformers, record every run, fit laws.",
)
# Not on a terminal (batch jobs, pipes, CI) rich would wrap tables at 80 columns: give them room.
console = Console() if sys.stdout.isatty() else Console(width=250)
errors = Console(stderr=True) if sys.stderr.isatty() else Console(stderr=True, width=250)


def guarded(command):
    """Turn a SweepError into its message and exit code 2."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except SweepError as err:
            for line in str(err).splitlines():
                errors.print(f"error: {line}", markup=False, highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None

    return wrapper


def choice(name: str, values: Iterable[str]) -> type[Enum]:
    """An option's choices as the str Enum typer wants, one member per value, named by it, in order."""
    return Enum(name, {value: value for value in values}, type=str)


Device = choice("Device", DEVICES)
