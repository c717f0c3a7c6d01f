"""Random cutouts of the image, augmented with kornia, at the size CLIP expects.

Each step the loop asks CLIP about ``cutn`` random squares of every image rather than the whole
image: it is what makes VQGAN+CLIP images detailed at every scale and hard to "fool". Sizes follow
``rand() ** cut_pow`` between a minimum and the image's short side.

All cutouts of all images are cropped and resized in one batched ``roi_align`` call (area-averaging,
so large cutouts are anti-aliased on the way down), then augmented per image: image k's cutout
boxes, augmentation parameters and noise come only from its own ``torch.Generator``, which keeps
image k of a batch identical to a single run with that seed.
"""

from __future__ import annotations

from collections.abc import Sequence

import kornia.augmentation as K
import torch
from torch import nn
from torchvision.ops import roi_align

from .registry import AUGMENTS
from .settings import DEFAULT_AUGMENTS


def build_augments(names: Sequence[str]) -> nn.Module:
    """The augment modules named, in the registry's fixed order whatever the order of ``names``."""
    for name in names:
        AUGMENTS.check(name)
    modules = [module for name in AUGMENTS if name in names and (module := AUGMENTS.get(name)()) is not None]
    return K.AugmentationSequential(*modules) if modules else nn.Identity()


class Cutouts(nn.Module):
    def __init__(self, cutn: int, cut_pow: float = 1.0, augments: Sequence[str] = DEFAULT_AUGMENTS,
                 noise_fac: float = 0.1, min_fraction: float = 0.25) -> None:
        super().__init__()
        self.cutn = cutn
        self.cut_pow = cut_pow
        self.noise_fac = noise_fac if "noise" in augments else 0.0
        self.min_fraction = min_fraction
        self.augs = build_augments(augments)

    def boxes(self, width: int, height: int, rng: torch.Generator) -> torch.Tensor:
        """(cutn, 4) boxes x1,y1,x2,y2 in pixels, drawn from ``rng`` (on the CPU)."""
        max_size = min(width, height)
        min_size = min(max_size, max(1, int(max_size * self.min_fraction)))
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
            return self._cut(images.float(), cut_size, rngs)

    def _cut(self, images: torch.Tensor, cut_size: int, rngs: Sequence[torch.Generator]) -> torch.Tensor:
        batch, _, height, width = images.shape
        boxes = [self.boxes(width, height, g).to(images.device, images.dtype) for g in rngs]
        cutouts = roi_align(images, boxes, output_size=cut_size, aligned=True, sampling_ratio=-1)
        # One augment seed per image per step, drawn from that image's RNG, so the
        # augment randomness of image k never depends on the other images in the batch.
        seeds = [int(torch.randint(2**62, (1,), generator=g)) for g in rngs]
        devices = [images.device] if images.device.type == "cuda" else []
        out = []
        with torch.random.fork_rng(devices=devices):
            for k, seed in enumerate(seeds):
                torch.manual_seed(seed)
                chunk = self.augs(cutouts[k * self.cutn:(k + 1) * self.cutn])
                if self.noise_fac:
                    facs = torch.rand(self.cutn, 1, 1, 1, device=chunk.device).mul(self.noise_fac).to(chunk.dtype)
                    chunk = chunk + facs * torch.randn_like(chunk)
                out.append(chunk)
        return torch.cat(out)
