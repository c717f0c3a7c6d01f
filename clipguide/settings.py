"""The one place every knob and its default lives.

The CLI flags, the web UI widgets, preset overrides and the PNG metadata are all derived from
:class:`Settings`, so a default can never differ between front ends. Each field's ``metadata``
holds its help text (and, where useful, its choices) for those front ends.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, fields
from typing import Any

from .errors import UserError, unknown

OPTIMIZERS = ("adam", "adamw", "sgd")
AUGMENTS = ("affine", "perspective", "jitter", "erasing", "noise", "flip", "sharpness")
DEFAULT_AUGMENTS = ("affine", "perspective", "jitter", "erasing", "noise")
DEVICES = ("auto", "cpu", "cuda", "mps")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
INITS = ("random", "mean")

# Sizes are validated against these unless the user raises them explicitly (--no-limits);
# they are the sizes past which a run would not finish or fit on the hardware users have.
LIMITS = {"side": 2048, "steps": 100_000, "seeds": 256, "cutn": 512}


def _opt(default: Any, help: str, **extra: Any) -> Any:
    """A field with its help text kept beside its default."""
    meta = {"help": help, **extra}
    if isinstance(default, (list, tuple)):
        return field(default=tuple(default), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class Settings:
    """Everything that determines a run. Same settings + same seed → same image on CPU."""

    prompt: str = _opt("", "Text prompts: 'text:weight:stop | other text:-0.5'. Negative weights push away.")
    style: str = _opt("none", "Style preset name(s), comma separated (see `clipguide styles`).")
    negative: str = _opt("", "Extra negative prompts, '|' separated (each weighted -1).")
    image_prompts: tuple[str, ...] = _opt((), "Image files to steer toward (path or path:weight).")
    init_image: str | None = _opt(None, "Start from this image instead of random latents.")
    init: str = _opt("random", "Start without an init image: 'random' (random codebook codes; BigGAN noise) or "
                     "'mean' (VQGAN: the codebook's mean plus noise, so the prompt rather than the seed "
                     "places the subject).", choices=INITS)
    init_weight: float = _opt(0.0, "Keep the result close to the init image (MSE weight, decays over the run).")

    generator: str = _opt("vqgan_imagenet_f16_16384", "Generator: a manifest name, 'demo', or a local checkpoint path.")
    clip: tuple[str, ...] = _opt(("ViT-B-32/openai",), "CLIP model(s): NAME/PRETRAINED, 'demo', 'demo-wide', or a local path.")

    size: tuple[int, int] | None = _opt(None, "Width and height in pixels (default 256x256 on CPU, 512x512 on GPU).")
    steps: int = _opt(400, "Optimisation steps.")
    seed: int = _opt(0, "Random seed of the first image.")
    seeds: int = _opt(1, "Number of images, seeds seed..seed+N-1, optimised together in one batch.")

    cutn: int = _opt(32, "Number of cutouts per image per step.")
    cut_pow: float = _opt(1.0, "Cutout size power: >1 favours small cutouts, <1 large ones.")
    augments: tuple[str, ...] = _opt(DEFAULT_AUGMENTS, "Cutout augmentations.", choices=AUGMENTS)
    noise_fac: float = _opt(0.1, "Strength of per-cutout Gaussian noise (the 'noise' augment).")

    optimizer: str = _opt("adam", "Optimiser.", choices=OPTIMIZERS)
    lr: float | None = _opt(None, "Learning rate (default: the generator's own, 0.1 VQGAN, 0.07 BigGAN).")

    # BigGAN (Big Sleep) knobs; ignored by generators that have no classes.
    truncation: float = _opt(1.0, "BigGAN truncation of the noise vectors.")
    max_classes: int | None = _opt(None, "BigGAN: soft top-k over at most K classes.")
    classes: tuple[str, ...] = _opt((), "BigGAN: restrict to these ImageNet class names.")
    ema_decay: float = _opt(0.99, "BigGAN: EMA decay of the latents used for the output image.")
    latent_loss_weight: float = _opt(1.0, "BigGAN: weight of the loss keeping noise near N(0,1).")
    class_loss_weight: float = _opt(1.0, "BigGAN: weight of the loss keeping classes sparse.")

    device: str = _opt("auto", "Device.", choices=DEVICES)
    precision: str = _opt("auto", "Numeric precision (auto: bf16 on GPUs and bf16-capable CPUs, else fp32).",
                          choices=PRECISIONS)
    checkpointing: bool = _opt(False, "Recompute decoder activations in the backward pass: less memory, a little slower.")
    save_every: int = _opt(0, "Keep a frame every N steps (0: only the final image).")
    offline: bool = _opt(False, "Never touch the network; fail with the path of any missing file.")

    # ------------------------------------------------------------------ helpers
    def replace(self, **changes: Any) -> "Settings":
        """A copy with some fields changed and validated (unknown names are errors)."""
        return from_dict({**to_dict(self), **changes})

    def seed_list(self) -> list[int]:
        return [self.seed + k for k in range(self.seeds)]


# The offline demo: the shipped shapes-world models at the size they were trained for. Fields the
# user sets explicitly still win.
# cut_pow 0.3 favours large cutouts: every small cutout asks for the whole prompt on its own, and a
# 64 px picture answers many of them with many small shapes instead of one (shapes judged right on
# 8 seeds: 31% at cut_pow 1, 50% at 0.3; weights/demo/MODEL_CARD.md).
# 240 steps: colours need them (32 seeds: shape colour 88% at 60 steps, 98% at 240), and a run still
# takes well under a minute on a laptop CPU.
DEMO_SETTINGS: dict[str, Any] = {"generator": "demo", "clip": ("demo",), "size": (64, 64), "steps": 240, "cutn": 16,
                                 "cut_pow": 0.3, "augments": ("affine", "perspective", "noise"), "lr": 0.15}

FIELD_NAMES = tuple(f.name for f in fields(Settings))
TUPLE_FIELDS = {"image_prompts", "clip", "augments", "classes"}


def field_help(name: str) -> str:
    return next(f.metadata.get("help", "") for f in fields(Settings) if f.name == name)


def to_dict(settings: Settings) -> dict[str, Any]:
    """Plain JSON-able values (tuples become lists)."""
    out = {}
    for f in fields(settings):
        v = getattr(settings, f.name)
        out[f.name] = list(v) if isinstance(v, tuple) else v
    return out


def to_json(settings: Settings) -> str:
    return json.dumps(to_dict(settings), sort_keys=True)


def _coerce(name: str, value: Any) -> Any:
    """Bring a value from TOML/JSON/UI into the field's type, or raise a one-line UserError."""
    default = next(f.default for f in fields(Settings) if f.name == name)
    if value is None:
        return None
    if name == "size":
        if isinstance(value, int):
            value = (value, value)
        if not (isinstance(value, (list, tuple)) and len(value) == 2):
            raise UserError(f"size must be two integers WIDTH HEIGHT, got {value!r}")
        return tuple(_int(name, v) for v in value)
    if name in TUPLE_FIELDS:
        if isinstance(value, str):
            value = [p.strip() for p in value.split(",") if p.strip()]
        if not isinstance(value, (list, tuple)):
            raise UserError(f"{name} must be a list, got {value!r}")
        return tuple(str(v) for v in value)
    if isinstance(default, bool):
        if isinstance(value, bool):
            return value
        raise UserError(f"{name} must be true or false, got {value!r}")
    if isinstance(default, int) or name in ("max_classes",):
        return _int(name, value)
    if isinstance(default, float) or name in ("lr",):
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise UserError(f"{name} must be a number, got {value!r}") from None
        if not math.isfinite(number):
            raise UserError(f"{name} must be a finite number, got {value!r}")
        return number
    if not isinstance(value, str):
        raise UserError(f"{name} must be text, got {value!r}")
    return value


