"""The ``clipguide`` command. Thin: parse, call the API, draw progress, save.

    clipguide "a sunset" --style baroque            generate (the default command)
    clipguide again IMAGE.png [--steps 200]          re-run from an image's metadata
    clipguide styles                                 list style presets
    clipguide compare "a sunset" --styles none,baroque --seeds 16
    clipguide weights list|download|verify|path      manage checkpoints
    clipguide bench …                                 speed/memory benchmark
    clipguide ui                                     the web UI

Flags for settings are generated from :class:`clipguide.settings.Settings`, so their defaults and
help can never drift from the library's.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any

from . import __version__
from .errors import UserError
from .settings import DEMO_SETTINGS, Settings, check_limits, from_dict

SUBCOMMANDS = ("again", "styles", "compare", "weights", "bench", "ui")



def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def add_settings_flags(parser: argparse.ArgumentParser, *, skip: Sequence[str] = ("prompt",)) -> None:
    """One flag per Settings field. Defaults are SUPPRESSed so the namespace holds only what the
    user typed: that is how presets know which settings the user chose themselves."""
    group = parser.add_argument_group("settings")
    for f in fields(Settings):
        if f.name in skip:
            continue
        help_text = f.metadata.get("help", "")
        default = f.default
        kwargs: dict[str, Any] = {"dest": f.name, "default": argparse.SUPPRESS}
        if f.name == "size":
            kwargs.update(nargs=2, type=int, metavar=("W", "H"))
        elif f.name == "image_prompts":
            group.add_argument("--image-prompt", action="append", help=help_text, **kwargs)
            continue
        elif f.name in ("clip", "augments"):
            kwargs.update(nargs="+")
            if "choices" in f.metadata:
                kwargs["choices"] = f.metadata["choices"]
        elif f.name == "classes":
            kwargs.update(type=lambda s: tuple(c.strip() for c in s.split(",") if c.strip()), metavar="A,B")
        elif isinstance(default, bool):
            kwargs.update(action="store_true")
        elif f.name in ("lr", "cut_pow", "init_weight", "noise_fac", "truncation", "ema_decay",
                        "latent_loss_weight", "class_loss_weight"):
            kwargs.update(type=float)
        elif isinstance(default, int) or f.name == "max_classes":
            kwargs.update(type=int)
        if "choices" in f.metadata and f.name != "augments":
            kwargs["choices"] = f.metadata["choices"]
        if default not in (None, (), "", False):
            shown = " ".join(map(str, default)) if isinstance(default, tuple) else default
            help_text += f" (default: {shown})"
        group.add_argument(_flag(f.name), help=help_text, **kwargs)


def add_run_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="outputs", help="Output folder (default: outputs).")
    parser.add_argument("--video", nargs="?", const="", default=None, metavar="PATH",
                        help="Also write the optimisation as a video (.mp4 or .gif); frames every --save-every steps.")
    parser.add_argument("--demo", action="store_true", help="Use the shipped offline demo models (shapes world).")
    parser.add_argument("--presets", action="append", default=[], metavar="DIR", help="Extra style preset folder.")
    parser.add_argument("--no-limits", action="store_true", help="Allow sizes/steps/seeds/cutn past the safety limits.")
    parser.add_argument("--quiet", action="store_true", help="No progress bar.")


class _Parser(argparse.ArgumentParser):
    """argparse that reports mistakes in our one-line style with exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UserError(f"{message} (see `{self.prog} --help`)")


def generate_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="clipguide", description="CLIP-guided VQGAN/BigGAN art. Subcommands: " + ", ".join(SUBCOMMANDS),
                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("prompt", help="What to make: 'text:weight:stop | other text:-0.5'.")
    p.add_argument("--version", action="version", version=f"clipguide {__version__}")
    add_run_flags(p)
    add_settings_flags(p)
    return p


def again_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="clipguide again", description="Re-run from the settings stored in a PNG clipguide made.")
    p.add_argument("image", help="A PNG made by clipguide.")
    p.add_argument("--prompt", dest="prompt", default=argparse.SUPPRESS, help="Change the prompt.")
    add_run_flags(p)
    add_settings_flags(p)
    return p


