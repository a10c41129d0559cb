"""Errors a user can act on. The CLI prints them without a traceback."""
from __future__ import annotations

import difflib
from typing import Iterable


class MmadaptError(Exception):
    """A problem with the user's input or environment, worded so they can fix it."""

    #: the process's exit status when this ends the command (README, "Failures and recovery")
    exit_code = 2
    #: the word the command line prints before the message
    label = "error"


class RecipeError(MmadaptError):
    """One or more problems in a recipe, each tied to a dotted path."""

    def __init__(self, problems: list[tuple[str, str]], source: str = "recipe"):
        self.problems = problems
        self.source = source
        lines = [f"{len(problems)} problem(s) in {source}:"]
        lines += [f"  {path}: {message}" for path, message in problems]
        super().__init__("\n".join(lines))


class DataError(MmadaptError):
    """A data file is missing or malformed; the message names the file and the row."""


class PluginError(MmadaptError):
    """A plugin failed to load, registered something twice, or a name is unknown."""


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """A ' (did you mean 'x'?)' suffix for the closest choice, or ''."""
    close = difflib.get_close_matches(str(name), list(choices), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""
