"""BigGAN-deep as a clipguide generator, following Big Sleep's recipe.

Big Sleep (lucidrains/big-sleep) optimises, per image:

* one noise vector per generator stage (the first feeds the ``gen_z`` linear layer, one more per
  ``GenBlock``), kept near N(0, 1) by extra losses on their mean, std, skew and kurtosis;
* 1000 class logits through a sigmoid (or a soft top-k over at most K classes), started around
  -3.9 so every class begins nearly off, with a loss that keeps all but the strongest class small;
* an exponential moving average (bias-corrected, as in Big Sleep's ``EMA``) of those latents,
  from which the image that is shown and saved is decoded; Adam uses lr 0.07.

Differences from Big Sleep, each deliberate:

* One class vector per image (shape (B, 1000)) shared by all stages; Big Sleep keeps one per stage.
* The noise is fed to the network multiplied by ``truncation`` and the batch-norm statistics for
  that truncation are used (BigGAN's truncation trick); at the default 1.0 this is Big Sleep exactly.
  Below 1.0 the unit noise is also clamped to [-2, 2] after each step, the support of the
  truncated normal BigGAN samples from, so the network sees |z| <= 2 * truncation.
* The losses are scaled by :data:`BIG_SLEEP_BALANCE` so that weight 1.0 keeps Big Sleep's balance
  against clipguide's spherical-distance CLIP loss (Big Sleep's CLIP term is ``-100 * cos``).
* The term ``4 * max(mean(z**2), 1)`` is written ``4 * relu(mean(z**2) - 1)``: same gradient,
  but a loss reading of 0 instead of a constant 4.

Weights are the published ``pytorch-pretrained-biggan`` format: a folder with ``config.json``
(a ``BigGANConfig``) and ``pytorch_model.bin`` (a plain state dict, loaded with
``weights_only=True``). The package is imported lazily so ``import clipguide`` stays cheap.

Loading and format detection live in :mod:`clipguide.generators.biggan_files`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from functools import lru_cache
from importlib import resources
from typing import Any

import torch
from torch import nn

from ..errors import UserError, unknown
from .base import Latent

#: Big Sleep's starting point: unit noise, class logits around -3.9 so sigmoid(logits) ~ 0.02.
INIT_NOISE_STD = 1.0
INIT_CLASS_MEAN = -3.9
INIT_CLASS_STD = 0.3
#: Big Sleep's softmax temperature in its differentiable top-k.
CLASS_TEMPERATURE = 2.0
#: Big Sleep's CLIP loss is -100·cos(image, text); clipguide's is the squared great-circle
#: distance θ², whose slope d(θ²)/d(cos) = -2θ/sin θ is about -2.65 at cos ≈ 0.3 (typical CLIP
#: similarities). Multiplying Big Sleep's latent/class losses by 2.65/100 keeps their weight
#: relative to the CLIP gradient the same as in Big Sleep.
BIG_SLEEP_BALANCE = 2.65 / 100
#: Truncated-normal support BigGAN samples its noise from (pytorch_pretrained_biggan uses ±2).
NOISE_BOUND = 2.0

_EMA_KEYS = {"noise": "_ema_noise", "class_logits": "_ema_class_logits"}


# ---------------------------------------------------------------------------- ImageNet names
@lru_cache(maxsize=1)
def imagenet_classes() -> tuple[str, ...]:
    """The 1000 ImageNet class names in class-index order.

    ``clipguide/data/imagenet_classes.json`` was generated once from
    ``open_clip.IMAGENET_CLASSNAMES`` (see the file's ``source`` field).
    """
    text = resources.files("clipguide").joinpath("data/imagenet_classes.json").read_text(encoding="utf-8")
    return tuple(json.loads(text)["names"])


def class_indices(names: Sequence[str], num_classes: int = 1000) -> list[int]:
    """Indices of ImageNet class names (case-insensitive; a name listed twice gives both indices)."""
    table = imagenet_classes()
    if num_classes != len(table):
        raise UserError(f"this BigGAN has {num_classes} classes, not the 1000 ImageNet ones; "
                        f"leave 'classes' empty to use it")
    by_name: dict[str, list[int]] = {}
    for i, n in enumerate(table):
        by_name.setdefault(n.lower(), []).append(i)
    out: list[int] = []
    for name in names:
        hits = by_name.get(name.strip().lower())
        if hits is None:
            raise unknown("ImageNet class", name, table)
        out.extend(i for i in hits if i not in out)
    return out


# ---------------------------------------------------------------------------- class vectors
def soft_top_k(logits: torch.Tensor, k: int, temperature: float = CLASS_TEMPERATURE) -> torch.Tensor:
    """Big Sleep's differentiable top-k: k rounds of softmax, each keeping the largest probability
    (with its gradient) and removing that class. At most k entries per row are non-zero."""
    x = logits / temperature
    out = torch.zeros_like(logits)
    for _ in range(k):
        value, index = x.softmax(dim=-1).max(dim=-1, keepdim=True)
        out = out + torch.zeros_like(logits).scatter(-1, index, value)
        x = x.scatter(-1, index, float("-inf"))
    return out


# ---------------------------------------------------------------------------- the generator
class BigGANGenerator(nn.Module):
    """A BigGAN-deep generator driven by per-stage noise and class logits (Big Sleep).

    Latent keys: ``noise`` (B, num_layers, z_dim) and ``class_logits`` (B, num_classes) are
    optimised; ``_ema_noise``, ``_ema_class_logits`` and ``_ema_accum`` (B,) hold the EMA.
    """

    default_lr = 0.07

    def __init__(
        self,
        config: Any,
        state_dict: dict[str, torch.Tensor],
        *,
        truncation: float = 1.0,
        max_classes: int | None = None,
        classes: Sequence[str] = (),
        ema_decay: float = 0.99,
        latent_loss_weight: float = 1.0,
        class_loss_weight: float = 1.0,
        regularizer_scale: float = BIG_SLEEP_BALANCE,
    ) -> None:
        super().__init__()
        BigGAN, BigGANConfig = _package()
        if isinstance(config, dict):
            config = BigGANConfig.from_dict(config)
        if not 0.0 < truncation <= 1.0:
            raise UserError(f"truncation must be in (0, 1], got {truncation}")
        if not 0.0 <= ema_decay < 1.0:
            raise UserError(f"ema_decay must be in [0, 1), got {ema_decay}")
        if max_classes is not None and not 1 <= max_classes <= config.num_classes:
            raise UserError(f"max_classes must be between 1 and {config.num_classes}, got {max_classes}")

        res = _resolution(config)
        self.config = config
        self.fixed_size: tuple[int, int] | None = (res, res)
        self.size_multiple = res
        self.num_layers = len(config.layers) + 1  # gen_z plus one per GenBlock
        self.z_dim = int(config.z_dim)
        self.num_classes = int(config.num_classes)
        self.truncation = float(truncation)
        self.noise_bound = NOISE_BOUND if truncation < 1.0 else None
        self.ema_decay = float(ema_decay)
        self.latent_loss_weight = float(latent_loss_weight)
        self.class_loss_weight = float(class_loss_weight)
        self.regularizer_scale = float(regularizer_scale)

        allowed = None
        if classes:
            allowed = torch.zeros(self.num_classes, dtype=torch.bool)
            allowed[class_indices(classes, self.num_classes)] = True
        self.register_buffer("allowed", allowed, persistent=False)
        self.max_classes = None if max_classes is None else min(
            int(max_classes), int(allowed.sum()) if allowed is not None else self.num_classes)

        # Building the network initialises random weights; keep that off the caller's global RNG.
        with torch.random.fork_rng(devices=[]):
            self.model = BigGAN(config)
        _load_weights(self.model, state_dict)
        self.model.eval().requires_grad_(False)

    # ------------------------------------------------------------------ helpers
    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def train(self, mode: bool = True) -> "BigGANGenerator":
        # The network is frozen inference only (spectral norm must not run power iterations).
        super().train(mode)
        self.model.eval()
        return self

    def class_probs(self, class_logits: torch.Tensor) -> torch.Tensor:
        """The class vector fed to the network: sigmoid, or soft top-k with ``max_classes``;
        exactly zero outside ``classes`` when those are given."""
        if self.max_classes is not None:
            if self.allowed is not None:
                class_logits = class_logits.masked_fill(~self.allowed, float("-inf"))
            return soft_top_k(class_logits, self.max_classes)
        probs = torch.sigmoid(class_logits)
        if self.allowed is not None:
            probs = probs * self.allowed.to(probs.dtype)
        return probs

    def top_classes(self, latent: Latent, k: int = 3) -> list[list[tuple[str, float]]]:
        """The k strongest classes of each image's EMA latent, as (ImageNet name, weight)."""
        logits = latent.get("_ema_class_logits", latent["class_logits"])
        with torch.no_grad():
            values, indices = self.class_probs(logits).topk(k, dim=-1)
        names = imagenet_classes() if self.num_classes == 1000 else None
        return [[(names[i] if names else str(i), float(v)) for v, i in zip(vs.tolist(), ix.tolist())]
                for vs, ix in zip(values, indices)]

    def _synthesize(self, noise: torch.Tensor, class_logits: torch.Tensor) -> torch.Tensor:
        """Run the BigGAN-deep generator with a different noise vector per stage.

        ``BigGAN.forward`` takes one z for every stage; like Big Sleep we walk the package's
        ``Generator`` ourselves: stage 0's condition vector feeds ``gen_z``, stage j the j-th
        ``GenBlock``. A condition vector is [noise_j * truncation, class embedding]."""
        from pytorch_pretrained_biggan.model import GenBlock

        g, t = self.model.generator, self.truncation
        dtype = self.model.embeddings.weight.dtype  # the network may have been cast to half precision
        embed = self.model.embeddings(self.class_probs(class_logits).to(dtype))
        cond = torch.cat([(noise * t).to(dtype), embed[:, None].expand(-1, noise.shape[1], -1)], dim=2)
        x = g.gen_z(cond[:, 0])
        # The package's TF-compatible layout: (B, 4, 4, C) -> (B, C, 4, 4).
        x = x.view(-1, 4, 4, 16 * self.config.channel_width).permute(0, 3, 1, 2).contiguous()
        stage = 1
        for layer in g.layers:
            if isinstance(layer, GenBlock):
                x = layer(x, cond[:, stage], t)
                stage += 1
            else:  # self-attention
                x = layer(x)
        x = g.conv_to_rgb(g.relu(g.bn(x, t)))[:, :3]
        return (torch.tanh(x.float()) + 1) / 2  # BigGAN makes [-1, 1]

    # ------------------------------------------------------------------ protocol
    def init_latent(self, size: tuple[int, int], rngs: Sequence[torch.Generator], start: str = "random") -> Latent:
        """Big Sleep's start: noise ~ N(0, 1), class logits ~ N(-3.9, 0.3); row k from rngs[k]."""
        if tuple(size) != self.fixed_size:
            res = self.size_multiple
            raise UserError(f"this BigGAN makes {res}x{res} images only, not {size[0]}x{size[1]}; "
                            f"set size to {res}x{res}")
        if start != "random":  # no codebook to start from the mean of
            raise UserError(f"init {start!r} needs a VQGAN generator; BigGAN starts from noise: set init to random (--init random)")
        noise, logits = [], []
        for gen in rngs:
            n = torch.randn(self.num_layers, self.z_dim, generator=gen, device=gen.device)
            c = torch.randn(self.num_classes, generator=gen, device=gen.device)
            noise.append(n * INIT_NOISE_STD)
            logits.append(c * INIT_CLASS_STD + INIT_CLASS_MEAN)
        latent = {"noise": torch.stack(noise).to(self.device),
                  "class_logits": torch.stack(logits).to(self.device)}
        if self.noise_bound is not None:
            latent["noise"].clamp_(-self.noise_bound, self.noise_bound)
        # Big Sleep's EMA takes its first sample at construction: average = start, accum = decay.
        for key, ema_key in _EMA_KEYS.items():
            latent[ema_key] = latent[key].clone()
        latent["_ema_accum"] = torch.full((len(rngs),), self.ema_decay, device=self.device)
        return latent

    def encode(self, images: torch.Tensor) -> Latent:
        raise UserError("BigGAN cannot start from an init image (setting init_image, --init-image); use a VQGAN generator for it")

    def decode(self, latent: Latent) -> torch.Tensor:
        """(B, 3, R, R) in [0, 1], differentiable w.r.t. ``noise`` and ``class_logits``."""
        return self._synthesize(latent["noise"], latent["class_logits"])

    @torch.no_grad()
    def output(self, latent: Latent) -> torch.Tensor:
        """The image decoded from the EMA latents (the live ones if no EMA is held)."""
        noise = latent.get("_ema_noise", latent["noise"])
        logits = latent.get("_ema_class_logits", latent["class_logits"])
        return self._synthesize(noise, logits)

    @torch.no_grad()
    def project_(self, latent: Latent) -> None:
        """After each step: clamp the noise when truncating, then update the bias-corrected EMA
        (Big Sleep's ``EMA.update``; with ema_decay 0 the EMA is the live latent)."""
        if self.noise_bound is not None:
            latent["noise"].clamp_(-self.noise_bound, self.noise_bound)
        if "_ema_accum" not in latent:
            return
        d = self.ema_decay
        accum = latent["_ema_accum"]
        new_accum = accum * d
        for key, ema_key in _EMA_KEYS.items():
            avg, live = latent[ema_key], latent[key]
            shape = (-1,) + (1,) * (live.dim() - 1)
            biased = avg * (1 - accum).view(shape) * d + (1 - d) * live
            avg.copy_(biased / (1 - new_accum).view(shape))
        accum.copy_(new_accum)

    def regularizer(self, latent: Latent) -> torch.Tensor:
        """Big Sleep's latent and class losses per image, shape (B,), >= 0."""
        z = latent["noise"]
        mean, std = z.mean(dim=2), z.std(dim=2)
        lat = (1 - std).abs().mean(1) + mean.abs().mean(1)
        lat = lat + 4 * torch.relu(z.pow(2).mean(dim=(1, 2)) - 1)
        # Per-stage skew and kurtosis toward a normal's 0 and 3.
        diffs = z - mean[..., None]
        zscores = diffs / diffs.pow(2).mean(dim=2, keepdim=True).add(1e-12).sqrt()
        skew = zscores.pow(3).mean(dim=2)
        kurtosis = zscores.pow(4).mean(dim=2) - 3
        lat = lat + (skew.abs() + kurtosis.abs()).mean(dim=1)
        # Everything but the strongest class should be small.
        probs = self.class_probs(latent["class_logits"])
        rest = probs.topk(self.num_classes - 1, dim=1, largest=False).values
        cls = (50 * rest).pow(2).mean(dim=1)
        return self.regularizer_scale * (self.latent_loss_weight * lat + self.class_loss_weight * cls)


# ---------------------------------------------------------------------------- internals
class _WeightsMismatch(UserError):
    pass


def _load_weights(model: nn.Module, state_dict: dict[str, torch.Tensor]) -> None:
    """Load like the package (extra keys ignored) but refuse missing or mis-shaped tensors,
    which would otherwise leave random weights in place silently."""
    own = model.state_dict()
    for key, value in state_dict.items():
        if key in own and tuple(own[key].shape) != tuple(value.shape):
            raise _WeightsMismatch(f"{key} has shape {tuple(value.shape)}, the config needs "
                                   f"{tuple(own[key].shape)}")
    result = model.load_state_dict(state_dict, strict=False)
    if result.missing_keys:
        shown = ", ".join(result.missing_keys[:3]) + (" …" if len(result.missing_keys) > 3 else "")
        raise _WeightsMismatch(f"{len(result.missing_keys)} tensors are missing ({shown})")


def _package() -> tuple[Any, Any]:
    """``(BigGAN, BigGANConfig)``, imported only when a BigGAN is actually built."""
    try:
        from pytorch_pretrained_biggan import BigGAN, BigGANConfig
    except ModuleNotFoundError as e:
        # The package's __init__ imports scipy without declaring it as a dependency.
        top = (e.name or "pytorch_pretrained_biggan").split(".")[0]
        missing = "pytorch-pretrained-biggan" if top == "pytorch_pretrained_biggan" else top
        raise UserError(f"BigGAN needs the '{missing}' package, which is not installed: "
                        f"pip install {missing}") from None
    return BigGAN, BigGANConfig


def _resolution(config: Any) -> int:
    """Output side: the package starts at 4x4 and doubles at each up-sampling layer. Also checks the
    layers' channel arithmetic, which the package assumes without checking (a mismatch would be a
    shape error from deep inside it)."""
    layers = [tuple(layer) for layer in config.layers]
    if not layers or any(len(layer) != 3 for layer in layers):
        raise UserError("BigGAN config: 'layers' must be a non-empty list of [up_sample, in_factor, out_factor]; "
                        "the config.json is damaged or for another model")
    expected = 16  # gen_z makes 4x4x(16 x channel_width) activations for the first block
    for j, (_, factor_in, factor_out) in enumerate(layers):
        if factor_in != expected:
            raise UserError(f"BigGAN config: layers[{j}] takes {factor_in} x channel_width channels but gets "
                            f"{expected} x channel_width; the config.json is damaged or for another model")
        expected = factor_out
    if expected != 1:
        raise UserError(f"BigGAN config: the last of 'layers' makes {expected} x channel_width channels, the output "
                        "needs 1 x channel_width; the config.json is damaged or for another model")
    side = 4 * 2 ** sum(1 for layer in layers if layer[0])
    if int(config.output_dim) != side:
        raise UserError(f"BigGAN config says output_dim {config.output_dim} but its layers make "
                        f"{side}x{side} images; the config.json is damaged or for another model")
    return side


__all__ = ["BigGANGenerator", "imagenet_classes", "class_indices", "soft_top_k", "BIG_SLEEP_BALANCE"]
