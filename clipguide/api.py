"""The Python API every front end calls: ``generate(settings, callback) -> Result``.

It turns a frozen :class:`~clipguide.settings.Settings` into components (generator, CLIP models,
cutouts, prompt targets), runs the engine, and hands back images. It reads the init/prompt images
the settings name, but writes nothing: saving is the front end's business (:mod:`clipguide.output`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch

from . import engine, presets
from .cutouts import Cutouts
from .errors import NonFiniteLossError, OutOfMemoryError, UserError
from .generators import Generator, load_generator
from .perceptor import ClipModel, Perceptor, load_clip, resize_for
from .prompts import Prompt, parse_prompts
from .settings import Settings, to_dict, validate

Notify = Callable[[str], None]


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda was asked for but no CUDA GPU is available: use --device cpu or auto")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise UserError("--device mps was asked for but Apple's MPS is not available: use --device cpu or auto")
    return torch.device(name)


def resolve_precision(name: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for a ``--precision`` value, or None for plain fp32.

    'auto': bf16 on CUDA GPUs that support it (else fp16); on a CPU with native bf16 arithmetic
    (AVX512-BF16 or AMX), bf16 (see benchmarks/RESULTS.md for the speed and loss-curve
    measurements behind this); fp32 elsewhere (MPS, CPUs that would emulate bf16). ``fp32`` is
    the setting for reruns that are bit-identical across machines.
    """
    if name == "fp32":
        return None
    if name == "bf16":
        return torch.bfloat16
    if name == "fp16":
        return torch.float16
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "cpu" and cpu_has_native_bf16():
        return torch.bfloat16
    return None


def cpu_has_native_bf16() -> bool:
    """Whether this CPU does bf16 arithmetic in hardware (AMX tiles or AVX512-BF16), per torch."""
    checks = [getattr(torch.cpu, n, None) for n in ("_is_amx_tile_supported", "_is_avx512_bf16_supported")]
    return any(bool(check()) for check in checks if check is not None)


def prepare_models(generator: Generator, perceptor: Perceptor, device: torch.device, *,
                   checkpointing: bool = False, channels_last: bool | None = None, compile: bool = False) -> None:
    """Get the frozen models ready to run fast on ``device`` (in place; safe to call again).

    ``generate`` and the benchmark both call this, so what the benchmark times is what users run.
    The CLIP vision towers already have their CPU-friendly patch embedding and attention (see
    :func:`clipguide.perceptor.speed_up_vision_tower`). channels_last (default: on CUDA only, where
    tensor-core convolutions want it; on this CPU oneDNN measured no gain) applies to the
    generator's convolution weights. ``compile`` (opt-in: minutes of compiling on a small CPU)
    compiles the decoder and the CLIP image towers with torch.compile, once per model.
    """
    if hasattr(generator, "checkpointing"):
        generator.checkpointing = checkpointing
    if channels_last is None:
        channels_last = device.type == "cuda"
    if isinstance(generator, torch.nn.Module):
        fmt = torch.channels_last if channels_last else torch.contiguous_format
        for module in generator.modules():
            if isinstance(module, torch.nn.Conv2d) and module.weight.dim() == 4:
                module.weight.data = module.weight.data.contiguous(memory_format=fmt)
    if compile:
        targets = [m.model.visual for m in perceptor.models]
        decoder = getattr(generator, "decoder", None)
        if isinstance(decoder, torch.nn.Module):
            targets.append(decoder)
        for module in targets:
            if not getattr(module, "_clipguide_compiled", False):
                module.compile()
                module._clipguide_compiled = True


class Session:
    """Keeps loaded models between runs (the web UI, compare and notebooks reuse them)."""

    def __init__(self, device: str = "auto", offline: bool = False, progress: bool = True) -> None:
        self.device = resolve_device(device)
        self.offline = offline
        self.progress = progress
        self._generators: dict[tuple, Generator] = {}
        self._clips: dict[str, ClipModel] = {}

    def generator(self, spec: str, settings: Settings | None = None) -> Generator:
        settings = settings or Settings()
        # BigGAN's class knobs are part of the model it builds; VQGAN ignores them.
        key = (spec, settings.truncation, settings.max_classes, settings.classes, settings.ema_decay,
               settings.latent_loss_weight, settings.class_loss_weight)
        if key not in self._generators:
            self._generators[key] = load_generator(spec, self.device, settings, offline=self.offline,
                                                   progress=self.progress)
        return self._generators[key]

    def perceptor(self, specs: Sequence[str]) -> Perceptor:
        for spec in specs:
            if spec not in self._clips:
                self._clips[spec] = load_clip(spec, self.device, offline=self.offline)
        return Perceptor([self._clips[s] for s in specs])


