"""Random cutouts of the image, augmented with kornia, at the size CLIP expects.

Each step the loop asks CLIP about ``cutn`` views of every image rather than the whole image: it is
what makes VQGAN+CLIP images detailed at every scale and hard to "fool". Three ways of making them
(``cut_method``), each followed by the same augments and noise:

* ``crops`` (default) — random squares, sizes ``rand() ** cut_pow`` between the smallest cutout and
  the image's short side, all cut and resized in one batched ``roi_align`` call (bilinear samples
  averaged over each output pixel, so large cutouts are anti-aliased on the way down);
* ``original`` — the same random squares, each cut and then resized by adaptive average pooling,
  as the VQGAN+CLIP notebooks do (small cutouts come out blockier, large ones alike);
* ``pooling`` — nerdyrodent's "latest": the whole image shrunk to the CLIP size by the mean of
  adaptive average and max pooling, ``cutn`` times, so only the augments vary the views (whole-image
  composition, less tiling, less fine detail).

The smallest cutout (``cut_min``) is the lineage's ``min(width, height, CLIP input size)`` unless
set: at 256x256 with ViT-B/32 every cutout is 224-256 px. Image k's boxes, augment parameters and
noise come only from its own RNG, which keeps image k of a batch the same as a single run with
that seed.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import roi_align

from .registry import AUGMENTS
from .settings import CUT_METHODS, DEFAULT_AUGMENTS


def build_augments(names: Sequence[str]) -> nn.ModuleList:
    """The augment modules named, in the registry's fixed order whatever the order of ``names``."""
    for name in names:
        AUGMENTS.check(name)
    return nn.ModuleList([module for name in AUGMENTS if name in names and (module := AUGMENTS.get(name)()) is not None])


def _merge(parts: list[dict[str, torch.Tensor]], batch_shape: torch.Size) -> dict[str, torch.Tensor]:
    """One kornia parameter dict for the whole batch from each image's own (drawn for its cutouts)."""
    merged = {}
    for key, value in parts[0].items():
        if key == "forward_input_shape":
            merged[key] = torch.tensor(batch_shape)
        elif key == "order":  # fixed in our augments (see augments.jitter), so the same for every image
            merged[key] = value
        else:
            merged[key] = torch.cat([part[key] for part in parts])
    return merged


def cut_range(width: int, height: int, cut_size: int, cut_min: float | None) -> tuple[int, int]:
    """(smallest, largest) cutout side in pixels: ``cut_min`` pixels (>= 1) or a fraction of the short
    side (< 1); by default the lineage's ``min(width, height, cut_size)``. Never more than the short side."""
    short = min(width, height)
    if cut_min is None:
        low = min(short, cut_size)
    elif cut_min < 1:
        low = max(1, int(short * cut_min))
    else:
        low = int(cut_min)
    return min(low, short), short


class Cutouts(nn.Module):
    def __init__(self, cutn: int, cut_pow: float = 1.0, augments: Sequence[str] = DEFAULT_AUGMENTS,
                 noise_fac: float = 0.1, cut_min: float | None = None, method: str = "crops") -> None:
        super().__init__()
        if method not in CUT_METHODS:
            raise ValueError(f"unknown cut method {method!r}")
        self.cutn = cutn
        self.cut_pow = cut_pow
        self.noise_fac = noise_fac if "noise" in augments else 0.0
        self.cut_min = cut_min
        self.method = method
        self.augs = build_augments(augments)

    def boxes(self, width: int, height: int, rng: torch.Generator, cut_size: int) -> torch.Tensor:
        """(cutn, 4) boxes x1,y1,x2,y2 in pixels, drawn from ``rng`` (on the CPU)."""
        min_size, max_size = cut_range(width, height, cut_size, self.cut_min)
        u = torch.rand(self.cutn, 3, generator=rng, dtype=torch.float64)
        sizes = (u[:, 0] ** self.cut_pow * (max_size - min_size) + min_size).floor()
        x1 = (u[:, 1] * (width - sizes + 1)).floor()
        y1 = (u[:, 2] * (height - sizes + 1)).floor()
        return torch.stack([x1, y1, x1 + sizes, y1 + sizes], dim=1).float()

    def forward(self, images: torch.Tensor, cut_size: int, rngs: Sequence[torch.Generator]) -> torch.Tensor:
        """(B,3,H,W) in [0,1] → (B*cutn, 3, cut_size, cut_size), image k's cutouts in rows k*cutn…"""
        # The crop and the augments always run in fp32, also under bf16/fp16 autocast: kornia's
        # colour and warp maths divides by small differences, which gave NaN gradients in fp16.
        # It is a small share of the step; CLIP's autocast takes over again for the embedding.
        with torch.autocast(images.device.type, enabled=False):
            return self._augment(self._views(images.float(), cut_size, rngs), rngs)

    def _views(self, images: torch.Tensor, cut_size: int, rngs: Sequence[torch.Generator]) -> torch.Tensor:
        """The un-augmented views, (B*cutn, 3, cut_size, cut_size)."""
        height, width = images.shape[-2:]
        if self.method == "pooling":
            pooled = (F.adaptive_avg_pool2d(images, cut_size) + F.adaptive_max_pool2d(images, cut_size)) / 2
            return pooled.repeat_interleave(self.cutn, dim=0)
        boxes = [self.boxes(width, height, g, cut_size) for g in rngs]
        if self.method == "original":
            views = []
            for k, image_boxes in enumerate(boxes):
                for x1, y1, x2, y2 in image_boxes.long().tolist():
                    views.append(F.adaptive_avg_pool2d(images[k:k + 1, :, y1:y2, x1:x2], cut_size))
            return torch.cat(views)
        boxes = [b.to(images.device, images.dtype) for b in boxes]
        return roi_align(images, boxes, output_size=cut_size, aligned=True, sampling_ratio=-1)

    def _augment(self, cutouts: torch.Tensor, rngs: Sequence[torch.Generator]) -> torch.Tensor:
        """Every augment applied once to the whole batch, with per-cutout parameters drawn per image.

        Image k's parameters and noise come from one seed drawn from its own RNG, so they never
        depend on the other images of the batch; the work itself is one kornia call per augment.
        """
        if not self.augs and not self.noise_fac:
            return cutouts
        seeds = [int(torch.randint(2**62, (1,), generator=g)) for g in rngs]
        shape = torch.Size((self.cutn, *cutouts.shape[1:]))
        devices = [cutouts.device] if cutouts.device.type == "cuda" else []
        params: list[list[dict]] = []
        noises = []
        with torch.random.fork_rng(devices=devices):
            for seed in seeds:
                torch.manual_seed(seed)
                params.append([module.forward_parameters(shape) for module in self.augs])
                if self.noise_fac:
                    facs = torch.rand(self.cutn, 1, 1, 1, device=cutouts.device).mul(self.noise_fac)
                    noises.append(facs * torch.randn(shape, device=cutouts.device))
        for i, module in enumerate(self.augs):
            cutouts = module(cutouts, params=_merge([p[i] for p in params], cutouts.shape))
        return cutouts + torch.cat(noises).to(cutouts.dtype) if noises else cutouts
