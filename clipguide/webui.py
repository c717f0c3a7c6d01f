"""The Gradio web UI: ``python app.py`` or ``clipguide ui``.

A thin front end over :mod:`clipguide.api`, written for a server several people share:

* one run per device at a time (both tabs share one queue slot, ``concurrency_id="device"``);
  everyone else waits in the queue and sees their position;
* the operator caps size, steps, seeds and upload size (``--max-*``); a request over a cap is
  refused with a one-line error before anything runs;
* people pick models by *name* from lists the operator controls, never by filesystem path;
  uploads must be images Pillow can open and come from Gradio's own upload folder;
* results are the PNG files :func:`clipguide.output.save_png` wrote (settings in their metadata)
  in a per-session temporary folder; the gallery serves those files unchanged, so a download
  keeps the metadata that ``clipguide again`` re-runs.

Widget defaults, labels and choices come from :class:`clipguide.settings.Settings`, so they can
never drift from the CLI's. Stop ends the run through the engine callback and keeps the latest
image (saved like a finished one).
"""

from __future__ import annotations

import argparse
import html
import math
import queue
import re
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import gradio as gr

from . import __version__
from .errors import UserError, unknown
from .settings import AUGMENTS, INITS, LIMITS, Settings, field_help, from_dict, to_dict

#: CLIP models offered besides the demo (open_clip NAME/PRETRAINED tags); the operator can replace them.
DEFAULT_CLIPS = ("ViT-B-32/openai", "ViT-B-16/openai", "RN50/openai", "ViT-L-14/openai")
#: The gallery keeps this many of a session's latest images.
GALLERY_SIZE = 24
#: Image formats an upload may have (checked by opening it with Pillow, not by its name).
UPLOAD_FORMATS = ("PNG", "JPEG", "WEBP", "GIF", "BMP", "TIFF")
#: Previews per run (roughly): a preview every steps/PREVIEWS steps.
PREVIEWS = 25
#: ...and at least one this often (seconds), however long the run.
PREVIEW_SECONDS = 2.0
#: Small previews are enlarged to about this many pixels.
PREVIEW_SIDE = 256


@dataclass(frozen=True)
class Limits:
    """Operator caps for a shared server (lower than :data:`clipguide.settings.LIMITS`)."""

    max_size: int = 512  # pixels per side
    max_steps: int = 1000
    max_seeds: int = 4
    max_upload_mb: float = 10.0

    def check(self, settings: Settings) -> None:
        """Raise a one-line UserError naming the cap a request goes over."""
        if settings.size is not None and max(settings.size) > self.max_size:
            w, h = settings.size
            raise UserError(f"size {w}x{h} is over this server's limit of {self.max_size}px per side; "
                            "use a smaller size")
        if settings.steps > self.max_steps:
            raise UserError(f"{settings.steps} steps is over this server's limit of {self.max_steps}; use fewer steps")
        if settings.seeds > self.max_seeds:
            raise UserError(f"{settings.seeds} seeds is over this server's limit of {self.max_seeds}; use fewer seeds")


def default_generators() -> dict[str, str]:
    """Label → generator spec: the demo plus every weights-manifest name."""
    from .weights import load_manifest

    return {"demo": "demo", **{name: name for name in load_manifest()}}


def default_clips() -> dict[str, str]:
    """Label → CLIP spec: the demo CLIPs plus a few open_clip models VQGAN+CLIP users know."""
    from .perceptor import demo_clips

    return {**{spec: spec for spec in demo_clips()}, **{name: name for name in DEFAULT_CLIPS}}


