"""The optimisation loop. No I/O, no prints, no globals: it reports through a callback.

Per step: decode the latent, cut out and augment, embed with each CLIP model, sum the
spherical-distance losses per image (averaged over CLIP models) plus the generator's own
regulariser, take one optimiser step, then let the generator project the latent back
(codebook clamp, EMA, …). Every per-image term stays per image, so image k of a batch gets
exactly the gradient it would get alone.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from .cutouts import Cutouts
from .errors import NonFiniteLossError, UserError
from .generators.base import Generator, Latent
from .perceptor import Perceptor
from .prompts import spherical_distance_loss


@dataclass
class Targets:
    """What one CLIP model steers toward: unit embeddings (T,D) with weights and stops (T,)."""

    embeds: torch.Tensor
    weights: torch.Tensor
    stops: torch.Tensor


@dataclass(frozen=True)
class LoopConfig:
    steps: int
    lr: float
    optimizer: str = "adam"
    init_weight: float = 0.0
    autocast_dtype: torch.dtype | None = None
    # After a NaN/Inf loss the last finite latent is restored and the lr halved, this many times.
    max_nan_retries: int = 3


@dataclass
class Step:
    """One finished optimisation step, as the callback sees it."""

    i: int  # 1-based
    steps: int
    losses: list[float]  # per image
    lr: float
    _render: Callable[[], torch.Tensor] = field(repr=False)
    _image: torch.Tensor | None = field(default=None, repr=False)

    @property
    def loss(self) -> float:
        return sum(self.losses)

    def image(self) -> torch.Tensor:
        """The current images (B,3,H,W) in [0,1] on the CPU; decoded only when asked for."""
        if self._image is None:
            self._image = self._render()
        return self._image


@dataclass
class LoopResult:
    latent: Latent
    steps_done: int
    losses: list[float]
    stopped: bool  # by the callback or Ctrl-C, before the last step
    lr: float


Callback = Callable[[Step], "bool | None"]


def make_optimizer(name: str, params: Sequence[torch.Tensor], lr: float) -> torch.optim.Optimizer:
    if name == "adam":
        return torch.optim.Adam(params, lr=lr)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=0.01)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=0.9)
    raise UserError(f"unknown optimizer {name!r}: choose adam, adamw or sgd")


def image_losses(generator: Generator, perceptor: Perceptor, targets: Sequence[Targets], cutouts: Cutouts,
                 latent: Latent, generators: Sequence[torch.Generator], init_images: torch.Tensor | None = None,
                 init_weight: float = 0.0) -> torch.Tensor:
    """The loss of every image of the batch, shape (B,), differentiable w.r.t. the latent."""
    images = generator.decode(latent)
    batch = images.shape[0]
    per_image = generator.regularizer(latent).float()
    for model, target in zip(perceptor.models, targets):
        cut = cutouts(images, model.input_size, generators)
        embeds = model.embed_images(cut).view(batch, cutouts.cutn, -1)
        per_image = per_image + spherical_distance_loss(embeds, target.embeds, target.weights, target.stops) / len(targets)
    if init_images is not None and init_weight:
        per_image = per_image + init_weight * F.mse_loss(images.float(), init_images, reduction="none").mean(dim=(1, 2, 3))
    return per_image


def run(generator: Generator, perceptor: Perceptor, targets: Sequence[Targets], cutouts: Cutouts, latent: Latent,
        generators: Sequence[torch.Generator], config: LoopConfig, callback: Callback | None = None,
        init_images: torch.Tensor | None = None) -> LoopResult:
    """Optimise ``latent`` in place for ``config.steps`` steps; returns where it got to.

    The callback may return True to stop early; Ctrl-C (KeyboardInterrupt) also stops and
    returns the latest latent, so a front end can still save what was made.
    """
    params = [v.requires_grad_(True) for k, v in latent.items() if not k.startswith("_")]
    lr = config.lr
    optimizer = make_optimizer(config.optimizer, params, lr)
    device_type = params[0].device.type
    autocast = (torch.autocast(device_type, dtype=config.autocast_dtype) if config.autocast_dtype
                else contextlib.nullcontext())
    last_good = _snapshot(latent)
    losses: list[float] = []
    retries = 0
    i = 0
    try:
        while i < config.steps:
            optimizer.zero_grad(set_to_none=True)
            with autocast:
                per_image = image_losses(generator, perceptor, targets, cutouts, latent, generators,
                                         init_images, config.init_weight)
            total = per_image.sum()
            if not torch.isfinite(total):
                retries += 1
                if retries > config.max_nan_retries:
                    raise NonFiniteLossError(
                        f"the loss became NaN/Inf at step {i + 1} even after lowering the lr to {lr:g}: "
                        "try a smaller --lr or --precision fp32")
                _restore(latent, last_good)
                lr /= 2
                optimizer = make_optimizer(config.optimizer, params, lr)
                continue
            total.backward()
            optimizer.step()
            with torch.no_grad():
                generator.project_(latent)
            last_good = _snapshot(latent)
            losses = per_image.detach().float().cpu().tolist()
            i += 1
            if callback is not None:
                step = Step(i, config.steps, losses, lr, lambda: _render(generator, latent))
                if callback(step):
                    return LoopResult(latent, i, losses, i < config.steps, lr)
    except KeyboardInterrupt:
        _restore(latent, last_good)  # the interrupted step may have left a half-updated latent
        return LoopResult(latent, i, losses, True, lr)
    return LoopResult(latent, i, losses, False, lr)


@torch.no_grad()
def _render(generator: Generator, latent: Latent) -> torch.Tensor:
    return generator.output(latent).float().cpu()


def _snapshot(latent: Latent) -> Latent:
    return {k: v.detach().clone() for k, v in latent.items()}


@torch.no_grad()
def _restore(latent: Latent, saved: Latent) -> None:
    for k, v in saved.items():
        latent[k].copy_(v)

