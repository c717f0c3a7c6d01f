"""The edge term: a border of one colour around the picture.

Mean squared RGB distance between the pixels within ``edge_width`` of any side and ``edge_colour``;
the inside of the picture is left to the prompt.
"""

from __future__ import annotations

import torch

from ..palettes import parse_colour
from . import Context, LossTerm, State


def border_mask(height: int, width: int, border: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """(H, W) bool: True within ``border`` pixels of an edge."""
    mask = torch.ones(height, width, dtype=torch.bool, device=device)
    if 2 * border < height and 2 * border < width:
        mask[border:height - border, border:width - border] = False
    return mask


class Edge(LossTerm):
    name = "edge"

    def __init__(self, colour: tuple[float, float, float], width: int, weight=1.0) -> None:
        super().__init__(weight)
        self.colour = torch.tensor(colour, dtype=torch.float32)
        self.width = int(width)

    @classmethod
    def build(cls, context: Context, weight) -> "Edge":
        settings = context.settings
        return cls(parse_colour(settings.edge_colour, what="edge colour"), settings.edge_width, weight)

    def __call__(self, state: State) -> torch.Tensor:
        images = state.images.float()
        mask = border_mask(images.shape[-2], images.shape[-1], self.width, images.device)
        distance = (images - self.colour.to(images).view(1, 3, 1, 1)).pow(2).sum(1)  # (B,H,W)
        return distance[:, mask].mean(-1)
