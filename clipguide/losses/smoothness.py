"""The smoothness term: total variation, the mean absolute difference between neighbouring pixels.

Absolute (not squared) differences, as in total-variation denoising: a few sharp edges between
flat areas cost little, speckle costs a lot, so the term flattens noise without blurring shapes.
"""

from __future__ import annotations

import torch

from . import LossTerm, State


def total_variation(images: torch.Tensor) -> torch.Tensor:
    """(B,) mean absolute difference of horizontally plus vertically neighbouring pixels."""
    dx = (images[..., :, 1:] - images[..., :, :-1]).abs().mean(dim=(1, 2, 3))
    dy = (images[..., 1:, :] - images[..., :-1, :]).abs().mean(dim=(1, 2, 3))
    return dx + dy


class Smoothness(LossTerm):
    name = "smoothness"

    def __call__(self, state: State) -> torch.Tensor:
        return total_variation(state.images.float())
