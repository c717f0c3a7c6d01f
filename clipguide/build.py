"""Settings → a :class:`~clipguide.engine.Run`: the one place a run's parts are built.

``generate``, ``compare``, ``animate``, ``telephone``, ``bench`` and the web UI all go through
:func:`build_run`, so what the benchmark times is what users run and no front end builds targets
or cutouts of its own. Reads the init and prompt images the settings name; writes nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from . import presets
from .cutouts import Cutouts
from .engine import Run
from .errors import UserError
from .generators import Generator
from .losses import Context, LossTerm
from .losses.init import build_init_term
from .losses.prior import GeneratorPrior
from .losses.prompt import PromptLoss
from .perceptor import Perceptor
from .prompts import Prompt, parse_prompts, split_story, story_starts
from .registry import LOSSES
from .schedules import Constant
from .session import Session, resolve_precision
from .settings import FIELD_NAMES, Settings, parse_loss, validate
from .targets import TargetSchedule, embed_targets

Notify = Callable[[str], None]


def build_run(settings: Settings, *, session: Session | None = None, explicit: frozenset[str] = frozenset(),
              style_dirs: Sequence[str] = (), notify: Notify | None = None) -> Run:
    """Validate ``settings``, apply its style, load (or reuse) the models and build every part.

    ``explicit`` names the fields the user set themselves (they win over a style's overrides);
    ``notify`` receives one-line notices (a rounded size, a prompt cut to CLIP's context).
    """
    notices, note = _notifier(notify)
    resolved = _resolve(settings, explicit, style_dirs, note)
    story = story_prompts(resolved)  # prompt mistakes are found before any model loads
    session = session or Session(resolved.device, resolved.offline)
    generator = session.generator(resolved.generator, resolved)
    perceptor = session.perceptor(resolved.clip)
    size = resolve_size(resolved, generator, session.device, note)
    seeds = resolved.seed_list()
    targets = build_targets(resolved, story, perceptor, session.device, note)
    init_images = None
    if resolved.init_image:
        init_images = load_image_tensor(resolved.init_image, size, session.device).expand(len(seeds), -1, -1, -1)
    return _assemble(settings, resolved, explicit, session.device, generator, perceptor, size, seeds, targets,
                     init_images, notices)


#: What the images of one batch run may differ in (build_batch_run); every other setting is shared.
PER_IMAGE = ("prompt", "seed", "seeds", "init_image")


def build_batch_run(per_image: Sequence[Settings], *, session: Session | None = None,
                    explicit: frozenset[str] = frozenset(), style_dirs: Sequence[str] = (),
                    notify: Notify | None = None) -> Run:
    """One run whose image k is what ``build_run(per_image[k])`` would make alone (one seed each).

    The images may differ in prompt, seed and init image (:data:`PER_IMAGE`), so several
    loops that each go their own way (the telephone's parallel trajectories) share one batch.
    Every other setting must agree. A single item is exactly ``build_run``.
    """
    if len(per_image) == 1:
        return build_run(per_image[0], session=session, explicit=explicit, style_dirs=style_dirs, notify=notify)
    first = per_image[0]
    shared = {k: getattr(first, k) for k in FIELD_NAMES if k not in PER_IMAGE}
    for other in per_image:
        differ = sorted(k for k, v in shared.items() if getattr(other, k) != v)
        if differ or other.seeds != 1:
            raise ValueError(f"a batch run's images (one seed each) may differ only in {PER_IMAGE}, "
                             f"not in {differ or ['seeds']}")
    notices, note = _notifier(notify)
    resolved = [_resolve(s, explicit, style_dirs, note) for s in per_image]
    stories = [story_prompts(r) for r in resolved]
    base = resolved[0]
    session = session or Session(base.device, base.offline)
    generator = session.generator(base.generator, base)
    perceptor = session.perceptor(base.clip)
    size = resolve_size(base, generator, session.device, note)
    targets = TargetSchedule.per_image([build_targets(r, story, perceptor, session.device, note)
                                        for r, story in zip(resolved, stories)])
    init_images = None
    if any(r.init_image for r in resolved):
        if not all(r.init_image for r in resolved):
            raise ValueError("a batch run starts every image from an init image or none")
        init_images = torch.cat([load_image_tensor(r.init_image, size, session.device) for r in resolved])
    return _assemble(first, base, explicit, session.device, generator, perceptor, size, [s.seed for s in per_image],
                     targets, init_images, notices)


def _notifier(notify: Notify | None) -> tuple[list[str], Notify]:
    notices: list[str] = []

    def note(message: str) -> None:
        if message not in notices:
            notices.append(message)
            if notify is not None:
                notify(message)

    return notices, note


def _resolve(settings: Settings, explicit: frozenset[str], style_dirs: Sequence[str], note: Notify) -> Settings:
    """The settings validated, with their style applied (validated again), and notices about them."""
    validate(settings)
    resolved = presets.apply_style(settings, explicit=explicit, extra_dirs=tuple(style_dirs))
    validate(resolved)
    if resolved.init_weight and resolved.init_weight_mode == "pixel" and not resolved.init_image:
        note("init_weight pulls toward the init image, and there is none: it does nothing here "
             "(give --init-image, or --init-weight-mode latent for the notebooks' pull toward the start)")
    return resolved


def _assemble(settings: Settings, resolved: Settings, explicit: frozenset[str], device: torch.device,
              generator: Generator, perceptor: Perceptor, size: tuple[int, int], seeds: list[int],
              targets: TargetSchedule, init_images: torch.Tensor | None, notices: list[str]) -> Run:
    """The parts every run has once its models, size, seeds and targets are known: the start latent,
    cutouts, loss terms and optimiser settings."""
    if resolved.threads:  # process-wide, as torch has it: CPU pictures depend on the thread count
        torch.set_num_threads(resolved.threads)
    rngs = [torch.Generator().manual_seed(s) for s in seeds]
    if init_images is not None:
        with torch.no_grad():
            latent = generator.encode(init_images)
    else:
        latent = generator.init_latent(size, rngs, resolved.init)
    cutouts = cutouts_for(resolved).to(device)
    context = Context(resolved, generator, device, size, {k: v.detach().clone() for k, v in latent.items()},
                      init_images)
    terms = build_terms(resolved, context, perceptor, cutouts, targets)
    autocast_dtype = resolve_precision(resolved.precision, device)
    prepare_models(generator, perceptor, device, checkpointing=resolve_checkpointing(resolved.checkpointing, size),
                   compile=resolved.compile)
    return Run(generator=generator, terms=terms, latent=latent, rngs=rngs, steps=resolved.steps,
               lr=resolved.lr or generator.default_lr, optimizer=resolved.optimizer,
               autocast_dtype=autocast_dtype, settings=settings, resolved=resolved,
               explicit=frozenset(explicit), perceptor=perceptor, size=size, seeds=seeds, notices=notices)


def build_terms(settings: Settings, context: Context, perceptor: Perceptor, cutouts: Cutouts,
                targets: TargetSchedule) -> list[LossTerm]:
    """The generator's prior, the prompt, the init term (when asked for) and every ``losses`` entry."""
    terms: list[LossTerm] = [GeneratorPrior.build(context, Constant(1.0)), PromptLoss(perceptor, cutouts, targets)]
    if settings.init_weight and (context.init_images is not None or settings.init_weight_mode != "pixel"):
        terms.append(build_init_term(context, Constant(settings.init_weight)))
    for spec in settings.losses:
        name, weight = parse_loss(spec)
        terms.append(LOSSES.get(name).build(context, weight))
    return terms


def story_prompts(settings: Settings) -> list[tuple[int, list[Prompt]]]:
    """(start step, prompts) of every story part (one part for a plain prompt), negatives included."""
    negatives = [Prompt(text, -1.0) for text in (t.strip() for t in settings.negative.split("|")) if text]
    parts = split_story(settings.prompt)
    story = []
    for start, part in zip(story_starts(parts, settings.steps, settings.change_every), parts):
        prompts = parse_prompts(part.text) + negatives
        if not any(p.weight > 0 for p in prompts) and not settings.image_prompts:
            raise UserError("the prompt is empty: give some text to steer toward, e.g. clipguide \"a sunset\"")
        story.append((start, prompts))
    return story


def build_targets(settings: Settings, story: list[tuple[int, list[Prompt]]], perceptor: Perceptor,
                  device: torch.device, note: Notify) -> TargetSchedule:
    """The targets of every story part from its start step, crossfaded over ``blend_steps``."""
    images = [(load_image_tensor(path, None, device), weight) for path, weight in map(split_weight,
                                                                                        settings.image_prompts)]
    embedded = []
    for _, prompts in story:
        for message in perceptor.cut_notices([p.text for p in prompts]):
            note(message)
        embedded.append(embed_targets(perceptor, prompts, images, device))
    return TargetSchedule([(start, targets) for (start, _), targets in zip(story, embedded)], settings.blend_steps)


def resolve_size(settings: Settings, generator: Generator, device: torch.device, notify: Notify) -> tuple[int, int]:
    """The (width, height) to generate: the generator's fixed size, the user's (rounded to a
    multiple the generator needs, with a notice), or the default for the device."""
    if generator.fixed_size is not None:
        if settings.size is not None and tuple(settings.size) != tuple(generator.fixed_size):
            w, h = generator.fixed_size
            raise UserError(f"this generator only makes {w}x{h} images: set size to {w} {h} (--size) or leave it out")
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


def split_weight(spec: str) -> tuple[str, float]:
    """'path.png:0.5' → ('path.png', 0.5); a colon that is part of the path stays in it."""
    path, sep, tail = spec.rpartition(":")
    if sep:
        try:
            return path, float(tail)
        except ValueError:
            pass
    return spec, 1.0


def load_image_tensor(path: str, size: tuple[int, int] | None, device: torch.device) -> torch.Tensor:
    """An image file as a (1,3,H,W) float tensor in [0,1] on ``device``, resized to ``size`` if given."""
    import numpy as np

    from .output import load_image

    pil = load_image(path, size)
    array = np.asarray(pil.convert("RGB"), dtype=np.uint8).copy()
    return (torch.from_numpy(array).permute(2, 0, 1)[None].float() / 255).to(device)


#: ``checkpointing="auto"`` recomputes the decoder's activations from this many pixels up: at 256x256
#: it measured a few per cent more time for a sixth less memory (benchmarks/RESULTS.md), and the
#: saving grows with the picture; below it the saving is small and the time is not.
AUTO_CHECKPOINT_PIXELS = 256 * 256


def cutouts_for(settings: Settings) -> Cutouts:
    """The run's cutouts, as its settings ask."""
    return Cutouts(settings.cutn, settings.cut_pow, settings.augments, settings.noise_fac, settings.cut_min,
                   settings.cut_method)


def resolve_checkpointing(choice: str, size: tuple[int, int]) -> str:
    """``auto`` → ``decoder`` or ``off`` by picture size; anything else as given."""
    if choice != "auto":
        return choice
    return "decoder" if size[0] * size[1] >= AUTO_CHECKPOINT_PIXELS else "off"


def prepare_models(generator: Generator, perceptor: Perceptor, device: torch.device, *,
                   checkpointing: str = "off", channels_last: bool | None = None, compile: bool = False) -> None:
    """Get the frozen models ready to run fast on ``device`` (in place; safe to call again).

    The CLIP vision towers already have their CPU-friendly patch embedding and attention (see
    :mod:`clipguide.clip_speedups`). ``checkpointing`` ("off", "decoder", "all") recomputes the
    decoder's activations, and with "all" the CLIP image towers' (open_clip's own block
    checkpointing; towers without it keep their activations). channels_last (default: on CUDA only:
    on CPUs it gave no gain without AMX, and with AMX in bf16 a batch of seeds no longer equals its
    single runs; benchmarks/RESULTS.md) applies to the generator's convolution weights. ``compile`` compiles the decoder and the CLIP image towers with
    torch.compile (once per model; ``compile=False`` takes it off again), its graphs cached in
    clipguide's cache folder so that the next process compiles from the cache.
    """
    if hasattr(generator, "checkpointing"):
        generator.checkpointing = checkpointing in ("decoder", "all")
    for model in perceptor.models:
        visual = getattr(getattr(model, "model", None), "visual", None)
        if hasattr(visual, "set_grad_checkpointing"):
            visual.set_grad_checkpointing(checkpointing == "all")
    if channels_last is None:
        channels_last = device.type == "cuda"
    if isinstance(generator, torch.nn.Module):
        fmt = torch.channels_last if channels_last else torch.contiguous_format
        for module in generator.modules():
            if isinstance(module, torch.nn.Conv2d) and module.weight.dim() == 4:
                module.weight.data = module.weight.data.contiguous(memory_format=fmt)
    targets = [m.model.visual for m in perceptor.models]
    decoder = getattr(generator, "decoder", None)
    if isinstance(decoder, torch.nn.Module):
        targets.append(decoder)
    if compile:
        import os

        from .weights.cache import home

        os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(home() / "torch-compile"))
    for module in targets:
        if compile and not getattr(module, "_clipguide_compiled", False):
            module.compile()
            module._clipguide_compiled = True
        elif not compile and getattr(module, "_clipguide_compiled", False):
            module._compiled_call_impl = None  # what nn.Module.compile set: back to the eager forward
            module._clipguide_compiled = False

__all__ = ["build_run", "build_batch_run", "PER_IMAGE", "build_terms", "build_targets", "story_prompts", "resolve_size", "split_weight",
           "load_image_tensor", "prepare_models", "cutouts_for", "resolve_checkpointing"]
