"""Errors a user can fix.

Every mistake a person can make (a bad prompt, an unknown style, a missing file) raises a
:class:`UserError` whose message is one line naming the problem and the fix. The front ends
print that line and exit with code 2; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class UserError(Exception):
    """A mistake in the user's input or environment, with a one-line message saying what to do."""

    exit_code = 2


class MissingWeightsError(UserError):
    """A checkpoint is not on disk and may not (or could not) be downloaded."""


class OutOfMemoryError(UserError):
    """The run does not fit in memory; the message names settings that would."""


class NonFiniteLossError(UserError):
    """The loss became NaN/Inf and lowering the learning rate did not recover it."""


def close_matches(name: str, choices: Iterable[str], n: int = 3) -> str:
    """A phrase like "did you mean 'baroque'?", or the full list of choices when nothing is close."""
    choices = sorted(set(choices))
    near = difflib.get_close_matches(name.lower(), [c.lower() for c in choices], n=n, cutoff=0.5)
    lookup = {c.lower(): c for c in choices}
    if near:
        return "did you mean " + " or ".join(repr(lookup[m]) for m in near) + "?"
    shown = ", ".join(choices[:40]) + (" …" if len(choices) > 40 else "")
    return f"choose from: {shown}"


def unknown(kind: str, name: str, choices: Iterable[str]) -> UserError:
    """The standard error for an unknown name: says what was asked for and what exists."""
    return UserError(f"unknown {kind} {name!r}: {close_matches(name, choices)}")