def settings_from_args(ns: argparse.Namespace, base: dict[str, Any] | None = None) -> tuple[Settings, frozenset[str]]:
    """Settings from parsed flags over ``base``; returns them with the names the user set."""
    given = {f.name: getattr(ns, f.name) for f in fields(Settings) if hasattr(ns, f.name)}
    values = dict(base or {})
    if getattr(ns, "demo", False):
        values.update({k: v for k, v in DEMO_SETTINGS.items() if k not in given})
    values.update(given)
    settings = from_dict(values)
    if not getattr(ns, "no_limits", False):
        check_limits(settings)
    return settings, frozenset(given)


def run_and_save(settings: Settings, explicit: frozenset[str], ns: argparse.Namespace) -> int:
    """Generate with a progress bar; save PNGs (and frames/video); return the exit code."""
    from . import api, output  # imported here so that `--help` never loads torch

    out_dir = output.ensure_out_dir(Path(ns.out))
    slug = output.slugify(settings.prompt)
    video = _video_writer(ns, out_dir, slug, settings)
    bar = None

    def on_step(step) -> None:
        nonlocal bar
        if bar is None and not ns.quiet:
            bar = _progress(step.steps)  # opened at the first step, after models have loaded
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{step.loss:.4f}")
        if settings.save_every and step.i % settings.save_every == 0:
            frames = output.to_pil(step.image())
            if video is not None:
                video.append(frames[0])
            for k, frame in enumerate(frames):
                frame_dir = output.ensure_out_dir(out_dir / f"{slug}-{settings.seed + k}-frames")
                output.save_png(frame, frame_dir, f"{step.i:05d}", {"step": str(step.i)})

    try:
        result = api.generate(settings, on_step, explicit=explicit, style_dirs=ns.presets, notify=_notice)
    except BaseException:
        if video is not None:
            video.abort()  # no half-written video next to a failed run
        raise
    finally:
        if bar is not None:
            bar.close()
    images = result.pil()
    for k, image in enumerate(images):
        path = output.save_png(image, out_dir, f"{slug}-{result.seeds[k]}", result.metadata(k))
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


def _video_writer(ns: argparse.Namespace, out_dir: Path, slug: str, settings: Settings):
    if ns.video is None:
        return None
    from . import output

    if not settings.save_every:
        raise UserError("--video needs frames: add --save-every N (e.g. --save-every 10)")
    path = Path(ns.video) if ns.video else output.unique_path(out_dir, f"{slug}-{settings.seed}", ".mp4")
    if path.suffix.lower() not in (".mp4", ".gif"):
        raise UserError(f"--video {path}: the file must end in .mp4 or .gif")
    if path.exists():
        raise UserError(f"--video {path} already exists: choose another name (results are never overwritten)")
    return output.VideoWriter(path)


def _progress(total: int):
    from tqdm import tqdm

    return tqdm(total=total, unit="step", dynamic_ncols=True, file=sys.stderr)


def _notice(message: str) -> None:
    print(f"clipguide: {message}", file=sys.stderr)


# ---------------------------------------------------------------------------- subcommands
def cmd_generate(argv: list[str]) -> int:
    ns = generate_parser().parse_args(argv)
    values = {"prompt": ns.prompt}
    settings, explicit = settings_from_args(ns, values)
    return run_and_save(settings, explicit | {"prompt"}, ns)


def cmd_again(argv: list[str]) -> int:
    from .output import read_png_metadata

    ns = again_parser().parse_args(argv)
    meta = read_png_metadata(Path(ns.image))
    if "clipguide" not in meta:
        raise UserError(f"{ns.image} has no clipguide settings in its metadata: `again` needs a PNG clipguide made")
    try:
        stored = json.loads(meta["clipguide"])
    except json.JSONDecodeError:
        raise UserError(f"the clipguide metadata in {ns.image} is damaged: it is not valid JSON") from None
    if hasattr(ns, "prompt"):
        stored["prompt"] = ns.prompt
    settings, explicit = settings_from_args(ns, stored)
    # The fields the user chose back then still beat the style's overrides, as they did.
    try:
        chosen = frozenset(json.loads(meta.get("clipguide:explicit", "[]")))
    except json.JSONDecodeError:
        chosen = frozenset()
    return run_and_save(settings, explicit | chosen | {"prompt"}, ns)


