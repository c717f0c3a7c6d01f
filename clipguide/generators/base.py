"""The small protocol every generator implements.

A latent is a ``dict[str, Tensor]`` whose tensors all have the batch (one entry per seed) as
their first dimension. The engine optimises every tensor whose key does not start with ``_``;
keys starting with ``_`` are state the generator keeps itself (an EMA, say). Because each
image's latent rows, random numbers and loss terms are separate, image k of a batch ends up
the same as a single run with seed ``seed + k``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import torch

Latent = dict[str, torch.Tensor]


@runtime_checkable
class Generator(Protocol):
    #: Adam learning rate the lineage uses with this generator.
    default_lr: float
    #: Output sides must be multiples of this (VQGAN: 2**downsampling; BigGAN: its fixed size).
    size_multiple: int
    #: Fixed output size (BigGAN) or None when any multiple of size_multiple works.
    fixed_size: tuple[int, int] | None

    def init_latent(self, size: tuple[int, int], rngs: Sequence[torch.Generator], start: str = "random") -> Latent:
        """Starting latents, row k drawn only from ``rngs[k]``. size = (width, height).

        ``start`` is the ``init`` setting: "random" (every generator) or "mean" (generators with a
        codebook); a generator raises UserError for a start it does not have."""
        ...

    def encode(self, images: torch.Tensor) -> Latent:
        """Latents that decode to ``images`` ((B,3,H,W) in [0,1]); raises UserError if unsupported."""
        ...

    def decode(self, latent: Latent) -> torch.Tensor:
        """(B,3,H,W) image in [0,1], differentiable w.r.t. the latent."""
        ...

    def project_(self, latent: Latent) -> None:
        """In-place fix-up after each optimiser step (codebook clamp, truncation, EMA update)."""
        ...

    def regularizer(self, latent: Latent) -> torch.Tensor:
        """Extra loss per image, shape (B,); zeros when the generator has none."""
        ...

    def output(self, latent: Latent) -> torch.Tensor:
        """The image to show and save (e.g. decoded from the EMA); (B,3,H,W) in [0,1], no grad needed."""
        ...


@dataclass(frozen=True)
class GeneratorKind:
    """How one kind of generator is built; registered in :data:`clipguide.registry.GENERATORS`.

    ``options`` is the kind's frozen options dataclass: its field names are Settings fields, its
    values are read from the settings (:meth:`options_from`), and the object is part of the model
    cache key, so two runs that differ in an option never share a built model. The builders take
    ``(source, device, options)``: ``from_files`` a manifest entry's files by role, ``from_path``
    a local file or folder that ``detect`` recognised, ``build`` nothing (drawers without weights).
    """

    name: str
    options: type | None = None
    from_files: Callable[[dict[str, Path], Any, Any], "Generator"] | None = None
    detect: Callable[[Path], bool] | None = None
    from_path: Callable[[Path, Any, Any], "Generator"] | None = None
    build: Callable[[Any, Any], "Generator"] | None = None
    #: what a local path of this kind looks like, for "cannot tell what this is" errors
    layout: str = ""

    def options_from(self, settings: Any) -> Any:
        if self.options is None:
            return None
        return self.options(**{f.name: getattr(settings, f.name) for f in fields(self.options)})


def clamp_with_grad(x: torch.Tensor, low: float = 0.0, high: float = 1.0) -> torch.Tensor:
    """Clamp in the forward pass; in the backward pass let gradients through only where they
    move the value back toward the range (VQGAN+CLIP's ClampWithGrad)."""
    return _ClampWithGrad.apply(x, low, high)


class _ClampWithGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, low, high):  # type: ignore[override]
        ctx.low, ctx.high = low, high
        ctx.save_for_backward(x)
        return x.clamp(low, high)

    @staticmethod
    def backward(ctx, grad):  # type: ignore[override]
        (x,) = ctx.saved_tensors
        # A gradient step is x - lr*grad: keep grad where it points back into the range.
        keep = (grad * (x - x.clamp(ctx.low, ctx.high))) >= 0
        return grad * keep, None, None


def replace_grad(forward_value: torch.Tensor, backward_value: torch.Tensor) -> torch.Tensor:
    """Straight-through estimator: value of ``forward_value``, gradient of ``backward_value``."""
    return backward_value + (forward_value - backward_value).detach()
