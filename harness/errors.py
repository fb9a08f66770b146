"""Errors the CLI turns into one readable line and an exit code."""

from __future__ import annotations

import difflib
from typing import Iterable


class OptbenchError(Exception):
    """Base: the message is shown to the user as is, without a traceback."""

    exit_code = 1


class UserInputError(OptbenchError):
    """Bad names, options or overrides: nothing was run or written."""

    exit_code = 2


class PluginError(OptbenchError):
    """A plugin failed to import or breaks the contract."""

    exit_code = 1


class DataError(OptbenchError):
    """A dataset is missing or does not verify."""

    exit_code = 1


# Each is a DataError (one line and exit 1 from the CLI) and also the builtin
# exception a Python caller would expect.
class DatasetMissing(DataError, FileNotFoundError):
    """A full size's dataset is not on disk (``bench data prepare`` fetches it)."""


class DatasetCorrupt(DataError, ValueError):
    """A dataset file fails its checksum or format check."""


class DownloadFailed(DataError, RuntimeError):
    """A dataset could not be fetched (no network, a server error)."""


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    choices = sorted(set(choices))
    close = difflib.get_close_matches(name, choices, n=3, cutoff=0.5)
    if close:
        return f"did you mean {' or '.join(repr(c) for c in close)}?"
    return f"choose from: {', '.join(choices)}" if choices else "none are available"


def unknown(what: str, name: str, choices: Iterable[str]) -> UserInputError:
    return UserInputError(f"unknown {what} {name!r}; {did_you_mean(name, choices)}")
