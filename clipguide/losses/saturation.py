"""The saturation term: colourfulness, up with a positive weight, down (toward grey) with a negative one.

Colourfulness is each pixel's chroma, the largest minus the smallest of its R, G, B (0 for greys,
1 for pure red), averaged over the image. The term is its negative, so that the loop, which
lowers the loss, raises colourfulness when the weight is positive and lowers it when negative.
"""

from __future__ import annotations

import torch

from . import LossTerm, State


def chroma(images: torch.Tensor) -> torch.Tensor:
    """(B,) mean over pixels of max(R,G,B) - min(R,G,B)."""
    return (images.amax(dim=1) - images.amin(dim=1)).mean(dim=(1, 2))


class Saturation(LossTerm):
    name = "saturation"

    def __call__(self, state: State) -> torch.Tensor:
        return -chroma(state.images.float())
