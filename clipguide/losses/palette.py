"""The palette term: how far every pixel is from the nearest colour of a palette.

Mean over pixels of the squared RGB distance to the nearest palette colour (``--palette``: colours
or a named palette, :mod:`clipguide.palettes`). Each pixel is pulled toward whichever palette
colour is already nearest, so the picture keeps its layout and settles into the palette's colours.
"""

from __future__ import annotations

import torch

from ..palettes import parse_palette
from . import Context, LossTerm, State


def palette_distance(images: torch.Tensor, palette: torch.Tensor) -> torch.Tensor:
    """(B,) mean squared distance of each pixel of (B,3,H,W) ``images`` to its nearest row of (K,3) ``palette``."""
    pixels = images.movedim(1, -1).reshape(images.shape[0], -1, 1, 3)
    return (pixels - palette.to(images)).pow(2).sum(-1).amin(-1).mean(-1)


class PaletteLoss(LossTerm):
    name = "palette"

    def __init__(self, palette: torch.Tensor, weight=1.0) -> None:
        super().__init__(weight)
        self.palette = palette

    @classmethod
    def build(cls, context: Context, weight) -> "PaletteLoss":
        colours = parse_palette(context.settings.palette)
        return cls(torch.tensor(colours, dtype=torch.float32, device=context.device), weight)

    def __call__(self, state: State) -> torch.Tensor:
        return palette_distance(state.images.float(), self.palette)