def _int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise UserError(f"{name} must be an integer, got {value!r}")
    try:
        number = float(value)
    except ValueError:
        raise UserError(f"{name} must be an integer, got {value!r}") from None
    if not math.isfinite(number) or number != int(number):
        raise UserError(f"{name} must be an integer, got {value!r}")
    return int(number)


def from_dict(values: dict[str, Any], *, where: str = "settings") -> Settings:
    """Build validated Settings from plain values; an unknown key names the known ones."""
    for key in values:
        if key not in FIELD_NAMES:
            raise unknown(f"setting in {where}:", key, FIELD_NAMES)
    settings = Settings(**{k: _coerce(k, v) for k, v in values.items()})
    validate(settings)
    return settings


def check_limits(s: Settings, limits: dict[str, int] | None = None) -> None:
    """Refuse sizes no machine users have would finish or fit. Front ends call this (the CLI
    unless --no-limits, the web UI with the operator's caps); the library itself does not."""
    lim = {**LIMITS, **(limits or {})}
    if s.size is not None and max(s.size) > lim["side"]:
        w, h = s.size
        raise UserError(f"size {w}x{h} is over the {lim['side']}px limit; use a smaller --size (or --no-limits)")
    for name in ("steps", "seeds", "cutn"):
        if getattr(s, name) > lim[name]:
            raise UserError(f"{name}={getattr(s, name)} is over the limit of {lim[name]}; use fewer (or --no-limits)")


def validate(s: Settings) -> None:
    """Raise a UserError for values no run could use."""
    if s.size is not None:
        w, h = s.size
        if w <= 0 or h <= 0:
            raise UserError(f"size must be positive, got {w}x{h}")
    for name in ("steps", "seeds", "cutn"):
        if getattr(s, name) < 1:
            raise UserError(f"{name} must be at least 1, got {getattr(s, name)}")
    if s.save_every < 0:
        raise UserError(f"save_every must be 0 or more, got {s.save_every}")
    if s.cut_pow <= 0:
        raise UserError(f"cut_pow must be positive, got {s.cut_pow}")
    if s.lr is not None and not s.lr > 0:
        raise UserError(f"lr must be positive, got {s.lr}")
    if not 0.0 <= s.ema_decay < 1.0:
        raise UserError(f"ema_decay must be in [0, 1), got {s.ema_decay}")
    if s.max_classes is not None and s.max_classes < 1:
        raise UserError(f"max_classes must be at least 1, got {s.max_classes}")
    if s.optimizer not in OPTIMIZERS:
        raise unknown("optimizer", s.optimizer, OPTIMIZERS)
    if s.device not in DEVICES:
        raise unknown("device", s.device, DEVICES)
    if s.precision not in PRECISIONS:
        raise unknown("precision", s.precision, PRECISIONS)
    if s.init not in INITS:
        raise unknown("init", s.init, INITS)
    for a in s.augments:
        if a not in AUGMENTS:
            raise unknown("augment", a, AUGMENTS)
    if not s.clip:
        raise UserError("at least one CLIP model is needed (--clip NAME/PRETRAINED)")


__all__ = ["Settings", "from_dict", "to_dict", "to_json", "validate", "check_limits", "field_help", "DEMO_SETTINGS", "FIELD_NAMES", "INITS",
           "OPTIMIZERS", "AUGMENTS", "DEFAULT_AUGMENTS", "LIMITS"]
