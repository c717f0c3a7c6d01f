"""The frame loop: one built run, executed once per frame.

Frame 0 is a still: ``settings.steps`` steps from the run's own start (random codes, ``--init-image``)
or from what the mode gives (a source video's first frame). Every later frame f takes the saved
8-bit frame f-1, lets the mode move it (zoom, rotate, translate) or keep it (video styling), encodes
it as the generator's latent and runs ``steps_per_frame`` more steps. The run's schedules count on
across frames (frame f's steps are the global steps ``step_of(f) …``), so term weights and story
parts keyed by frame move with the animation.

Exact resume: a frame depends only on the file of the frame before it, the per-image RNGs seeded
from (seed, frame), and with ``--smooth`` the saved moving average; so a run that goes on from the
frames on disk makes the same frames as one that never stopped.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import engine
from ..api import out_of_memory_advice
from ..build import build_run
from ..errors import NonFiniteLossError, UserError
from ..output import ensure_out_dir, png_chunks, to_pil
from ..prompts import split_story
from ..registry import ANIMATION_MODES
from ..settings import Settings, validate
from ..targets import TargetSchedule
from .settings import DEFAULT_FPS, DEFAULT_FRAMES, LIMITS, AnimationSettings, check_limits, to_dict
from .store import FrameFolder, find_folder, frames_done

#: on_frame(frame, frames, images, paths): a frame of every seed was saved.
FrameHook = Callable[[int, int, list, list[Path]], None]


@dataclass
class Animation:
    """What :func:`animate` made (or found already made)."""

    folders: list[Path]  # one per seed
    videos: list[Path]  # the MP4s (and GIFs) of the frames made so far
    frames: int  # asked for
    done: int  # frames every seed has now
    first: int  # the first frame this call made (> 0 when it went on from earlier frames)
    seeds: list[int]
    stopped: bool
    fps: float
    notices: list[str] = field(default_factory=list)


def frame_seed(seed: int, frame: int) -> int:
    """The seed of image ``seed``'s RNG for frame ``frame`` (≥ 1): independent of every other frame."""
    digest = hashlib.sha256(f"clipguide-animation:{seed}:{frame}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


def step_of(frame: int, first_steps: int, steps_per_frame: int) -> int:
    """The global index of frame ``frame``'s first step (frame 0 has ``first_steps`` steps)."""
    return 0 if frame == 0 else first_steps + (frame - 1) * steps_per_frame


def story_steps(settings: Settings, anim: AnimationSettings, frames: int) -> list[int]:
    """The global step each story part starts at: keys are frames; unkeyed parts change every
    ``change_every`` steps, else share the frames evenly."""
    parts = split_story(settings.prompt)
    spf = anim.steps_per_frame
    if len(parts) == 1:
        return [0]
    if parts[0].start is not None:
        return [step_of(p.start or 0, settings.steps, spf) for p in parts]
    if settings.change_every:
        return [k * settings.change_every for k in range(len(parts))]
    if frames < len(parts):
        raise UserError(f"the story has {len(parts)} parts but the animation only {frames} frames: make more "
                        "frames (--frames) or give the parts' start frames ('0:a castle ^ 30:a forest')")
    return [step_of(round(k * frames / len(parts)), settings.steps, spf) for k in range(len(parts))]


def animate(settings: Settings, anim: AnimationSettings, out_dir: str | Path, *, explicit: frozenset[str] = frozenset(),
            session=None, style_dirs: Sequence[str] = (), hook: engine.Hook | None = None,
            on_start: Callable[[int, int], None] | None = None, on_frame: FrameHook | None = None,
            until: int | None = None, limits: dict[str, int] | None = None,
            notify: Callable[[str], None] | None = None) -> Animation:
    """Make (or go on with) the animation; returns where its frames and videos are.

    ``hook`` sees every step of every frame and may stop the animation (the unfinished frame is
    dropped; every finished one and their video are kept, as after Ctrl-C or an error).
    ``on_start(first, last)``: frames ``first`` … ``last - 1`` are about to be made; ``on_frame``:
    one of them was saved. ``until``: stop after this frame (what ``again`` on a frame does).
    ``limits``: caps on frames ({"frames": N}; default :data:`clipguide.animation.settings.LIMITS`).
    Everything is checked before anything is written.
    """
    validate(settings)
    mode = ANIMATION_MODES.get(anim.mode)(anim, limits)
    try:
        frames = anim.frames or mode.source_frames or DEFAULT_FRAMES
        check_limits(frames, limits)
        fps = anim.fps or mode.source_fps or DEFAULT_FPS
        if settings.size is None and mode.source_size is not None:
            settings = settings.replace(size=_fit(mode.source_size, 512 if _on_gpu(session, settings) else 256))
        _check_generator(settings)
        story_steps(settings, anim, frames)  # a story that does not fit is refused before any model loads
        with out_of_memory_advice(settings):
            run = build_run(settings, session=session, explicit=explicit, style_dirs=style_dirs, notify=notify)
        _check_encoder(run)
        starts = story_steps(run.resolved, anim, frames)  # a style may have changed the steps
        prompt = run.term("prompt")
        prompt.targets = TargetSchedule([(s, t) for s, (_, t) in zip(starts, prompt.targets.parts)],
                                        prompt.targets.blend)
        mode.prepare(run)
        source = {"kind": "animation", "frames": frames, "animation": to_dict(anim), "story_steps": starts}
        first_steps = run.steps
        out = ensure_out_dir(Path(out_dir))
        folders = [find_folder(out, _stem(settings, seed), _record(run, k, source)) for k, seed in enumerate(run.seeds)]
        start = frames_done(folders)
        last = min(frames, until + 1 if until is not None else frames)
        stopped = False
        if on_start is not None:
            on_start(start, last)
        videos: list[Path] = []
        try:
            stopped = _frames(run, mode, anim, folders, source, start, last, first_steps, hook, on_frame)
        except KeyboardInterrupt:
            stopped = True
        finally:  # after an error too: the video of every finished frame
            videos = [path for folder in folders if folder.done()
                      for path in folder.write_videos(min(folder.done(), frames), fps, anim.gif)]
        done = frames_done(folders)
    finally:
        mode.close()
    return Animation([f.folder for f in folders], videos, frames, done, start, list(run.seeds), stopped, fps,
                     list(run.notices))


def _frames(run: engine.Run, mode, anim: AnimationSettings, folders: list[FrameFolder], source: dict[str, Any],
            start: int, last: int, first_steps: int, hook, on_frame) -> bool:
    """Make frames ``start`` … ``last - 1``; True when the hook stopped it."""
    if start >= last:
        return False
    generator = run.generator
    previous = _load(folders, start - 1, run) if start > 0 else None
    average = _load_states(folders, start - 1, run) if start > 0 and anim.smooth else None
    for frame in range(start, last):
        if frame == 0:
            begin = mode.first()
            run.first_step, run.steps = 0, first_steps
        else:
            for rng, seed in zip(run.rngs, run.seeds):
                rng.manual_seed(frame_seed(seed, frame))
            begin = mode.start(frame, previous)
            run.first_step, run.steps = step_of(frame, first_steps, anim.steps_per_frame), anim.steps_per_frame
        if begin is not None:
            with torch.no_grad():
                _copy_into(run.latent, generator.encode(begin))
        mode.before(frame)
        with out_of_memory_advice(run.resolved, run.size):
            outcome = engine.run(run, hook)
        if outcome.stopped:
            return True
        latent = {k: v.detach() for k, v in run.latent.items()}
        if anim.smooth:
            if average is not None:
                latent = {k: anim.smooth * average[k] + (1 - anim.smooth) * v if not k.startswith("_") else v
                          for k, v in latent.items()}
            average = {k: v.clone() for k, v in latent.items()}
        with torch.no_grad():
            images = generator.output(latent).float().cpu()
        if not torch.isfinite(images).all():
            raise NonFiniteLossError("the generator produced NaN/Inf pixels: try a smaller lr (--lr) or precision fp32 "
                                     "(--precision fp32)")
        pictures = to_pil(images)
        steps_done = step_of(frame + 1, first_steps, anim.steps_per_frame)
        paths = []
        for k, (folder, picture) in enumerate(zip(folders, pictures)):
            if average is not None:  # the state first: a frame on disk always has its state beside it
                folder.save_state(frame, {name: v[k:k + 1] for name, v in average.items()})
            paths.append(folder.save(frame, picture, png_chunks(run, k, steps_done=steps_done,
                                                                **{**source, "frame": frame})))
            if average is not None:
                folder.drop_states(keep=frame)
        previous = _tensor(pictures, run)  # the saved 8-bit frames, as a resumed run reads them
        if on_frame is not None:
            on_frame(frame, last, pictures, paths)
    return False


def _record(run: engine.Run, k: int, source: dict[str, Any]) -> dict[str, Any]:
    import json

    return json.loads(png_chunks(run, k, steps_done=None, **{**source, "frame": 0})["clipguide"])


def _stem(settings: Settings, seed: int) -> str:
    from ..output import default_stem

    return default_stem(settings, seed)


def _tensor(pictures: list, run: engine.Run) -> torch.Tensor:
    array = np.stack([np.asarray(p.convert("RGB"), dtype=np.uint8) for p in pictures])
    device = next(iter(run.latent.values())).device
    return torch.from_numpy(array).permute(0, 3, 1, 2).float().div(255).to(device)


def _load(folders: list[FrameFolder], frame: int, run: engine.Run) -> torch.Tensor:
    return _tensor([folder.load(frame) for folder in folders], run)


def _load_states(folders: list[FrameFolder], frame: int, run: engine.Run) -> dict[str, torch.Tensor]:
    states = [folder.load_state(frame) for folder in folders]
    device = next(iter(run.latent.values())).device
    return {name: torch.cat([s[name] for s in states]).to(device) for name in states[0]}


@torch.no_grad()
def _copy_into(latent: dict[str, torch.Tensor], fresh: dict[str, torch.Tensor]) -> None:
    for name, value in fresh.items():
        latent[name].copy_(value)


def _check_generator(settings: Settings) -> None:
    """BigGAN draws from noise and classes and cannot take a picture back: say so before loading it."""
    from ..generators import resolve

    try:
        kind, _ = resolve(settings.generator, settings)
    except UserError:
        return  # a model given to the session by hand, or a bad name: build_run finds it or says what is wrong
    if kind == "biggan":
        raise UserError(_NO_ENCODER)


def _check_encoder(run: engine.Run) -> None:
    width, height = run.size
    device = next(iter(run.latent.values())).device
    try:
        with torch.no_grad():
            run.generator.encode(torch.zeros(1, 3, height, width, device=device))
    except UserError:
        raise UserError(_NO_ENCODER) from None


_NO_ENCODER = ("animate moves and re-encodes the picture every frame, and this generator cannot encode a picture "
               "(BigGAN cannot): use a VQGAN (--generator vqgan_imagenet_f16_16384), or for a video of one picture "
               "changing with the prompt, a story with a progress video: clipguide \"a ^ b\" --save-every 10 --video")


def _fit(size: tuple[int, int], side: int) -> tuple[int, int]:
    """A source's (width, height) scaled so that its longer side is ``side`` (keeping the aspect)."""
    w, h = size
    scale = side / max(w, h)
    return max(1, round(w * scale)), max(1, round(h * scale))


def _on_gpu(session, settings: Settings) -> bool:
    from ..session import resolve_device

    device = session.device if session is not None else resolve_device(settings.device)
    return device.type == "cuda"


__all__ = ["Animation", "animate", "frame_seed", "step_of", "story_steps", "LIMITS"]
