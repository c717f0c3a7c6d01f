"""The symmetry term: how far each image is from its own mirror image.

Mean squared difference between the picture and its mirror (left–right by default, top–bottom or
both with ``symmetry_axis``). Both halves get the gradient, so they meet in the middle.
"""

from __future__ import annotations

import torch

from . import Context, LossTerm, State

#: the image dimensions each ``symmetry_axis`` mirrors along (images are (B,3,H,W))
AXES = {"left-right": (-1,), "top-bottom": (-2,), "both": (-1, -2)}


class Symmetry(LossTerm):
    name = "symmetry"

    def __init__(self, weight=1.0, axis: str = "left-right") -> None:
        super().__init__(weight)
        self.dims = AXES[axis]

    @classmethod
    def build(cls, context: Context, weight) -> "Symmetry":
        return cls(weight, context.settings.symmetry_axis)

    def __call__(self, state: State) -> torch.Tensor:
        images = state.images.float()
        total = images.new_zeros(images.shape[0])
        for dim in self.dims:
            total = total + (images - images.flip(dim)).pow(2).mean(dim=(1, 2, 3))
        return total / len(self.dims)
