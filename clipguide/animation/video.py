"""The video mode (nerdyrodent's video styler, rkhamilton's flicker reduction): style the frames of a
source video.

Frame 0 starts from the source's first frame. Every later frame starts from the previous
*generated* frame, so the style carries over and does not flicker, and a loss term pulls it toward
the current source frame, so it follows the video's motion. ``--smooth`` (in the loop) averages
the latents of successive frames on top of that.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import UserError
from ..losses import LossTerm, State
from .modes import Mode
from .settings import LIMITS
from .sources import SourceFrames


class SourcePull(LossTerm):
    """Pixel MSE between each image and its source frame; the target is replaced every frame."""

    name = "source"

    def __init__(self, target: torch.Tensor, weight: float = 1.0) -> None:
        super().__init__(weight)
        self.target = target

    def __call__(self, state: State) -> torch.Tensor:
        return F.mse_loss(state.images.float(), self.target, reduction="none").mean(dim=(1, 2, 3))


class VideoStyle(Mode):
    """Each output frame: the previous output, pulled toward the source frame of the same index."""

    name = "video"
    aligned = True

    def __init__(self, anim, limits=None) -> None:
        super().__init__(anim, limits)
        cap = {**LIMITS, **(limits or {})}["frames"]
        self.source = SourceFrames(anim.video_init, cap=cap, wanted=anim.frames)
        self.source_frames = len(self.source)
        self.source_fps = self.source.fps
        self.source_size = self.source.size
        self.term: SourcePull | None = None
        self._last: tuple[int, torch.Tensor] | None = None

    def prepare(self, run) -> None:
        if run.resolved.init_image:
            raise UserError("a styled video starts from its own first frame: leave out --init-image "
                            "(or leave out --video-init)")
        self.size, self.batch = run.size, len(run.seeds)
        self.device = next(iter(run.latent.values())).device
        self.term = SourcePull(self.frame(0), self.anim.video_weight)
        run.terms.append(self.term)

    def frame(self, index: int) -> torch.Tensor:
        """Source frame ``index`` at the run's size, (B,3,H,W) in [0,1], one copy per seed."""
        if self._last is None or self._last[0] != index:  # frame 0 is asked for thrice: decode it once
            array = np.asarray(self.source.get(index, self.size), dtype=np.uint8).copy()
            image = torch.from_numpy(array).permute(2, 0, 1)[None].float().div(255)
            self._last = (index, image.to(self.device).expand(self.batch, -1, -1, -1))
        return self._last[1]

    def first(self) -> torch.Tensor:
        return self.frame(0)

    def start(self, frame: int, previous: torch.Tensor) -> torch.Tensor:
        return previous

    def before(self, frame: int) -> None:
        assert self.term is not None, "prepare() first"
        self.term.target = self.frame(frame)

    def close(self) -> None:
        self.source.close()


__all__ = ["VideoStyle", "SourcePull"]
