"""The ``clipguide`` command. Thin: parse, call the library, draw progress, save.

    clipguide "a sunset" --style baroque            generate (the default command)
    clipguide again IMAGE.png [--steps 200]          re-run from an image's metadata
    clipguide styles                                 list style presets
    clipguide compare "a sunset" --styles none,baroque --seeds 16
    clipguide animate "a castle" --frames 120 --zoom 1.02   zoom/rotate/pan, story and styled videos
    clipguide weights list|download|verify|path      manage checkpoints
    clipguide bench …                                 speed/memory benchmark
    clipguide telephone "a lighthouse" --rounds 100  prompt → image → caption → image …
    clipguide batch JOBS.toml [--ray local]          a list of generate/animate jobs (on Ray)
    clipguide ui                                     the web UI

Flags for settings are generated from :class:`clipguide.settings.Settings`, so their defaults and
help can never drift from the library's. Each subcommand is one function, found through
:data:`COMMANDS` (``"module:function"``, imported only when that command runs).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from pathlib import Path

from . import __version__
from .cli_flags import Parser, add_flags, add_run_flags, notice, progress_bar, settings_from_args
from .errors import UserError

#: subcommand → "module:function(argv) -> exit code"; a new front end is one file plus one line here.
COMMANDS = {
    "again": "clipguide.cli:cmd_again",
    "styles": "clipguide.cli:cmd_styles",
    "compare": "clipguide.compare.cli:main",
    "animate": "clipguide.animation.cli:main",
    "weights": "clipguide.weights_cli:main",
    "bench": "clipguide.bench:main",
    "ui": "clipguide.webui:main",
    "telephone": "clipguide.telephone.cli:main",
    "batch": "clipguide.batch.cli:main",
}


def generate_parser() -> argparse.ArgumentParser:
    p = Parser(prog="clipguide", description="CLIP-guided VQGAN/BigGAN art. Subcommands: " + ", ".join(COMMANDS),
               formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("prompt", help="What to make: 'text:weight:stop | other text:-0.5' ('a ^ b' for a story).")
    p.add_argument("--version", action="version", version=f"clipguide {__version__}")
    add_image_flags(p)
    return p


def add_image_flags(p: argparse.ArgumentParser) -> None:
    add_run_flags(p)
    p.add_argument("--video", nargs="?", const="", default=None, metavar="PATH",
                   help="Also write the optimisation as a video (.mp4 or .gif); frames every --save-every steps.")
    from .settings import Settings

    add_flags(p, Settings, skip=("prompt",))


def again_parser() -> argparse.ArgumentParser:
    p = Parser(prog="clipguide again", description="Re-run from the settings stored in a PNG clipguide made.")
    p.add_argument("image", help="A PNG made by clipguide.")
    p.add_argument("--prompt", dest="prompt", default=argparse.SUPPRESS, help="Change the prompt.")
    add_image_flags(p)
    return p


def run_and_save(settings, explicit: frozenset[str], ns: argparse.Namespace, *, keep: int | None = None,
                 source: dict | None = None) -> int:
    """Generate with a progress bar; save PNGs (and frames/video); return the exit code.

    ``keep``: save only the image of that seed (``again`` re-running a batch to reproduce one image);
    ``source``: the record's source (``again`` unchanged keeps the original's, so the file is the same).
    """
    from . import api, output  # imported here so that `--help` never loads torch

    out_dir = output.ensure_out_dir(Path(ns.out))
    video = _video_writer(ns, out_dir, settings)
    bar = None

    def on_step(step) -> None:
        nonlocal bar
        if bar is None and not ns.quiet:
            bar = progress_bar(step.steps)  # opened at the first step, after models have loaded
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{step.loss:.4f}")
        if settings.save_every and step.i % settings.save_every == 0:
            frames = output.to_pil(step.image())
            if video is not None:
                video.append(frames[0])
            for k, frame in enumerate(frames):
                folder = out_dir / f"{output.default_stem(settings, step.run.seeds[k])}-frames"
                output.save_images(step.run, [frame], folder, stems=[f"{step.i:05d}"],
                                   steps_done=step.i, kind="frame", step=step.i, index=k)

    try:
        result = api.generate(settings, on_step, explicit=explicit, style_dirs=ns.presets, notify=notice)
    except BaseException:
        if video is not None:
            video.abort()  # no half-written video next to a failed run
        raise
    finally:
        if bar is not None:
            bar.close()
    images = result.pil()
    only = [k for k, s in enumerate(result.seeds) if keep is None or s == keep]
    for path in output.save_result(result, out_dir, only=only, **(source or {})):
        print(path)
    if video is not None:
        video.append(images[0])
        video.close()
        print(video.path)
    if result.stopped:
        print(f"clipguide: interrupted after {result.steps_done} of {settings.steps} steps; the latest images were saved",
              file=sys.stderr)
        return 130
    return 0


def _video_writer(ns: argparse.Namespace, out_dir: Path, settings):
    if ns.video is None:
        return None
    from . import output

    if not settings.save_every:
        raise UserError("--video needs frames: add --save-every N (e.g. --save-every 10)")
    default = output.unique_path(out_dir, output.default_stem(settings, settings.seed), ".mp4")
    path = Path(ns.video) if ns.video else default
    if path.suffix.lower() not in (".mp4", ".gif"):
        raise UserError(f"--video {path}: the file must end in .mp4 or .gif")
    if path.exists():
        raise UserError(f"--video {path} already exists: choose another name (results are never overwritten)")
    return output.VideoWriter(path)


# ---------------------------------------------------------------------------- subcommands
def cmd_generate(argv: list[str]) -> int:
    ns = generate_parser().parse_args(argv)
    settings, explicit = settings_from_args(ns, {"prompt": ns.prompt})
    return run_and_save(settings, explicit | {"prompt"}, ns)


def cmd_again(argv: list[str]) -> int:
    from .output import read_record

    ns = again_parser().parse_args(argv)
    record = read_record(Path(ns.image))
    handler = AGAIN.get(record.kind)
    if handler is not None:
        return _load(handler)(record, ns)
    stored = dict(record.settings)
    if hasattr(ns, "prompt"):
        stored["prompt"] = ns.prompt
    settings, explicit = settings_from_args(ns, stored)
    keep = None
    batch = record.source.get("batch")
    if batch and not {"seed", "seeds"} & explicit:
        # Reproduce it exactly: in the batch it was made in (another batch size rounds differently).
        keep = settings.seed
        notice(f"{ns.image} was image {settings.seed - batch['seed'] + 1} of a batch of {batch['seeds']} seeds: "
               "running that batch again to reproduce it exactly (give --seeds 1 to run it alone)")
        settings = settings.replace(seed=batch["seed"], seeds=batch["seeds"])
    if record.kind == "frame":
        notice(f"{ns.image} is the frame at step {record.source.get('step')}: re-running the whole run "
               f"(add --steps {record.source.get('step')} to end at this frame)")
    # Unchanged, it is the same image made the same way: the same record, so the same file.
    same = not explicit and not hasattr(ns, "prompt") and record.kind != "frame"
    # The fields the user chose back then still beat the style's overrides, as they did.
    return run_and_save(settings, explicit | record.explicit | {"prompt"}, ns, keep=keep,
                        source=dict(record.source) if same else None)


#: `again` on an image that a front end other than `generate` made: record kind → "module:function".
AGAIN: dict[str, str] = {
    "telephone": "clipguide.telephone.cli:again",
    "animation": "clipguide.animation.cli:again",
}


def cmd_styles(argv: list[str]) -> int:
    from .presets import list_styles

    p = Parser(prog="clipguide styles", description="List the style presets.")
    p.add_argument("--presets", action="append", default=[], metavar="DIR")
    ns = p.parse_args(argv)
    styles = list_styles(extra_dirs=tuple(ns.presets))
    width = max(len(n) for n in styles)
    for name, style in styles.items():
        extra = f"  [{', '.join(f'{k}={v}' for k, v in style.overrides.items())}]" if style.overrides else ""
        print(f"{name:<{width}}  {style.suffix!r}{extra}")
    return 0


def _load(target: str):
    module, _, function = target.partition(":")
    return getattr(importlib.import_module(module), function)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if argv and argv[0] in COMMANDS:
            return _load(COMMANDS[argv[0]])(argv[1:])
        return cmd_generate(argv)
    except UserError as e:
        print(f"clipguide: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("clipguide: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