@dataclass
class Result:
    images: torch.Tensor  # (B,3,H,W) in [0,1], CPU float32
    settings: Settings  # as given (style by name): what `clipguide again` re-runs
    resolved: Settings  # after the style preset was applied
    seeds: list[int]
    losses: list[float]
    steps_done: int
    stopped: bool
    notices: list[str] = field(default_factory=list)
    #: fields the user set themselves (they beat style overrides); stored so `again` resolves alike
    explicit: frozenset[str] = frozenset()

    def pil(self):
        from .output import to_pil

        return to_pil(self.images)

    def metadata(self, k: int) -> dict[str, str]:
        """PNG text chunks for image k: the settings that reproduce it (with its own seed)."""
        import json

        from . import __version__
        from .output import png_metadata

        own = self.settings.replace(seed=self.seeds[k], seeds=1)
        chunks = png_metadata(to_dict(own), version=__version__, prompt=self.resolved.prompt, seed=self.seeds[k])
        chunks["clipguide:resolved"] = json.dumps(to_dict(self.resolved.replace(seed=self.seeds[k], seeds=1)),
                                                  sort_keys=True)
        chunks["clipguide:steps_done"] = str(self.steps_done)
        chunks["clipguide:explicit"] = json.dumps(sorted(self.explicit))
        return chunks


def resolve_size(settings: Settings, generator: Generator, device: torch.device, notify: Notify) -> tuple[int, int]:
    """The (width, height) to generate: the generator's fixed size, the user's (rounded to a
    multiple the generator needs, with a notice), or the default for the device."""
    if generator.fixed_size is not None:
        if settings.size is not None and tuple(settings.size) != tuple(generator.fixed_size):
            w, h = generator.fixed_size
            raise UserError(f"this generator only makes {w}x{h} images: use --size {w} {h} or leave --size out")
        return tuple(generator.fixed_size)
    if settings.size is None:
        side = 512 if device.type == "cuda" else 256
        return (side, side)
    m = generator.size_multiple
    w, h = settings.size
    rounded = (max(m, round(w / m) * m), max(m, round(h / m) * m))
    if rounded != (w, h):
        notify(f"size {w}x{h} is not a multiple of {m} for this generator: using {rounded[0]}x{rounded[1]}")
    return rounded


def build_prompts(settings: Settings) -> list[Prompt]:
    prompts = parse_prompts(settings.prompt)
    prompts += [Prompt(text, -1.0) for text in (t.strip() for t in settings.negative.split("|")) if text]
    if not any(p.weight > 0 for p in prompts) and not settings.image_prompts:
        raise UserError("the prompt is empty: give some text to steer toward, e.g. clipguide \"a sunset\"")
    return prompts


def build_targets(perceptor: Perceptor, prompts: Sequence[Prompt], image_prompts: Sequence[str],
                  device: torch.device) -> list[engine.Targets]:
    """Per CLIP model: the unit embeddings of every text and image prompt, with weights and stops."""
    from .output import load_image

    images: list[tuple[torch.Tensor, float]] = []
    for spec in image_prompts:
        path, weight = _split_weight(spec)
        images.append((_to_tensor(load_image(path)), weight))
    targets = []
    for model in perceptor.models:
        embeds, weights, stops = [], [], []
        if prompts:
            embeds.append(model.embed_texts([p.text for p in prompts]))
            weights += [p.weight for p in prompts]
            stops += [p.stop for p in prompts]
        for tensor, weight in images:
            with torch.inference_mode():
                embeds.append(model.embed_images(resize_for(model, tensor.to(device))))
            weights.append(weight)
            stops.append(-math.inf)
        targets.append(engine.Targets(torch.cat(embeds).clone(), torch.tensor(weights, device=device),
                                      torch.tensor(stops, device=device)))
    return targets


