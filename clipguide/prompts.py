"""Prompt syntax of the VQGAN+CLIP lineage (the loss itself is :mod:`clipguide.losses.prompt`).

A prompt string is a ``|``-separated list of ``text[:weight[:stop]]`` parts. The weight's sign
says whether to pull toward (+) or push away from (−) the text; ``stop`` cuts the gradient once
the distance falls below it. Colons inside the text are kept (only a trailing ``:number`` or
``:number:number`` is read as weight/stop), so "a sign saying: hello" works as written.

A story is several prompt strings joined by ``^`` (nerdyrodent's story mode): ``"a castle ^ a
forest"`` moves to the next part every ``change_every`` steps; a part may name the step (or, in
an animation, the frame) it starts at: ``"0:a castle ^ 150:a forest"``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from .errors import UserError

_NUMBER = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?"
_TAIL = re.compile(rf"^(?P<text>.*?)(?::(?P<weight>{_NUMBER}))?(?::(?P<stop>{_NUMBER}))?$", re.DOTALL)
# Something that looks like it was meant as a weight but is not a number ("a cat:heavy" is
# fine text, "a cat:0.5x" is almost certainly a typo).
_BAD_TAIL = re.compile(r":\s*[-+]?\d[^:\s]*\s*$")
_STORY_KEY = re.compile(r"^\s*(\d+)\s*:(.*)$", re.DOTALL)
STORY_SEPARATOR = "^"


@dataclass(frozen=True)
class Prompt:
    text: str
    weight: float = 1.0
    stop: float = -math.inf

    def __str__(self) -> str:
        return format_prompts([self])


def parse_prompts(spec: str) -> list[Prompt]:
    """Parse ``"text:weight:stop | other text:-0.5"``; raise a one-line UserError when malformed."""
    prompts = []
    for part in spec.split("|"):
        part = part.strip()
        if not part:
            continue
        match = _TAIL.match(part)
        assert match is not None  # the pattern matches every string
        text = match["text"].strip()
        if not match["weight"] and _BAD_TAIL.search(part):
            raise UserError(f"malformed weight in prompt {part!r}: write 'text:weight' or 'text:weight:stop' with numbers")
        weight = float(match["weight"]) if match["weight"] else 1.0
        stop = float(match["stop"]) if match["stop"] else -math.inf
        if not text:
            raise UserError(f"prompt part {part!r} has a weight but no text: write 'text:{match['weight']}'")
        if not math.isfinite(weight) or (match["stop"] and not math.isfinite(stop)):
            raise UserError(f"weight and stop in {part!r} must be finite numbers")
        prompts.append(Prompt(text, weight, stop))
    return prompts


def format_prompts(prompts: list[Prompt]) -> str:
    """The inverse of :func:`parse_prompts` (weights and stops only where not default)."""
    parts = []
    for p in prompts:
        s = p.text
        if p.weight != 1.0 or p.stop != -math.inf:
            s += f":{p.weight:g}"
        if p.stop != -math.inf:
            s += f":{p.stop:g}"
        parts.append(s)
    return " | ".join(parts)


@dataclass(frozen=True)
class StoryPart:
    text: str  # a prompt string of its own ("a castle:2 | fog:-0.5")
    start: int | None = None  # the step (or frame) it starts at, when the user gave one


def split_story(spec: str) -> list[StoryPart]:
    """``"0:a castle ^ 150:a forest"`` → its parts; a prompt without ``^`` is one part, unkeyed.

    Either every part after the first names its start or none does (the first may leave out its 0).
    """
    if STORY_SEPARATOR not in spec:
        return [StoryPart(spec)]
    parts = []
    for piece in spec.split(STORY_SEPARATOR):
        match = _STORY_KEY.match(piece)
        parts.append(StoryPart(match[2].strip(), int(match[1])) if match else StoryPart(piece.strip()))
    if any(not p.text or not parse_prompts(p.text) for p in parts):
        raise UserError(f"story prompt {spec!r} has an empty part: write text between every '^'")
    keyed = [p.start is not None for p in parts[1:]]
    if any(keyed) and not all(keyed):
        raise UserError(f"story prompt {spec!r}: give every part a start ('0:a castle ^ 150:a forest') or none")
    if all(keyed) and keyed:
        first = parts[0].start or 0
        starts = [first] + [p.start for p in parts[1:]]
        if first != 0 or starts != sorted(set(starts)):
            raise UserError(f"story prompt {spec!r}: the parts must start at 0 and at increasing steps")
        parts[0] = StoryPart(parts[0].text, 0)
    return parts


def story_starts(parts: list[StoryPart], total: int, change_every: int) -> list[int]:
    """Where each part starts: its own key, else every ``change_every`` steps, else an even share of ``total``."""
    if parts[0].start is not None:
        return [p.start or 0 for p in parts]
    every = change_every or max(1, total // len(parts))
    return [k * every for k in range(len(parts))]


def join_story(parts: list[StoryPart]) -> str:
    """The inverse of :func:`split_story`."""
    if len(parts) == 1 and parts[0].start is None:
        return parts[0].text
    return " ^ ".join(p.text if p.start is None else f"{p.start}:{p.text}" for p in parts)
