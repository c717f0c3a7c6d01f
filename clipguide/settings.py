"""The one place every knob of a run, its default, range, choices and help live.

Each field is declared with :func:`clipguide.specs.setting`; the CLI flags, the web UI widgets,
preset overrides, validation and the PNG metadata are all derived from these declarations, so a
default can never differ between front ends. Adding a setting is one line here (plus the code
that reads it). Choices that are pluggable come from :mod:`clipguide.registry`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from . import specs
from .errors import UserError
from .palettes import parse_colour, parse_palette
from .registry import AUGMENTS, LOSSES, OPTIMIZERS
from .schedules import Constant, Schedule, parse_schedule
from .specs import setting

DEFAULT_AUGMENTS = ("affine", "perspective", "jitter", "erasing", "noise")
DEVICES = ("auto", "cpu", "cuda", "mps")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
INITS = ("random", "mean")
CHECKPOINTING = ("auto", "off", "decoder", "all")
#: How cutouts are made (see clipguide.cutouts): clipguide's batched crops, the notebooks' crops, or
#: nerdyrodent's whole-image pooling.
CUT_METHODS = ("crops", "original", "pooling")
#: What init_weight pulls toward: the init image's pixels (decaying), the starting latent (the
#: VQGAN+CLIP notebook's init_weight), or zero (nerdyrodent's generate.py -iw).
INIT_WEIGHT_MODES = ("pixel", "latent", "zero")
SYMMETRY_AXES = ("left-right", "top-bottom", "both")

# Sizes are validated against these unless the user raises them explicitly (--no-limits);
# they are the sizes past which a run would not finish or fit on the hardware users have.
LIMITS = {"side": 2048, "steps": 100_000, "seeds": 256, "cutn": 512}


@dataclass(frozen=True)
class Settings:
    """Everything that determines a run. Same settings + same seed → same image on CPU."""

    prompt: str = setting("", "Text prompts: 'text:weight:stop | other text:-0.5'. Negative weights push away.",
                          ui="main")
    style: str = setting("none", "Style preset name(s), comma separated (see `clipguide styles`).", ui="main")
    negative: str = setting("", "Extra negative prompts, '|' separated (each weighted -1).", ui="advanced",
                            label="Negative prompts")
    change_every: int = setting(0, "Story mode ('a castle ^ a forest'): move to the next part every N steps "
                                "(0: an even share of the steps each).", low=0, ui="advanced",
                                label="Story: change every N steps")
    blend_steps: int = setting(0, "Story mode: crossfade from one part to the next over N steps instead of "
                               "jumping.", low=0, ui="advanced", label="Story: blend steps")
    image_prompts: tuple[str, ...] = setting((), "Image files to steer toward (path or path:weight).",
                                             flag="--image-prompt")
    init_image: str | None = setting(None, "Start from this image instead of random latents.")
    init: str = setting("random", "Start without an init image: 'random' (random codebook codes; BigGAN noise) "
                        "or 'mean' (VQGAN: the codebook's mean plus noise, so the prompt rather than the seed "
                        "places the subject).", choices=INITS, ui="advanced", label="Start")
    init_weight: float = setting(0.0, "Keep the result close to its start (see init_weight_mode).", low=0,
                                 ui="advanced", label="Init weight")
    init_weight_mode: str = setting("pixel", "What init_weight pulls toward: 'pixel' (the init image, weight falling "
                                    "linearly to 0 over the run), 'latent' (the starting latent, 0.5·weight·MSE "
                                    "throughout: the VQGAN+CLIP notebook's init_weight) or 'zero' (the latent toward "
                                    "0, weight/(2i+1): nerdyrodent's -iw).", choices=INIT_WEIGHT_MODES,
                                    ui="advanced", label="Init weight pulls toward")

    generator: str = setting("vqgan_imagenet_f16_16384", "Generator: a manifest name, 'demo', or a local "
                             "checkpoint path.")
    clip: tuple[str, ...] = setting(("ViT-B-32/openai",), "CLIP model(s): NAME/PRETRAINED, 'demo', 'demo-wide', "
                                    "or a local path.")

    size: tuple[int, int] | None = setting(None, "Width and height in pixels (default 256x256 on CPU, 512x512 "
                                           "on GPU).", low=1, metavar=("W", "H"))
    steps: int = setting(400, "Optimisation steps.", low=1)
    seed: int = setting(0, "Random seed of the first image.")
    seeds: int = setting(1, "Number of images, seeds seed..seed+N-1, optimised together in one batch.", low=1)

    cutn: int = setting(32, "Number of cutouts per image per step.", low=1, ui="advanced", label="Cutouts")
    cut_pow: float = setting(1.0, "Cutout size power: >1 favours small cutouts, <1 large ones.", low=0,
                             low_open=True, ui="advanced", label="Cut power")
    cut_min: float | None = setting(None, "Smallest cutout: pixels (1 or more) or a fraction of the short side "
                                    "(below 1). Default: the lineage's min(width, height, CLIP input size).",
                                    low=0, low_open=True, ui="advanced", label="Smallest cutout")
    cut_method: str = setting("crops", "How cutouts are made: 'crops' (random squares, resized in one batch), "
                              "'original' (the notebooks' random squares, each average-pooled: blockier small "
                              "cutouts) or 'pooling' (the whole image pooled to the CLIP size, varied only by the "
                              "augments: whole-image composition, less tiling).", choices=CUT_METHODS,
                              ui="advanced", label="Cut method")
    augments: tuple[str, ...] = setting(DEFAULT_AUGMENTS, "Cutout augmentations.", choices=AUGMENTS,
                                        ui="advanced", label="Augmentations")
    noise_fac: float = setting(0.1, "Strength of per-cutout Gaussian noise (the 'noise' augment).", low=0,
                               ui="advanced", label="Noise strength")

    losses: tuple[str, ...] = setting((), "Extra loss terms, NAME[:WEIGHT] (WEIGHT a number or keyframes "
                                      "'0:1, 200:0'); repeat --loss for several.", flag="--loss",
                                      metavar="NAME[:WEIGHT]")
    # Options of the loss terms (clipguide/losses/): the web UI shows them beside its table of terms.
    symmetry_axis: str = setting("left-right", "Symmetry loss: mirror left-right, top-bottom, or both.",
                                 choices=SYMMETRY_AXES, group="losses", ui="losses", label="Symmetry axis")
    palette: str = setting("", "Palette of the palette loss and of the pixel drawer's snapping: colours "
                           "'#1b1b3a,#f2a541,…' or a name (pico-8, gameboy, cga, black-white, grayscale, sepia).",
                           group="losses", ui="losses", label="Palette")
    edge_colour: str = setting("white", "Edge loss: the border's colour ('#rrggbb' or a name).", group="losses",
                               ui="losses", label="Edge colour")
    edge_width: int = setting(8, "Edge loss: the border's width in pixels.", low=1, group="losses", ui="losses",
                              label="Edge width")

    optimizer: str = setting("adam", "Optimiser.", choices=OPTIMIZERS, ui="advanced", label="Optimiser")
    lr: float | None = setting(None, "Learning rate (default: the generator's own, 0.1 VQGAN, 0.07 BigGAN).",
                               low=0, low_open=True, ui="advanced", label="Learning rate")

    # BigGAN (Big Sleep) knobs: the BigGAN generator's options (clipguide.generators.biggan.Options).
    truncation: float = setting(1.0, "BigGAN truncation of the noise vectors.", low=0, low_open=True, high=1,
                                group="biggan")
    max_classes: int | None = setting(None, "BigGAN: soft top-k over at most K classes.", low=1, group="biggan")
    classes: tuple[str, ...] = setting((), "BigGAN: restrict to these ImageNet class names.", metavar="A,B",
                                       group="biggan")
    ema_decay: float = setting(0.99, "BigGAN: EMA decay of the latents used for the output image.", low=0,
                               high=1, high_open=True, group="biggan")
    latent_loss_weight: float = setting(1.0, "BigGAN: weight of the loss keeping noise near N(0,1).",
                                        group="biggan")
    class_loss_weight: float = setting(1.0, "BigGAN: weight of the loss keeping classes sparse.", group="biggan")

    # Drawers: generators without a checkpoint (--generator pixel | fft), each one's options.
    pixel_size: int = setting(8, "Pixel drawer: side of one cell in output pixels (the grid is the image size "
                              "divided by it).", low=1, group="pixel", ui="advanced", label="Pixel size")
    palette_snap: bool = setting(False, "Pixel drawer: show every cell in its nearest --palette colour.",
                                 group="pixel", ui="advanced", label="Snap to the palette")
    fft_decay: float = setting(1.0, "FFT drawer: the spectrum falls as 1/f^decay; higher gives smoother, larger "
                               "shapes, lower finer texture.", low=0, group="fft", ui="advanced", label="FFT decay")

    device: str = setting("auto", "Device.", choices=DEVICES)
    precision: str = setting("auto", "Numeric precision (auto: bf16 on GPUs and bf16-capable CPUs, else fp32).",
                             choices=PRECISIONS)
    checkpointing: str = setting("auto", "Recompute activations in the backward pass instead of keeping them: less "
                                 "memory, a little slower. decoder: the VQGAN decoder's; all: also the CLIP image "
                                 "towers'; auto: the decoder's from 256x256 pixels up.", choices=CHECKPOINTING)
    compile: bool = setting(False, "torch.compile the decoder and the CLIP image towers (compiled graphs are "
                            "cached in clipguide's cache folder). Minutes of compiling first; on CPUs it does "
                            "not pay back within a run (benchmarks/RESULTS.md).", ui="advanced")
    threads: int = setting(0, "CPU threads torch computes with (0: as the process has them, one per core unless "
                           "OMP_NUM_THREADS says otherwise). On a CPU the pictures depend on it (kernels sum in "
                           "per-thread chunks): the same threads, the same pictures; Ray workers use the driver's.",
                           low=0, ui="advanced")
    save_every: int = setting(0, "Keep a frame every N steps (0: only the final image).", low=0)
    offline: bool = setting(False, "Never touch the network; fail with the path of any missing file.")

    # ------------------------------------------------------------------ helpers
    def replace(self, **changes: Any) -> "Settings":
        """A copy with some fields changed and validated (unknown names are errors)."""
        return from_dict({**to_dict(self), **changes})

    def seed_list(self) -> list[int]:
        return [self.seed + k for k in range(self.seeds)]


FIELD_NAMES = specs.names(Settings)


def field_help(name: str) -> str:
    return specs.help_of(Settings, name)


def to_dict(settings: Settings) -> dict[str, Any]:
    """Plain JSON-able values (tuples become lists)."""
    return specs.to_dict(settings)


def from_dict(values: dict[str, Any], *, where: str = "settings") -> Settings:
    """Build validated Settings from plain values; an unknown key names the known ones."""
    if isinstance(values.get("checkpointing"), bool):  # records before #31 kept a switch
        values = {**values, "checkpointing": "decoder" if values["checkpointing"] else "off"}
    settings = specs.from_dict(Settings, values, where=where)
    validate(settings)
    return settings


def validate(s: Settings) -> None:
    """Raise a UserError for values no run could use (ranges and choices come from the fields)."""
    specs.check(s)
    for spec in s.losses:
        name, _ = parse_loss(spec)
        for needed in LOSSES.info.get(name, {}).get("needs", ()):
            if not getattr(s, needed):
                raise UserError(f"loss {name!r} needs --{needed.replace('_', '-')}: {field_help(needed)}")
    if s.palette or s.palette_snap:
        parse_palette(s.palette)
    parse_colour(s.edge_colour, what="edge colour")
    if not s.clip:
        raise UserError("setting clip needs at least one CLIP model (--clip NAME/PRETRAINED)")


def parse_loss(spec: str) -> tuple[str, Schedule]:
    """``"NAME"``, ``"NAME:WEIGHT"`` or ``"NAME:0:1.0, 200:0"`` (a keyframed weight) → (name, weight schedule)."""
    name, sep, weight = spec.partition(":")
    name = LOSSES.check(name.strip())
    return name, parse_schedule(weight, what=f"the weight of loss {name!r}") if sep else Constant(1.0)


def check_limits(s: Settings, limits: dict[str, int] | None = None) -> None:
    """Refuse sizes no machine users have would finish or fit. Front ends call this (the CLI
    unless --no-limits, the web UI with the operator's caps); the library itself does not."""
    lim = {**LIMITS, **(limits or {})}
    if s.size is not None and max(s.size) > lim["side"]:
        w, h = s.size
        raise UserError(f"size {w}x{h} is over the {lim['side']}px limit; use a smaller size (--size), "
                        "or --no-limits")
    for name in ("steps", "seeds", "cutn"):
        if getattr(s, name) > lim[name]:
            raise UserError(f"{name}={getattr(s, name)} is over the limit of {lim[name]}; use fewer "
                            f"(--{name}), or --no-limits")


__all__ = ["Settings", "from_dict", "to_dict", "validate", "check_limits", "parse_loss", "field_help", "FIELD_NAMES", "INITS",
           "SYMMETRY_AXES", "CHECKPOINTING", "DEVICES", "PRECISIONS", "CUT_METHODS", "INIT_WEIGHT_MODES", "DEFAULT_AUGMENTS", "LIMITS"]