def _split_weight(spec: str) -> tuple[str, float]:
    """'path.png:0.5' → ('path.png', 0.5); a colon that is part of the path stays in it."""
    path, sep, tail = spec.rpartition(":")
    if sep:
        try:
            return path, float(tail)
        except ValueError:
            pass
    return spec, 1.0


def _to_tensor(pil) -> torch.Tensor:
    """An RGB PIL image as a (1,3,H,W) float tensor in [0,1]."""
    import numpy as np

    return torch.from_numpy(np.asarray(pil.convert("RGB"), dtype=np.uint8).copy()).permute(2, 0, 1)[None].float() / 255


def generate(settings: Settings, callback: engine.Callback | None = None, *, explicit: frozenset[str] = frozenset(),
             session: Session | None = None, style_dirs: Sequence[str] = (), notify: Notify | None = None) -> Result:
    """Run the loop for ``settings.seeds`` images in one batch and return them.

    ``explicit`` names the fields the user set themselves (they win over a style's overrides);
    ``notify`` receives one-line notices (a rounded size, a style that changed a setting).
    """
    notices: list[str] = []

    def note(message: str) -> None:
        notices.append(message)
        if notify is not None:
            notify(message)

    validate(settings)
    resolved = presets.apply_style(settings, explicit=explicit, extra_dirs=tuple(style_dirs))
    validate(resolved)
    prompts = build_prompts(resolved)
    session = session or Session(resolved.device, resolved.offline)
    generator = session.generator(resolved.generator, resolved)
    perceptor = session.perceptor(resolved.clip)
    device = session.device
    width, height = resolve_size(resolved, generator, device, note)
    seeds = resolved.seed_list()
    generators = [torch.Generator().manual_seed(s) for s in seeds]

    try:
        targets = build_targets(perceptor, prompts, resolved.image_prompts, device)
        init_images = None
        if resolved.init_image:
            init_images = _load_init(resolved.init_image, width, height, device).expand(len(seeds), -1, -1, -1)
            with torch.no_grad():
                latent = generator.encode(init_images)
        else:
            latent = generator.init_latent((width, height), generators, resolved.init)
        cutouts = Cutouts(resolved.cutn, resolved.cut_pow, resolved.augments, resolved.noise_fac).to(device)
        dtype = resolve_precision(resolved.precision, device)
        prepare_models(generator, perceptor, device, checkpointing=resolved.checkpointing)
        config = engine.LoopConfig(
            steps=resolved.steps, lr=resolved.lr or generator.default_lr, optimizer=resolved.optimizer,
            init_weight=resolved.init_weight, autocast_dtype=dtype)
        outcome = engine.run(generator, perceptor, targets, cutouts, latent, generators, config, callback,
                             init_images if resolved.init_weight else None)
        with torch.no_grad():
            images = generator.output(outcome.latent).float().cpu()
    except (torch.OutOfMemoryError, RuntimeError) as e:
        if not _is_oom(e):
            raise
        half = [max(generator.size_multiple, side // 2 // generator.size_multiple * generator.size_multiple)
                for side in (width, height)]
        raise OutOfMemoryError(
            f"out of memory at {width}x{height} with cutn {resolved.cutn} and {len(seeds)} seed(s) on {device}: "
            f"try --size {half[0]} {half[1]}, --cutn {max(1, resolved.cutn // 2)} "
            f"or --seeds {max(1, len(seeds) // 2)}") from None
    if not torch.isfinite(images).all():
        raise NonFiniteLossError("the generator produced NaN/Inf pixels: try a smaller --lr or --precision fp32")
    if outcome.lr != config.lr:
        note(f"the loss became NaN/Inf; recovered by lowering the lr to {outcome.lr:g}")
    return Result(images, settings, resolved, seeds, outcome.losses, outcome.steps_done, outcome.stopped, notices,
                  frozenset(explicit))


def _load_init(path: str, width: int, height: int, device: torch.device) -> torch.Tensor:
    from .output import load_image

    return _to_tensor(load_image(path, (width, height))).to(device)


def _is_oom(e: BaseException) -> bool:
    if isinstance(e, torch.OutOfMemoryError):
        return True
    text = str(e)
    return "out of memory" in text or "DefaultCPUAllocator: can't allocate" in text or "not enough memory" in text
