"""Prompt syntax and the spherical-distance loss of the VQGAN+CLIP lineage.

A prompt string is a ``|``-separated list of ``text[:weight[:stop]]`` parts. The weight's sign
says whether to pull toward (+) or push away from (−) the text; ``stop`` cuts the gradient once
the distance falls below it. Colons inside the text are kept (only a trailing ``:number`` or
``:number:number`` is read as weight/stop), so "a sign saying: hello" works as written.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .errors import UserError

_NUMBER = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?"
_TAIL = re.compile(rf"^(?P<text>.*?)(?::(?P<weight>{_NUMBER}))?(?::(?P<stop>{_NUMBER}))?$", re.DOTALL)
# Something that looks like it was meant as a weight but is not a number ("a cat:heavy" is
# fine text, "a cat:0.5x" is almost certainly a typo).
_BAD_TAIL = re.compile(r":\s*[-+]?\d[^:\s]*\s*$")


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


def spherical_distance_loss(embeds: torch.Tensor, targets: torch.Tensor, weights: torch.Tensor,
                            stops: torch.Tensor) -> torch.Tensor:
    """Per-image loss of the lineage: |w|·mean(sign(w)·2·arcsin(‖a−b‖/2)²) over cutouts, per target.

    ``embeds``: (B, C, D) unit cutout embeddings of B images, C cutouts each; ``targets``: (T, D)
    unit target embeddings; ``weights``/``stops``: (T,). Returns (B,) summed over targets.
    A target whose distance for a cutout is already below its ``stop`` passes no gradient there.
    """
    dists = (embeds[:, :, None, :] - targets[None, None, :, :]).norm(dim=-1).div(2).clamp(max=1).arcsin().pow(2).mul(2)
    dists = _stop_gradient_below(dists, stops)
    signed = dists * torch.sign(weights)
    return (weights.abs() * signed.mean(dim=1)).sum(dim=-1)


def _stop_gradient_below(dists: torch.Tensor, stops: torch.Tensor) -> torch.Tensor:
    below = dists < stops
    return torch.where(below, dists.detach(), dists)


def normalize(x: torch.Tensor) -> torch.Tensor:
    return F.normalize(x, dim=-1)
