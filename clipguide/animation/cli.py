"""``clipguide animate``: zoom/rotate/pan videos, story videos, and styled source videos.

    clipguide animate "a castle" --frames 120 --steps-per-frame 20 --zoom 1.02 --angle 0.5 --translate 2 0
    clipguide animate "0:a castle ^ 60:a forest" --zoom "0:1.0, 60:1.05" --fps 12 --out DIR
    clipguide animate "oil painting" --video-init input.mp4 --smooth 0.5

Thin: parse, call :func:`clipguide.animation.animate`, draw progress, print what was written. The
same command again goes on from the frames already made; ``clipguide again FRAME.png`` makes the
animation up to that frame.
"""

from __future__ import annotations

import argparse
import sys

from ..cli_flags import Parser, add_flags, add_run_flags, given, notice, progress_bar, settings_from_args


def parser() -> argparse.ArgumentParser:
    from ..settings import Settings
    from .settings import AnimationSettings

    p = Parser(prog="clipguide animate", description="Make an animation: frame 0 is a still of --steps steps; every "
               "later frame moves the last one (zoom, angle, translate) or follows a source video (--video-init) and "
               "runs --steps-per-frame more steps. The same command again goes on where it stopped.")
    p.add_argument("prompt", help="What to make; a story 'a castle ^ a forest' (parts keyed by frame: "
                   "'0:a castle ^ 60:a forest').")
    add_run_flags(p)
    p.add_argument("--translate", nargs=2, metavar=("X", "Y"), default=argparse.SUPPRESS,
                   help="Shorthand for --translate-x X --translate-y Y.")
    add_flags(p, AnimationSettings, title="animation")
    add_flags(p, Settings, skip=("prompt", "save_every"))  # every frame is saved
    return p


def animation_from_args(ns: argparse.Namespace, base: dict | None = None):
    from .settings import AnimationSettings, from_dict

    typed = given(ns, AnimationSettings)
    values = {**(base or {}), **typed}
    for axis, value in zip(("translate_x", "translate_y"), getattr(ns, "translate", ())):
        if axis not in typed:  # --translate-x beats the shorthand
            values[axis] = value
    return from_dict(values)


def limits_from_args(ns: argparse.Namespace) -> dict[str, int] | None:
    from .settings import frame_limits

    return frame_limits(getattr(ns, "no_limits", False))


def run_animation(settings, explicit: frozenset[str], anim, ns: argparse.Namespace, *, until: int | None = None) -> int:
    """Animate with a progress bar over the frames; print the folders and videos; the exit code."""
    from .loop import animate

    bar = None

    def on_step(step) -> None:
        if bar is not None:
            bar.set_postfix(step=f"{step.i}/{step.steps}", loss=f"{step.loss:.4f}", refresh=False)

    def on_start(first: int, last: int) -> None:
        nonlocal bar
        if not ns.quiet and first < last:
            bar = progress_bar(last, unit="frame")  # opened once the models have loaded
            bar.update(first)

    def on_frame(frame: int, last: int, images, paths) -> None:
        if bar is not None:
            bar.update(1)

    try:
        result = animate(settings, anim, ns.out, explicit=explicit, style_dirs=ns.presets, hook=on_step,
                         on_start=on_start, on_frame=on_frame, until=until, limits=limits_from_args(ns),
                         notify=notice)
    finally:
        if bar is not None:
            bar.close()
    if result.first >= min(result.frames, until + 1 if until is not None else result.frames):
        notice(f"all {result.first} frames were already made: nothing left to do")
    elif result.first > 0 and not result.stopped:
        notice(f"went on from frame {result.first}: frames 0…{result.first - 1} were already made")
    for folder in result.folders:
        if folder.is_dir():  # not made when the run stopped before its first frame
            print(folder)
    for video in result.videos:
        print(video)
    if result.stopped:
        print(f"clipguide: interrupted after {result.done} of {result.frames} frames; they and their video were "
              "kept: run the same command again to go on", file=sys.stderr)
        return 130
    return 0


def main(argv: list[str]) -> int:
    ns = parser().parse_args(argv)
    settings, explicit = settings_from_args(ns, {"prompt": ns.prompt})
    anim = animation_from_args(ns)
    return run_animation(settings, explicit | {"prompt"}, anim, ns)


def again(record, ns: argparse.Namespace) -> int:
    """``clipguide again FRAME.png``: make that animation's frames 0…FRAME again (in ``--out``)."""
    stored = dict(record.settings)
    if hasattr(ns, "prompt"):
        stored["prompt"] = ns.prompt
    settings, explicit = settings_from_args(ns, stored)
    batch = record.source.get("batch")
    if batch and not {"seed", "seeds"} & explicit:
        settings = settings.replace(seed=batch["seed"], seeds=batch["seeds"])  # the batch it was made in
    frame = int(record.source.get("frame", 0))
    anim = animation_from_args(argparse.Namespace(), record.source.get("animation") or {})
    notice(f"{ns.image} is frame {frame} of an animation: making its frames 0…{frame} in {ns.out} (frames "
           "already there are kept, so an unchanged animation is gone on with, not remade)")
    return run_animation(settings, explicit | record.explicit | {"prompt"}, anim, ns, until=frame)


__all__ = ["main", "again", "parser", "animation_from_args", "run_animation"]
