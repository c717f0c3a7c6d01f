"""What the prompt term steers toward, per CLIP model and per step.

:class:`Targets` are one CLIP model's unit embeddings with their weights and stops. A
:class:`TargetSchedule` answers "which targets at step i?": one fixed set for a plain prompt, or
the parts of a story (``"a castle ^ a forest"``) each from its own step on, optionally crossfaded
over ``blend`` steps. The engine asks it every step; nothing is rebuilt when a part changes.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from .errors import UserError
from .perceptor import Perceptor, resize_for
from .prompts import Prompt


@dataclass
class Targets:
    """What one CLIP model steers toward: unit embeddings (T,D) with weights and stops (T,).

    Per-image targets (several images of one batch, each with its own prompt: the telephone's
    parallel trajectories) carry a batch dimension first: embeddings (B,T,D), weights and stops (B,T).
    """

    embeds: torch.Tensor
    weights: torch.Tensor
    stops: torch.Tensor

    def scaled(self, factor: float) -> "Targets":
        return Targets(self.embeds, self.weights * factor, self.stops)


def concat(parts: Sequence[Targets]) -> Targets:
    """The targets of ``parts`` side by side (along T, so per-image targets stay per image)."""
    return Targets(torch.cat([p.embeds for p in parts], dim=-2), torch.cat([p.weights for p in parts], dim=-1),
                   torch.cat([p.stops for p in parts], dim=-1))


def stack(per_image: Sequence[Targets]) -> Targets:
    """One CLIP model's targets for a batch whose image k steers toward ``per_image[k]`` (each (T_k,D)).

    Images with fewer targets are padded with weight-0 targets, which add nothing to the loss.
    """
    count = max(t.weights.shape[-1] for t in per_image)
    embeds, weights, stops = [], [], []
    for t in per_image:
        pad = count - t.weights.shape[-1]
        embeds.append(torch.cat([t.embeds, t.embeds.new_zeros(pad, t.embeds.shape[-1])]))
        weights.append(torch.cat([t.weights, t.weights.new_zeros(pad)]))
        stops.append(torch.cat([t.stops, t.stops.new_zeros(pad)]))
    return Targets(torch.stack(embeds), torch.stack(weights), torch.stack(stops))


def embed_targets(perceptor: Perceptor, prompts: Sequence[Prompt], images: Sequence[tuple[torch.Tensor, float]],
                  device: torch.device) -> list[Targets]:
    """Per CLIP model: the unit embeddings of every text and image prompt, with weights and stops.

    ``images`` are (1,3,H,W) tensors in [0,1] with their weights; image prompts never stop.
    """
    if not prompts and not images:
        raise UserError("the prompt is empty: give some text to steer toward, e.g. clipguide \"a sunset\"")
    targets = []
    for model in perceptor.models:
        embeds, weights, stops = [], [], []
        if prompts:
            embeds.append(model.embed_texts([p.text for p in prompts]))
            weights += [p.weight for p in prompts]
            stops += [p.stop for p in prompts]
        for tensor, weight in images:
            with torch.inference_mode():
                embeds.append(model.embed_images(resize_for(model, tensor.to(device))))
            weights.append(weight)
            stops.append(-math.inf)
        targets.append(Targets(torch.cat(embeds).clone(), torch.tensor(weights, device=device),
                               torch.tensor(stops, device=device)))
    return targets


class TargetSchedule:
    """Step → targets per CLIP model: parts that start at given steps, crossfaded over ``blend`` steps.

    During a crossfade from part A to part B the loss is ``(1-a)·L_A + a·L_B`` with ``a`` rising
    linearly from 0 to 1 over the ``blend`` steps after B's start: each part's weights are scaled,
    so stops and negative prompts keep their meaning inside every part.
    """

    def __init__(self, parts: Sequence[tuple[int, list[Targets]]], blend: int = 0) -> None:
        starts = [start for start, _ in parts]
        if not parts or starts != sorted(set(starts)) or starts[0] != 0:
            raise ValueError(f"parts must start at 0 and at increasing steps, got {starts}")
        self.parts = list(parts)
        self.starts = starts
        self.blend = max(0, int(blend))

    @classmethod
    def fixed(cls, targets: list[Targets]) -> "TargetSchedule":
        return cls([(0, targets)])

    @classmethod
    def per_image(cls, schedules: Sequence["TargetSchedule"]) -> "TargetSchedule":
        """One schedule for a batch whose image k follows ``schedules[k]`` (parts must start alike)."""
        first = schedules[0]
        if any(s.starts != first.starts or s.blend != first.blend for s in schedules):
            raise ValueError("per-image schedules must have their parts at the same steps")
        parts = [(start, [stack([s.parts[k][1][m] for s in schedules]) for m in range(len(targets))])
                 for k, (start, targets) in enumerate(first.parts)]
        return cls(parts, first.blend)

    def part_at(self, i: int) -> int:
        """Index of the part in charge at step ``i`` (0-based)."""
        return bisect.bisect_right(self.starts, i) - 1

    def __call__(self, i: int) -> list[Targets]:
        k = self.part_at(i)
        current = self.parts[k][1]
        into = i - self.starts[k]
        if k == 0 or into >= self.blend:
            return current
        mix = (into + 1) / (self.blend + 1)
        previous = self.parts[k - 1][1]
        return [concat([old.scaled(1 - mix), new.scaled(mix)]) for old, new in zip(previous, current)]


__all__ = ["Targets", "TargetSchedule", "embed_targets", "concat", "stack"]
