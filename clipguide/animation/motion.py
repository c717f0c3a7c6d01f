"""The 2d mode (pytti's and Disco Diffusion's 2D animation, nerdyrodent's zoom video): every frame
starts from the last one zoomed, rotated and moved about the picture's centre.

Zoom, angle and translation are schedules of the frame index, so ``--zoom "0:1.0, 60:1.05"`` eases
the zoom in over the first 60 frames. Edges that come into view are filled by reflecting the
picture, which the following steps then repaint.
"""

from __future__ import annotations

import torch

from .modes import Mode


def transform(images: torch.Tensor, *, zoom: float, angle: float, translate: tuple[float, float]) -> torch.Tensor:
    """``images`` (B,3,H,W) scaled by ``zoom`` and rotated by ``angle`` degrees (counter-clockwise)
    about the centre, then moved by ``translate`` = (right, down) pixels; same size, borders reflected."""
    from kornia.geometry.transform import get_rotation_matrix2d, warp_affine

    batch, _, height, width = images.shape
    images = images.float()
    centre = images.new_tensor([[(width - 1) / 2, (height - 1) / 2]]).expand(batch, 2)
    matrix = get_rotation_matrix2d(centre, images.new_full((batch,), float(angle)),
                                   images.new_full((batch, 2), float(zoom)))
    matrix[:, 0, 2] += float(translate[0])
    matrix[:, 1, 2] += float(translate[1])
    moved = warp_affine(images, matrix, dsize=(height, width), mode="bilinear", padding_mode="reflection",
                        align_corners=True)
    return moved.clamp(0, 1)


class Motion2D(Mode):
    """Zoom, rotate and translate the last frame (each a number or keyframes by frame)."""

    name = "2d"

    def __init__(self, anim, limits=None) -> None:
        super().__init__(anim, limits)
        self.schedules = anim.motion()

    def values(self, frame: int) -> dict[str, float]:
        """The motion from frame ``frame - 1`` to ``frame``."""
        return {name: schedule(frame) for name, schedule in self.schedules.items()}

    def start(self, frame: int, previous: torch.Tensor) -> torch.Tensor:
        v = self.values(frame)
        if v["zoom"] == 1 and v["angle"] == 0 and v["translate_x"] == 0 and v["translate_y"] == 0:
            return previous  # nothing moves: the frame goes on from the last exactly
        return transform(previous, zoom=v["zoom"], angle=v["angle"], translate=(v["translate_x"], v["translate_y"]))


__all__ = ["Motion2D", "transform"]
