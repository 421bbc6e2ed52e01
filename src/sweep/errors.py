"""Errors a user can fix, and how much of a value their messages echo. The CLI prints their message and
exits with code 2, without a traceback."""

import importlib
import reprlib


class SweepError(Exception):
    """Bad input: a config, a command-line value, a path or a table. The message names the problem."""


class ConfigError(SweepError):
    """One or more problems in a sweep config, each prefixed by its key path."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("\n".join(problems))


class InputError(SweepError):
    """A table, a store or a file given to a command cannot be used as it is."""


class StoreWriteError(Exception):
    """The store could not be written in the middle of a sweep (a full disk, a mount gone read-only).
    The sweep stops: the run in flight goes back to pending, finished runs stay, the CLI exits 1."""


def require_package(module: str, extra: str, what: str):
    """`module` imported, or a SweepError naming the extra that installs it: said before anything
    trains or is written, rather than as an ImportError halfway through a sweep."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise SweepError(f"{what} needs the {module} package: pip install 'sweep[{extra}]'") from None


# What a message echoes of a value: a config can hold a megabyte string or a list of millions.
_SHORT = reprlib.Repr()
_SHORT.maxstring = _SHORT.maxother = _SHORT.maxlong = 60
_SHORT.maxlist = _SHORT.maxtuple = _SHORT.maxdict = _SHORT.maxset = 6
_SHORT.maxlevel = 3


def shown(value: object) -> str:
    """repr(value), cut to about 60 characters and 6 items a level."""
    return _SHORT.repr(value)


def cut(text: str, limit: int = 60) -> str:
    """`text` itself when short, else its first `limit` characters and '...'."""
    return text if len(text) <= limit else f"{text[:limit]}..."
