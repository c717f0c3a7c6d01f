"""The init term: keeps the picture near where it started (``init_weight``, ``init_weight_mode``).

* ``pixel`` (default): the pixel MSE to the init image, its weight falling linearly from
  ``init_weight`` at the first step to 0 at the last, so the init image shapes the start of the run
  and the prompt has the end of it to itself. Needs ``init_image``.
* ``latent``: ``0.5 · init_weight · MSE(latent, starting latent)`` at every step — what
  ``init_weight`` means in the VQGAN+CLIP notebook (with or without an init image).
* ``zero``: ``0.5 · init_weight / (2i+1) · MSE(latent, 0)`` — what ``-iw`` means in nerdyrodent's
  ``generate.py``: a pull toward the codebook's centre that fades within the first steps.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..schedules import Scaled, Schedule, linear_decay, lineage_decay
from . import Context, LossTerm, State


class InitImageLoss(LossTerm):
    """Pixel MSE between each image and its init image, per image."""

    name = "init"

    def __init__(self, init_images: torch.Tensor, weight: Schedule | float = 1.0) -> None:
        super().__init__(weight)
        self.init_images = init_images

    @classmethod
    def build(cls, context: Context, weight: Schedule) -> "InitImageLoss":
        return cls(context.init_images, Scaled(weight, linear_decay(context.settings.steps)))

    def __call__(self, state: State) -> torch.Tensor:
        return F.mse_loss(state.images.float(), self.init_images, reduction="none").mean(dim=(1, 2, 3))


class InitLatentLoss(LossTerm):
    """Half the MSE between each image's latent and a target latent (its start, or zero), per image."""

    name = "init"

    def __init__(self, target: dict[str, torch.Tensor] | None, weight: Schedule | float = 1.0) -> None:
        super().__init__(weight)
        self.target = target  # None: toward zero

    @classmethod
    def build(cls, context: Context, weight: Schedule) -> "InitLatentLoss":
        if context.settings.init_weight_mode == "zero":
            return cls(None, Scaled(weight, lineage_decay))
        return cls(context.start, weight)

    def __call__(self, state: State) -> torch.Tensor:
        parts = []
        for key, value in state.latent.items():
            if key.startswith("_"):
                continue  # generator state (an EMA), not optimised
            goal = torch.zeros_like(value) if self.target is None else self.target[key]
            parts.append((value.float() - goal.float()).pow(2).flatten(1))
        return 0.5 * torch.cat(parts, dim=1).mean(dim=1)


def build_init_term(context: Context, weight: Schedule) -> LossTerm:
    """The init term ``init_weight_mode`` asks for."""
    if context.settings.init_weight_mode == "pixel":
        return InitImageLoss.build(context, weight)
    return InitLatentLoss.build(context, weight)
