"""What an animation mode is: how frame f starts from frame f-1.

A mode is a subclass of :class:`Mode` in its own module, registered in
:data:`clipguide.registry.ANIMATION_MODES`; :func:`clipguide.animation.loop.animate` asks it, per
frame, for the picture the frame starts from (it re-encodes that picture as the latent and runs the
frame's steps), and lets it steer the run (extra loss terms, a per-frame target). Modes see pictures
as (B,3,H,W) tensors in [0,1] on the run's device, one row per seed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    import torch

    from ..engine import Run
    from .settings import AnimationSettings


class Mode:
    """Base class of an animation mode: override :meth:`start` (and what else the mode needs)."""

    name: ClassVar[str] = "mode"
    #: Frames line up pixel for pixel (a styled video), so their latents may be averaged (--smooth).
    aligned: ClassVar[bool] = False

    def __init__(self, anim: AnimationSettings, limits: dict[str, int] | None = None) -> None:
        """Open and check the mode's inputs (no model is loaded yet); a UserError for a bad one."""
        self.anim = anim
        #: What a source says, when the mode has one: frame count, frames per second, (width, height).
        self.source_frames: int | None = None
        self.source_fps: float | None = None
        self.source_size: tuple[int, int] | None = None

    def prepare(self, run: Run) -> None:
        """The run is built (its size and device are known): add terms, load what the frames need."""

    def first(self) -> torch.Tensor | None:
        """The picture frame 0 starts from, or None for the run's own start (random codes, --init-image)."""
        return None

    def start(self, frame: int, previous: torch.Tensor) -> torch.Tensor:
        """The picture frame ``frame`` (≥ 1) starts from, given the saved frame before it."""
        raise NotImplementedError

    def before(self, frame: int) -> None:
        """Just before the steps of ``frame`` (0 included): retarget per-frame terms."""

    def close(self) -> None:
        """Release what :meth:`__init__` or :meth:`prepare` opened."""


__all__ = ["Mode"]
