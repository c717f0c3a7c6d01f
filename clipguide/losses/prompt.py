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
    """Per-image loss of the lineage: |w|·mean(sign(w)·2·arcsin(‖a−b‖/2)²) over cutouts, per target.

    ``embeds``: (B, C, D) unit cutout embeddings of B images, C cutouts each; ``targets``: (T, D)
    unit target embeddings shared by the batch, or (B, T, D) per image; ``weights``/``stops``: (T,)
    or (B, T). Returns (B,) summed over targets. A target whose distance for a cutout is already
    below its ``stop`` passes no gradient there.
    """
    if targets.dim() == 2:  # shared by every image
        targets, weights, stops = targets[None], weights[None], stops[None]
    dists = (embeds[:, :, None, :] - targets[:, None, :, :]).norm(dim=-1).div(2).clamp(max=1).arcsin().pow(2).mul(2)
    dists = torch.where(dists < stops[:, None, :], dists.detach(), dists)
    signed = dists * torch.sign(weights)[:, None, :]
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