def cmd_styles(argv: list[str]) -> int:
    from .presets import list_styles

    p = _Parser(prog="clipguide styles", description="List the style presets.")
    p.add_argument("--presets", action="append", default=[], metavar="DIR")
    ns = p.parse_args(argv)
    styles = list_styles(extra_dirs=tuple(ns.presets))
    width = max(len(n) for n in styles)
    for name, style in styles.items():
        extra = f"  [{', '.join(f'{k}={v}' for k, v in style.overrides.items())}]" if style.overrides else ""
        print(f"{name:<{width}}  {style.suffix!r}{extra}")
    return 0


def cmd_compare(argv: list[str]) -> int:
    from . import api
    from .compare import run_compare

    p = _Parser(prog="clipguide compare",
                description="Run several styles over the same seeds; report alignment and diversity.")
    p.add_argument("prompt", nargs="?", default=None, help="Base prompt (or --prompts FILE).")
    p.add_argument("--styles", default="none,baroque,cyberpunk,unreal engine", help="Comma-separated style names.")
    p.add_argument("--prompts", dest="prompts_file", default=None, metavar="FILE", help="One base prompt per line.")
    p.add_argument("--eval-clip", default=None, help="A CLIP model that did not guide the run, for the CLIP score.")
    p.add_argument("--out", default="compare", help="Output folder (default: compare).")
    p.add_argument("--demo", action="store_true", help="Use the shipped offline demo models.")
    p.add_argument("--presets", action="append", default=[], metavar="DIR")
    p.add_argument("--no-limits", action="store_true")
    p.add_argument("--quiet", action="store_true")
    add_settings_flags(p, skip=("prompt", "style"))
    ns = p.parse_args(argv)
    prompts = _compare_prompts(ns)
    if "seeds" not in vars(ns):
        ns.seeds = 16
    settings, explicit = settings_from_args(ns, {"prompt": prompts[0]})
    styles = [s.strip() for s in ns.styles.split(",") if s.strip()]
    if not styles:
        raise UserError("--styles is empty: name at least one style, e.g. --styles none,baroque")
    session = api.Session(settings.device, settings.offline)
    report = run_compare(settings, styles, out_dir=Path(ns.out), eval_clip=ns.eval_clip, session=session,
                         explicit=explicit | {"prompt", "seeds"}, style_dirs=tuple(ns.presets), prompts=prompts,
                         progress=None if ns.quiet else _notice)
    print(f"compared {len(report.styles)} styles over {len(report.seeds)} seeds "
          f"({report.generated} images made, {report.loaded} reused)")
    for name in ("report.md", "report.json", "grid.png", "alignment_vs_diversity.png"):
        if name in report.files:
            print(report.files[name])
    return 0


def _compare_prompts(ns: argparse.Namespace) -> list[str]:
    if ns.prompts_file:
        path = Path(ns.prompts_file)
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as e:
            raise UserError(f"cannot read --prompts {path}: {e.strerror if isinstance(e, OSError) else 'not UTF-8 text'}") from None
        prompts = [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
        if not prompts:
            raise UserError(f"--prompts {path} holds no prompts: write one per line")
        return prompts
    if not ns.prompt or not ns.prompt.strip():
        raise UserError("compare needs a prompt: clipguide compare \"a sunset\" --styles none,baroque")
    return [ns.prompt]


def cmd_weights(argv: list[str]) -> int:
    from .weights_cli import main as weights_main

    return weights_main(argv)


def cmd_bench(argv: list[str]) -> int:
    from .bench import main as bench_main

    return bench_main(argv)


def cmd_ui(argv: list[str]) -> int:
    from .webui import main as ui_main

    return ui_main(argv)


COMMANDS = {"again": cmd_again, "styles": cmd_styles, "compare": cmd_compare, "weights": cmd_weights,
            "bench": cmd_bench, "ui": cmd_ui}


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if argv and argv[0] in COMMANDS:
            return COMMANDS[argv[0]](argv[1:])
        return cmd_generate(argv)
    except UserError as e:
        print(f"clipguide: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("clipguide: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
