"""The CLIP prompt term: cutouts of every image, embedded by each CLIP model, pulled toward (or
pushed from) the step's targets by the lineage's spherical distance."""

from __future__ import annotations

import torch

from ..cutouts import Cutouts
from ..perceptor import Perceptor
from ..targets import TargetSchedule
from . import LossTerm, State


def spherical_distance_loss(embeds: torch.Tensor, targets: torch.Tensor, weights: torch.Tensor,
                            stops: torch.Tensor) -> torch.Tensor:
    """Per-image loss of the lineage, summed over targets: |w| · mean over cutouts of s, where
    s = sign(w) · 2·arcsin(‖a−b‖/2)² is the signed squared great-circle distance.

    The gradient flows only where s > stop (the lineage compares the *signed* distance): a
    positive weight stops pulling once the distance is below ``stop`` (``a cat:1:0.8``), a negative
    weight stops pushing once the distance is above ``-stop`` (``fog:-1:-1.2``). ``embeds``: (B, C, D)
    unit cutout embeddings of B images, C cutouts each; ``targets``: (T, D) unit embeddings shared by
    the batch, or (B, T, D) per image; ``weights``/``stops``: (T,) or (B, T). Returns (B,).
    """
    if targets.dim() == 2:  # shared by every image
        targets, weights, stops = targets[None], weights[None], stops[None]
    dists = (embeds[:, :, None, :] - targets[:, None, :, :]).norm(dim=-1).div(2).clamp(max=1).arcsin().pow(2).mul(2)
    signed = dists * torch.sign(weights)[:, None, :]
    signed = torch.where(signed > stops[:, None, :], signed, signed.detach())
    return (weights.abs() * signed.mean(dim=1)).sum(dim=-1)


class PromptLoss(LossTerm):
    """Mean over the CLIP models of the spherical-distance loss of ``cutn`` cutouts per image."""

    name = "prompt"

    def __init__(self, perceptor: Perceptor, cutouts: Cutouts, targets: TargetSchedule, weight=1.0) -> None:
        super().__init__(weight)
        self.perceptor = perceptor
        self.cutouts = cutouts
        self.targets = targets

    def __call__(self, state: State) -> torch.Tensor:
        images = state.images
        batch = images.shape[0]
        targets = self.targets(state.i)
        total: torch.Tensor | int = 0
        for model, target in zip(self.perceptor.models, targets):
            cut = self.cutouts(images, model.input_size, state.rngs)
            embeds = model.embed_images(cut).view(batch, self.cutouts.cutn, -1)
            total = total + spherical_distance_loss(embeds, target.embeds, target.weights, target.stops) / len(targets)
        return total