def check_upload(path: str | None, limits: Limits, what: str) -> str | None:
    """Accept an uploaded file only if Gradio stored it, it is small enough and it is an image."""
    if not path:
        return None
    from gradio.utils import get_upload_folder
    from PIL import Image, UnidentifiedImageError

    file = Path(path).resolve()
    if not file.is_relative_to(Path(get_upload_folder()).resolve()) or not file.is_file():
        raise UserError(f"{what} must be a file uploaded through this page, not a path on the server")
    megabytes = file.stat().st_size / 2**20
    if megabytes > limits.max_upload_mb:
        raise UserError(f"{what} is {megabytes:.1f} MB, over this server's limit of {limits.max_upload_mb:g} MB; "
                        "upload a smaller image")
    try:
        with Image.open(file) as im:
            kind = im.format
            im.verify()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        raise UserError(f"{what} is not an image Pillow can read: upload a PNG, JPEG or WebP file") from None
    if kind not in UPLOAD_FORMATS:
        raise UserError(f"{what} is a {kind} image: upload a PNG, JPEG or WebP file")
    return str(file)


def _gr_error(e: UserError) -> gr.Error:
    # gr.Error renders HTML, and messages quote what people typed: escape it.
    return gr.Error(html.escape(str(e)), title="clipguide")


