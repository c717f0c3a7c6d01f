"""The pixel drawer: a low-resolution grid of colours, optimised directly, shown with hard edges.

No checkpoint: a picture needs only a CLIP model. The latent is one colour per cell of a grid of
``size / pixel_size`` cells; the image is that grid enlarged with nearest-neighbour sampling, so
every cell stays a flat square whatever CLIP asks for (pixel art by construction).

Choices, and why:

* Colours are stored as logits and shown through a sigmoid, not stored in [0, 1] and clamped:
  a clamped colour at 0 or 1 gets no gradient back into the range, and Adam's steps in logit
  space are gentle near the extremes, so one learning rate (0.1, the VQGAN's) suits the whole run.
  ``project_`` keeps the logits within ±6 (colours 1/400 from black or white), so a cell that
  went to an extreme can still change its mind within a few steps.
* ``random`` starts every cell at a soft random colour around mid-grey (logits of spread 0.5),
  ``mean`` closer to grey still. Uniformly random colours were tried first: cells at the border,
  which few cutouts cover, kept their random colour to the end (a blue background with green
  and orange cells on 2 of 6 demo seeds).
* ``palette_snap`` shows every cell in its nearest palette colour with a straight-through
  gradient (the VQGAN's codebook snap): the picture only ever uses the palette while the
  underlying colours still move freely. The palette loss pulls the colours toward the palette
  instead, softly; the two work together.
* ``encode`` averages each cell of an init image (the inverse of the enlargement), so
  ``--init-image`` starts from a pixelated copy of it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from ..errors import UserError
from ..palettes import parse_palette
from .base import GeneratorKind, Latent, replace_grad

#: Logits stay within ±LOGIT_BOUND (sigmoid(6) = 0.9975: one level short of white in 8 bits).
LOGIT_BOUND = 6.0
#: Spread of the ``random`` and ``mean`` starts around grey, in logits.
RANDOM_START_NOISE = 0.5
MEAN_START_NOISE = 0.2
#: Init images are clamped this far inside (0, 1) before taking logits.
_EPS = 1e-3


@dataclass(frozen=True)
class Options:
    """The pixel drawer's options: Settings fields of the same names (defaults and help live there)."""

    pixel_size: int
    palette_snap: bool
    palette: str


class PixelDrawer:
    """A grid of colours as a Generator (see :class:`clipguide.generators.base.Generator`)."""

    default_lr = 0.1
    fixed_size: tuple[int, int] | None = None

    def __init__(self, pixel_size: int = 8, *, palette: Sequence[Sequence[float]] | None = None,
                 device: torch.device | str = "cpu") -> None:
        self.size_multiple = int(pixel_size)
        self.device = torch.device(device)
        #: (K, 3) colours every cell snaps to, or None
        self.palette = torch.tensor(palette, dtype=torch.float32, device=self.device) if palette else None

    def check_size(self, size: tuple[int, int]) -> tuple[int, int]:
        """(columns, rows) of the grid for ``size`` = (W, H); UserError unless both divide evenly."""
        p = self.size_multiple
        w, h = int(size[0]), int(size[1])
        if w < p or h < p or w % p or h % p:
            tw, th = (max(p, round(s / p) * p) for s in (w, h))
            raise UserError(f"size {w}x{h} must be a multiple of the pixel size {p}; try {tw}x{th} (--size) "
                            "or another --pixel-size")
        return w // p, h // p

    # ------------------------------------------------------------------ Generator protocol
    def init_latent(self, size: tuple[int, int], rngs: Sequence[torch.Generator], start: str = "random") -> Latent:
        cols, rows = self.check_size(size)
        cells = []
        for g in rngs:
            spread = {"random": RANDOM_START_NOISE, "mean": MEAN_START_NOISE}.get(start)
            if spread is None:
                raise UserError(f"unknown init {start!r}: use 'random' or 'mean'")
            cells.append(spread * torch.randn((3, rows, cols), generator=g, device=g.device))
        return {"cells": torch.stack(cells).to(self.device).detach().clone()}

    def encode(self, images: torch.Tensor) -> Latent:
        self.check_size((images.shape[-1], images.shape[-2]))
        cells = F.avg_pool2d(images.float().to(self.device), self.size_multiple)
        return {"cells": torch.logit(cells.clamp(_EPS, 1 - _EPS)).detach().clone()}

    def colours(self, latent: Latent) -> torch.Tensor:
        """(B,3,rows,cols) colour of every cell in [0, 1] (snapped to the palette when there is one)."""
        colours = torch.sigmoid(latent["cells"])
        if self.palette is None:
            return colours
        flat = colours.detach().movedim(1, -1).reshape(-1, 3).float()
        nearest = torch.cdist(flat, self.palette).argmin(1)
        snapped = self.palette[nearest].view(*colours.shape[:1], *colours.shape[2:], 3).movedim(-1, 1)
        return replace_grad(snapped.to(colours.dtype), colours)

    def decode(self, latent: Latent) -> torch.Tensor:
        p = self.size_multiple
        colours = self.colours(latent)
        return colours if p == 1 else colours.repeat_interleave(p, dim=-2).repeat_interleave(p, dim=-1)

    def project_(self, latent: Latent) -> None:
        latent["cells"].clamp_(-LOGIT_BOUND, LOGIT_BOUND)

    def regularizer(self, latent: Latent) -> torch.Tensor:
        cells = latent["cells"]
        return cells.new_zeros(cells.shape[0])

    def output(self, latent: Latent) -> torch.Tensor:
        with torch.no_grad():
            return self.decode(latent)


def _build(device: Any, options: Options) -> PixelDrawer:
    palette = parse_palette(options.palette) if options.palette_snap else None
    return PixelDrawer(options.pixel_size, palette=palette, device=device)


KIND = GeneratorKind("pixel", options=Options, build=_build)

__all__ = ["PixelDrawer", "Options", "KIND", "LOGIT_BOUND"]
