"""Values that change with the step (or the frame): term weights, motion, prompt parts.

A schedule is any callable ``schedule(i) -> float``; the engine asks it once per step, so nothing
is rebuilt when a value moves. Users write one of:

* a number, ``0.5`` — the same value at every step (:class:`Constant`);
* keyframes, ``"0:1.0, 60:1.05"`` — linearly interpolated between keys, held before the first
  and after the last (:class:`Keyframes`). Disco Diffusion's and pytti's spelling with
  parentheses, ``"0:(1.0), 60:(1.05)"``, reads the same.

This module has no torch and does no I/O.
"""

from __future__ import annotations

import bisect
import math
import re
from collections.abc import Callable
from dataclasses import dataclass

from .errors import UserError

Schedule = Callable[[int], float]

_NUMBER = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?"
_KEY = re.compile(rf"^\s*(\d+)\s*:\s*\(?\s*({_NUMBER})\s*\)?\s*$")


@dataclass(frozen=True)
class Constant:
    value: float

    def __call__(self, i: int) -> float:
        return self.value

    def __str__(self) -> str:
        return f"{self.value:g}"


@dataclass(frozen=True)
class Keyframes:
    """Piecewise-linear through ``(key, value)`` points, keys strictly increasing."""

    points: tuple[tuple[int, float], ...]

    def __post_init__(self) -> None:
        keys = [k for k, _ in self.points]
        if not keys or keys != sorted(set(keys)):
            raise ValueError(f"keyframes need distinct increasing keys, got {keys}")

    def __call__(self, i: int) -> float:
        keys = [k for k, _ in self.points]
        j = bisect.bisect_right(keys, i)
        if j == 0:
            return self.points[0][1]
        if j == len(keys):
            return self.points[-1][1]
        (k0, v0), (k1, v1) = self.points[j - 1], self.points[j]
        return v0 + (v1 - v0) * (i - k0) / (k1 - k0)

    def __str__(self) -> str:
        return ", ".join(f"{k}:{v:g}" for k, v in self.points)


@dataclass(frozen=True)
class Scaled:
    """``factor(i) * base(i)``: a user's weight under a built-in decay."""

    base: Schedule
    factor: Schedule

    def __call__(self, i: int) -> float:
        return self.base(i) * self.factor(i)


def linear_decay(steps: int) -> Schedule:
    """1 at step 0 falling linearly to 0 at step ``steps`` (the init-image default)."""
    return lambda i: max(0.0, 1.0 - i / max(1, steps))


def lineage_decay(i: int) -> float:
    """nerdyrodent's ``generate.py`` init-weight decay: 1/(2i+1), i the 0-based step."""
    return 1.0 / (2 * i + 1)


def parse_schedule(text: str | float | int, *, what: str) -> Constant | Keyframes:
    """A number or a keyframe string as a schedule; ``what`` names the setting in errors."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        if not math.isfinite(text):
            raise UserError(f"{what} must be a finite number, got {text!r}")
        return Constant(float(text))
    if not isinstance(text, str) or not text.strip():
        raise UserError(f"{what} must be a number or keyframes like '0:1.0, 60:1.05', got {text!r}")
    try:
        return Constant(_finite(float(text), what, text))
    except ValueError:
        pass
    points = []
    for part in text.split(","):
        match = _KEY.match(part)
        if match is None:
            raise UserError(f"{what} {text!r} does not parse: write a number, or keyframes like "
                            f"'0:1.0, 60:1.05' (FRAME:VALUE pairs, comma separated)")
        points.append((int(match[1]), _finite(float(match[2]), what, text)))
    keys = [k for k, _ in points]
    if keys != sorted(set(keys)):
        raise UserError(f"{what} {text!r}: keyframes must be in increasing order without repeats")
    return Keyframes(tuple(points))


def check_schedule(text: str, *, what: str, low: float | None = None, low_open: bool = False) -> None:
    """Parse ``text`` and check every key value against a lower bound (e.g. a zoom > 0)."""
    schedule = parse_schedule(text, what=what)
    values = [schedule.value] if isinstance(schedule, Constant) else [v for _, v in schedule.points]
    if low is not None:
        for v in values:
            if v < low or (low_open and v == low):
                bound = f"greater than {low:g}" if low_open else f"at least {low:g}"
                if isinstance(schedule, Constant):
                    raise UserError(f"{what} must be {bound}, got {v:g}")
                raise UserError(f"{what} must be {bound} at every keyframe, got {v:g} in {text!r}")


def _finite(value: float, what: str, text: str) -> float:
    if not math.isfinite(value):
        raise UserError(f"{what} must be finite, got {text!r}")
    return value


__all__ = ["Schedule", "Constant", "Keyframes", "Scaled", "parse_schedule", "check_schedule", "linear_decay",
           "lineage_decay"]