def _strip(images: list, min_side: int = 0) -> Any:
    """One image per seed side by side, for the live preview; small images are enlarged (pixels
    kept sharp) to about ``min_side`` so a 64-pixel demo is visible. Saved PNGs are never scaled."""
    from PIL import Image

    w, h = images[0].size
    scale = max(1, min_side // max(w, h))
    gap = 4 if len(images) > 1 else 0
    strip = Image.new("RGB", (w * scale * len(images) + gap * (len(images) - 1), h * scale), "white")
    for k, im in enumerate(images):
        strip.paste(im.resize((w * scale, h * scale), Image.NEAREST), (k * (w * scale + gap), 0))
    return strip


def _default_side(device) -> int:
    """The side the API picks when no size is given (asked of the API, not restated here)."""
    from .api import resolve_size

    free = SimpleNamespace(fixed_size=None, size_multiple=1)
    return resolve_size(Settings(), free, device, lambda _m: None)[0]


class _WebApp:
    """State shared by the event handlers: models, limits, stop flags, the results folder."""

    def __init__(self, limits: Limits, session, generators: Mapping[str, str], clips: Mapping[str, str],
                 defaults: Settings, style_dirs: Sequence[str]) -> None:
        self.limits = limits
        self.session = session
        self.generators = dict(generators)
        self.clips = dict(clips)
        self.defaults = defaults
        self.style_dirs = tuple(style_dirs)
        self._root = tempfile.TemporaryDirectory(prefix="clipguide-ui-")
        self._stops: dict[str, threading.Event] = {}
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ sessions
    def session_dir(self, request) -> Path:
        sid = re.sub(r"[^A-Za-z0-9_-]", "", getattr(request, "session_hash", None) or "")[:64] or "anonymous"
        folder = Path(self._root.name) / sid
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    @staticmethod
    def _sid(request) -> str:
        return getattr(request, "session_hash", None) or "anonymous"

    def arm(self, request=None) -> None:
        """Before a run is queued: a fresh stop flag, so Stop also works while the run waits."""
        with self._lock:
            self._stops[self._sid(request)] = threading.Event()

    def stop(self, request=None) -> str:
        with self._lock:
            flag = self._stops.get(self._sid(request))
        if flag is None:
            return "nothing is running"
        flag.set()
        return "stopping…"

    def _flag(self, request) -> threading.Event:
        with self._lock:
            return self._stops.setdefault(self._sid(request), threading.Event())

    def _release(self, request, flag: threading.Event) -> None:
        with self._lock:
            if self._stops.get(self._sid(request)) is flag:
                del self._stops[self._sid(request)]

    def forget(self, request=None) -> None:
        """The tab was closed: stop its run and delete its files."""
        import shutil

        with self._lock:
            flag = self._stops.pop(self._sid(request), None)
        if flag is not None:
            flag.set()
        shutil.rmtree(self.session_dir(request), ignore_errors=True)

    def close(self) -> None:
        self._root.cleanup()

    # ------------------------------------------------------------------ settings
    def settings(self, prompt: str, style: str, generator: str, clip: Sequence[str] | str, width: float,
                 height: float, steps: float, seed: float, seeds: float, cutn: float, cut_pow: float,
                 lr: float | None, augments: Sequence[str], init: str = "random", init_image: str | None = None,
                 image_prompts: Sequence[Any] | None = None) -> tuple[Settings, frozenset[str]]:
        """Settings from widget values, checked against the caps; also the names the user changed."""
        if generator not in self.generators:
            raise unknown("generator", str(generator), self.generators)
        clip = [clip] if isinstance(clip, str) else list(clip or [])
        if not clip:
            raise UserError("choose at least one CLIP model")
        for name in clip:
            if name not in self.clips:
                raise unknown("CLIP model", str(name), self.clips)
        values: dict[str, Any] = {
            "prompt": prompt or "", "style": style or "none", "generator": self.generators[generator],
            "clip": tuple(self.clips[c] for c in clip), "size": (width, height), "steps": steps, "seed": seed,
            "seeds": seeds, "cutn": cutn, "cut_pow": cut_pow, "lr": lr if lr else None,
            "augments": tuple(augments or ()), "init": init or "random",
        }
        if init_image:
            values["init_image"] = check_upload(init_image, self.limits, "the init image")
        files = [getattr(f, "name", f) for f in (image_prompts or [])]
        # ':1' keeps the API from reading a colon in a file name as a weight.
        values["image_prompts"] = tuple(f"{check_upload(f, self.limits, 'an image prompt')}:1" for f in files if f)
        base = to_dict(self.defaults)
        settings = from_dict({**base, **values})
        self.limits.check(settings)
        # As on the command line, a style may change what the user left at its default.
        explicit = frozenset(k for k, v in to_dict(settings).items() if v != base[k]) | {"prompt"}
        self.check_styles(settings, explicit, [settings.style])
        return settings, explicit

    def check_styles(self, settings: Settings, explicit: frozenset[str], styles: Sequence[str]) -> None:
        """A style preset may raise size or steps: check what would really run against the caps."""
        from .presets import apply_style

        for style in styles:
            self.limits.check(apply_style(settings.replace(style=style), explicit=explicit,
                                          extra_dirs=self.style_dirs))

    # ------------------------------------------------------------------ generate
    def generate(self, prompt, style, generator, clip, width, height, steps, seed, seeds, cutn, cut_pow, lr,
                 augments, init, init_image, image_prompts, history, request=None) -> Iterator[tuple]:
        """Stream (preview, status, gallery, history) while the API runs in a worker thread."""
        history = list(history or [])
        flag = self._flag(request)
        try:
            try:
                settings, explicit = self.settings(prompt, style, generator, clip, width, height, steps, seed,
                                                   seeds, cutn, cut_pow, lr, augments, init, init_image,
                                                   image_prompts)
            except UserError as e:
                raise _gr_error(e) from None
            if flag.is_set():
                yield None, "stopped before it started", history, history
                return
            yield None, "starting (loading the models the first time)…", history, history
            result = None
            for kind, payload in self._run(settings, explicit, flag):
                if kind == "step":
                    i, total, loss, images = payload
                    yield _strip(images, PREVIEW_SIDE), f"step {i}/{total} · loss {loss:.4f}", gr.skip(), gr.skip()
                else:
                    result = payload
            paths = self._save(result, request)
            history = ([[str(p), f"seed {s}"] for p, s in zip(paths, result.seeds)] + history)[:GALLERY_SIZE]
            status = (f"stopped after {result.steps_done} of {settings.steps} steps; the latest image was kept"
                      if result.stopped else f"done: {result.steps_done} steps, loss {sum(result.losses):.4f}")
            status = " · ".join([status, *result.notices])
            yield _strip(result.pil(), PREVIEW_SIDE), status, history, history
        finally:
            self._release(request, flag)

    def _run(self, settings: Settings, explicit: frozenset[str], flag: threading.Event) -> Iterator[tuple[str, Any]]:
        """Run :func:`api.generate` in a thread; yield ('step', …) previews, then ('done', Result)."""
        from . import api
        from .output import to_pil

        events: queue.Queue = queue.Queue()
        every = max(1, math.ceil(settings.steps / PREVIEWS))
        last = [0.0]

        def on_step(step) -> bool:
            # Every few steps, and at least every PREVIEW_SECONDS on long runs, so the page never looks stuck.
            now = time.monotonic()
            if step.i in (1, step.steps) or step.i % every == 0 or now - last[0] >= PREVIEW_SECONDS:
                last[0] = now
                events.put(("step", (step.i, step.steps, step.loss, to_pil(step.image()))))
            return flag.is_set()

        def work() -> None:
            try:
                events.put(("done", api.generate(settings, on_step, explicit=explicit, session=self.session,
                                                 style_dirs=self.style_dirs)))
            except BaseException as e:  # handed to the request thread, which raises it
                events.put(("error", e))

        worker = threading.Thread(target=work, name="clipguide-generate", daemon=True)
        worker.start()
        try:
            while True:
                kind, payload = events.get()
                while kind == "step" and not events.empty():  # skip previews the page has not caught up with
                    kind, payload = events.get_nowait()
                if kind == "error":
                    if isinstance(payload, UserError):
                        raise _gr_error(payload) from None
                    raise payload
                yield kind, payload
                if kind == "done":
                    return
        finally:
            flag.set()  # the page went away (generator closed) or the run ended: let the worker finish now
            worker.join()

    def _save(self, result, request) -> list[Path]:
        from .output import save_png, slugify

        folder = self.session_dir(request)
        stem = slugify(result.settings.prompt)
        return [save_png(im, folder, f"{stem}-{result.seeds[k]}", result.metadata(k))
                for k, im in enumerate(result.pil())]

    # ------------------------------------------------------------------ compare
    def compare(self, prompt, styles, seeds, seed, generator, clip, width, height, steps, cutn, cut_pow, lr,
                augments, init, request=None, progress=None) -> tuple:
        """Run every style over the same seeds: (grid, metrics table, plot, report files)."""
        from .compare import METRIC_NAMES, run_compare

        flag = self._flag(request)
        try:
            try:
                styles = [s for s in (styles or []) if s]
                if not styles:
                    raise UserError("choose at least one style to compare")
                if int(seeds) < 2:
                    raise UserError("compare needs at least 2 seeds per style to measure diversity")
                settings, explicit = self.settings(prompt, "none", generator, clip, width, height, steps, seed,
                                                   seeds, cutn, cut_pow, lr, augments, init)
                self.check_styles(settings, explicit | {"seeds"}, styles)
                out_dir = Path(tempfile.mkdtemp(prefix="compare-", dir=self.session_dir(request)))
                position = {"item": 0, "total": len(styles) + 1}

                def said(message: str) -> None:
                    found = re.match(r"\[(\d+)/(\d+)\]", message)
                    if found:
                        position["item"], position["total"] = int(found[1]) - 1, int(found[2])
                        if progress is not None:
                            progress(position["item"] / position["total"], desc=message)

                def on_step(step) -> bool:
                    if progress is not None and (step.i % 5 == 0 or step.i == step.steps):
                        done = position["item"] + step.i / step.steps
                        progress(done / position["total"], desc=f"style {position['item'] + 1}/{position['total']} "
                                                                f"· step {step.i}/{step.steps}")
                    return flag.is_set()

                report = run_compare(settings, styles, out_dir=out_dir, eval_clip=None, session=self.session,
                                     callback=on_step, explicit=explicit | {"seeds"}, style_dirs=self.style_dirs,
                                     progress=said)
            except UserError as e:
                raise _gr_error(e) from None
        finally:
            self._release(request, flag)
        rows = [[r.style, *(f"{r.metrics[m].value:.3f} [{r.metrics[m].low:.3f}, {r.metrics[m].high:.3f}]"
                            for m in METRIC_NAMES)] for r in report.results]
        table = gr.Dataframe(value=rows, headers=metric_headers())
        files = [str(report.files[k]) for k in ("report.md", "report.json") if k in report.files]
        return (str(report.files["grid.png"]), table, str(report.files["alignment_vs_diversity.png"]), files)


def build_app(*, limits: Limits | None = None, session=None, generators: Mapping[str, str] | None = None,
              clips: Mapping[str, str] | None = None, demo: bool = False, style_dirs: Sequence[str] = ()):
    """The Gradio Blocks app (not launched).

    ``generators``/``clips`` map the names people can choose to the specs the API loads (the
    operator may map a name to a local path; people only ever see and send names). ``demo``
    preselects the shipped offline demo models and :data:`clipguide.settings.DEMO_SETTINGS`.
    """
    from . import api
    from .settings import DEMO_SETTINGS
    from .presets import list_styles

    limits = limits or Limits()
    session = session or api.Session("auto")
    generators = dict(generators) if generators is not None else default_generators()
    clips = dict(clips) if clips is not None else default_clips()
    base = Settings()
    if demo:
        base = base.replace(**DEMO_SETTINGS)
    side = min(_default_side(session.device), limits.max_size)
    size = tuple(min(v, limits.max_size) for v in base.size) if base.size else (side, side)
    base = base.replace(size=size, steps=min(base.steps, limits.max_steps))
    # A default the operator did not offer falls back to the first choice.
    gen_default = _label_of(generators, base.generator) or next(iter(generators), None)
    clip_default = [_label_of(clips, c) for c in base.clip if _label_of(clips, c)] or list(clips)[:1]
    if gen_default is None or not clip_default:
        raise UserError("the web UI needs at least one generator and one CLIP model to offer")
    # The defaults shown are the defaults sent: what the user leaves alone stays "not explicit".
    base = base.replace(generator=generators[gen_default], clip=tuple(clips[c] for c in clip_default))
    app = _WebApp(limits, session, generators, clips, base, style_dirs)
    styles = [s.name for s in list_styles(style_dirs).values()]
    meta = {f.name: f.metadata for f in fields(Settings)}
    info = field_help

    with gr.Blocks(title="clipguide", delete_cache=(3600, 6 * 3600)) as blocks:
        gr.Markdown(f"# clipguide {__version__}\nCLIP-guided VQGAN/BigGAN art. One run at a time on this server; "
                    f"caps: {limits.max_size}px, {limits.max_steps} steps, {limits.max_seeds} seeds.")
        with gr.Tab("Generate"):
            with gr.Row():
                with gr.Column(scale=1):
                    prompt = gr.Textbox(label="Prompt", info=info("prompt"), placeholder="a sunset over the sea",
                                        lines=2)
                    style = gr.Dropdown(styles, value=_style_name(styles, base.style), label="Style",
                                        info=info("style"))
                    seeds = _slider(1, limits.max_seeds, base.seeds,
                                      label="Images (seeds)", info=info("seeds"))
                    with gr.Row():
                        run = gr.Button("Generate", variant="primary")
                        stop = gr.Button("Stop", variant="stop")
                with gr.Column(scale=1):
                    preview = gr.Image(label="Live preview", format="png", interactive=False, height=320,
                                       buttons=["fullscreen"])
                    status = gr.Textbox(label="Progress", interactive=False, max_lines=2)
            gallery = gr.Gallery(label="Results (PNG with settings in the metadata)", columns=6, height=300,
                                 fit_columns=False, object_fit="contain", interactive=False,
                                 buttons=["download", "download_all", "fullscreen"])
            history = gr.State([])
        with gr.Tab("Compare styles"):
            gr.Markdown("Runs every style over the same seeds with the model and settings below, then measures "
                        "diversity (Vendi score, mean pairwise distance) and alignment (CLIP score vs the prompt "
                        "without the style).")
            with gr.Row():
                c_prompt = gr.Textbox(label="Prompt", placeholder="a sunset over the sea", scale=2)
                c_styles = gr.Dropdown(styles, value=[s for s in styles if s != "none"][:2], multiselect=True,
                                       label="Styles ('none' is always added)", scale=2)
                c_seeds = _slider(2, limits.max_seeds, limits.max_seeds,
                                    label="Seeds per style", scale=1)
            c_run = gr.Button("Compare", variant="primary")
            with gr.Row():
                c_grid = gr.Image(label="Grid (rows: styles, columns: seeds)", type="filepath", interactive=False,
                                  buttons=["download", "fullscreen"])
                c_plot = gr.Image(label="Alignment vs diversity", type="filepath", interactive=False,
                                  buttons=["download", "fullscreen"])
            c_table = gr.Dataframe(headers=metric_headers(), label="Metrics (95% bootstrap intervals)",
                                   interactive=False, wrap=True)
            c_files = gr.Files(label="Report files")

        gr.Markdown("### Model and settings (both tabs)")
        with gr.Row():
            generator = gr.Dropdown(list(generators), value=gen_default, label="Generator", info=info("generator"))
            clip = gr.Dropdown(list(clips), value=clip_default, multiselect=True, label="CLIP model(s)",
                               info=info("clip"))
        with gr.Row():
            width = _slider(16, limits.max_size, size[0], step=16, label="Width", info=info("size"))
            height = _slider(16, limits.max_size, size[1], step=16, label="Height")
            steps = _slider(1, limits.max_steps, base.steps, label="Steps", info=info("steps"))
            seed = gr.Number(value=base.seed, precision=0, label="Seed", info=info("seed"))
        with gr.Accordion("Advanced", open=False):
            with gr.Row():
                cutn = gr.Number(value=base.cutn, precision=0, minimum=1, maximum=LIMITS["cutn"], label="Cutouts",
                                 info=info("cutn"))
                cut_pow = gr.Number(value=base.cut_pow, minimum=0.01, label="Cut power", info=info("cut_pow"))
                lr = gr.Number(value=base.lr, minimum=0, label="Learning rate", info=info("lr"))
            augments = gr.CheckboxGroup(list(meta["augments"].get("choices", AUGMENTS)), value=list(base.augments),
                                        label="Augmentations", info=info("augments"))
            init = gr.Radio(list(INITS), value=base.init, label="Start", info=info("init"))
            with gr.Row():
                init_image = gr.Image(type="filepath", label="Init image", sources=["upload", "clipboard"],
                                      format="png")
                image_prompts = gr.File(file_count="multiple", file_types=["image"], type="filepath",
                                        label="Image prompts", height=160)

        settings_inputs = [generator, clip, width, height, steps, seed, seeds, cutn, cut_pow, lr, augments, init]

        def run_generate(prompt, style, generator, clip, width, height, steps, seed, seeds, cutn, cut_pow, lr,
                         augments, init, init_image, image_prompts, history, request: gr.Request):
            yield from app.generate(prompt, style, generator, clip, width, height, steps, seed, seeds, cutn,
                                    cut_pow, lr, augments, init, init_image, image_prompts, history, request)

        def run_compare(prompt, styles, seeds, seed, generator, clip, width, height, steps, cutn, cut_pow, lr,
                        augments, init, request: gr.Request, progress=gr.Progress()):
            return app.compare(prompt, styles, seeds, seed, generator, clip, width, height, steps, cutn, cut_pow,
                               lr, augments, init, request, progress)

        def arm(request: gr.Request) -> None:
            app.arm(request)

        def do_stop(request: gr.Request) -> str:
            return app.stop(request)

        def forget(request: gr.Request) -> None:
            app.forget(request)

        gen_inputs = [prompt, style, *settings_inputs[:6], seeds, *settings_inputs[7:], init_image, image_prompts,
                      history]
        gr.on([run.click, prompt.submit], arm, None, None, queue=False, api_visibility="private").then(
            run_generate, gen_inputs, [preview, status, gallery, history], api_name="generate",
            concurrency_limit=1, concurrency_id="device", show_progress="minimal")
        stop.click(do_stop, None, status, queue=False, api_name="stop", show_progress="hidden")
        c_run.click(arm, None, None, queue=False, api_visibility="private").then(
            run_compare, [c_prompt, c_styles, c_seeds, seed, generator, clip, width, height, steps, cutn, cut_pow,
                          lr, augments, init],
            [c_grid, c_table, c_plot, c_files], api_name="compare", concurrency_limit=1, concurrency_id="device")
        blocks.unload(forget)
    blocks.queue(default_concurrency_limit=1, max_size=32)
    blocks.clipguide = app  # tests and main() reach the temp folder through this
    return blocks


def metric_headers() -> list[str]:
    """Column titles of the compare table, in the order of :data:`clipguide.compare.METRIC_NAMES`."""
    from .compare import METRIC_NAMES

    titles = {"vendi": "Vendi", "vendi_ratio": "Vendi / none", "pairwise_distance": "mean pairwise distance",
              "clip_score": "CLIP score vs prompt", "style_shift": "style shift vs none"}
    return ["style", *(titles.get(m, m) for m in METRIC_NAMES)]


def _slider(low: int, high: int, value: int, **kw: Any):
    """A slider from low to high, or a plain number box when the operator's cap leaves one value."""
    if high <= low:
        return gr.Number(value=low, minimum=low, maximum=low, precision=0, **kw)
    return gr.Slider(low, high, value=min(max(value, low), high), step=kw.pop("step", 1), **kw)


def _label_of(choices: Mapping[str, str], name: str) -> str | None:
    """The choice a Settings value stands for: the label itself, or the label whose spec it is."""
    if name in choices:
        return name
    return next((label for label, spec in choices.items() if spec == name), None)


def _style_name(styles: Sequence[str], name: str) -> str | None:
    from .presets import normalize_name

    return next((s for s in styles if normalize_name(s) == normalize_name(name)), styles[0] if styles else None)


def parser() -> argparse.ArgumentParser:
    defaults = Limits()
    p = argparse.ArgumentParser(prog="clipguide ui", description="Start the clipguide web UI.")
    p.add_argument("--host", default="127.0.0.1",
                   help="Address to listen on (default: 127.0.0.1; 0.0.0.0 serves your network).")
    p.add_argument("--port", type=int, default=7860, help="Port (default: 7860).")
    p.add_argument("--share", action="store_true", help="Also make a temporary public gradio.live link.")
    p.add_argument("--demo", action="store_true", help="Preselect the shipped offline demo models and sizes.")
    p.add_argument("--device", default=Settings().device, choices=meta_choices("device"), help=field_help("device"))
    p.add_argument("--offline", action="store_true", help=field_help("offline"))
    p.add_argument("--presets", action="append", default=[], metavar="DIR", help="Extra style preset folder.")
    p.add_argument("--max-size", type=int, default=defaults.max_size, help="Largest side in pixels people may ask for.")
    p.add_argument("--max-steps", type=int, default=defaults.max_steps, help="Most steps per run.")
    p.add_argument("--max-seeds", type=int, default=defaults.max_seeds, help="Most images per run.")
    p.add_argument("--max-upload-mb", type=float, default=defaults.max_upload_mb, help="Largest upload in MB.")
    return p


def meta_choices(name: str) -> tuple[str, ...]:
    return next(f.metadata["choices"] for f in fields(Settings) if f.name == name)


def main(argv: Sequence[str] | None = None) -> int:
    """Start the server and block until Ctrl-C."""
    ns = parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    try:
        for flag in ("max_size", "max_steps", "max_seeds", "max_upload_mb"):
            if getattr(ns, flag) <= 0:
                raise UserError(f"--{flag.replace('_', '-')} must be positive, got {getattr(ns, flag)}")
        from . import api

        limits = Limits(ns.max_size, ns.max_steps, ns.max_seeds, ns.max_upload_mb)
        blocks = build_app(limits=limits, session=api.Session(ns.device, ns.offline), demo=ns.demo,
                           style_dirs=ns.presets)
    except UserError as e:
        print(f"clipguide: error: {e}", file=sys.stderr)
        return e.exit_code
    try:
        blocks.launch(server_name=ns.host, server_port=ns.port, share=ns.share,
                      max_file_size=f"{ns.max_upload_mb:g}mb")
    except KeyboardInterrupt:
        pass
    finally:
        blocks.clipguide.close()
    return 0


__all__ = ["Limits", "build_app", "main", "check_upload", "default_generators", "default_clips", "DEFAULT_CLIPS"]
