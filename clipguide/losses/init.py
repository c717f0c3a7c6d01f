"""The init-image term: keeps the picture near the image it started from, less and less.

Its weight is ``init_weight`` times a linear decay, 1 at the first step and 0 at the last, so
the init image shapes the start of the run and the prompt has the end of it to itself.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..schedules import Scaled, linear_decay
from . import Context, LossTerm, State


class InitImageLoss(LossTerm):
    """Pixel MSE between each image and its init image, per image."""

    name = "init"

    def __init__(self, init_images: torch.Tensor, weight=1.0) -> None:
        super().__init__(weight)
        self.init_images = init_images

    @classmethod
    def build(cls, context: Context, weight) -> "InitImageLoss":
        return cls(context.init_images, Scaled(weight, linear_decay(context.settings.steps)))

    def __call__(self, state: State) -> torch.Tensor:
        return F.mse_loss(state.images.float(), self.init_images, reduction="none").mean(dim=(1, 2, 3))
