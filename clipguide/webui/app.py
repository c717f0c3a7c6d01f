"""The page: its tabs, the shared "Model and settings" section, the events; and ``clipguide ui``.

A thin front end over the library, written for a server several people share:

* one run per device at a time (every tab shares one queue slot, ``concurrency_id="device"``);
  everyone else waits in the queue and sees their position;
* the operator caps size, steps, seeds, prompt length and uploads (``--max-*``); a request over a
  cap is refused with a one-line error before it is queued;
* people pick models by *name* from lists the operator controls, never by filesystem path;
  uploads must be images Pillow can open and come from Gradio's own upload folder;
* results are the PNG files :func:`clipguide.output.save_result` wrote (settings in their
  metadata); the gallery serves those files unchanged, so a download keeps what ``clipguide
  again`` re-runs.

Widget defaults, labels and choices come from :class:`clipguide.settings.Settings`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from typing import Any

import gradio as gr

from .. import __version__, specs
from ..errors import UserError
from ..settings import LIMITS, Settings, field_help
from . import animate_tab, compare_tab, telephone_tab
from .jobs import GALLERY_SIZE, WebApp, generate_inputs, shared_inputs
from .limits import Limits, default_clips, default_generators
from .widgets import drawer_of, fields_for, live_preview, loss_table, run_buttons, shown_for, slider, widget


def build_app(*, limits: Limits | None = None, session=None, generators: Mapping[str, str] | None = None,
              clips: Mapping[str, str] | None = None, demo: bool = False, style_dirs: Sequence[str] = ()):
    """The Gradio Blocks app (not launched).

    ``generators``/``clips`` map the names people can choose to the specs the library loads (the
    operator may map a name to a local path; people only ever see and send names). ``demo``
    preselects the shipped offline demo models and their settings (``presets/demo.toml``).
    """
    from ..presets import demo_settings, list_styles
    from ..session import Session

    limits = limits or Limits()
    session = session or Session("auto")
    generators = dict(generators) if generators is not None else default_generators()
    clips = dict(clips) if clips is not None else default_clips()
    base = Settings()
    if demo:
        base = base.replace(**demo_settings())
    side = min(512 if session.device.type == "cuda" else 256, limits.max_size)
    size = tuple(min(v, limits.max_size) for v in base.size) if base.size else (side, side)
    base = base.replace(size=size, steps=min(base.steps, limits.max_steps))
    # A default the operator did not offer falls back to the first choice.
    gen_default = _label_of(generators, base.generator) or next(iter(generators), None)
    clip_default = [_label_of(clips, c) for c in base.clip if _label_of(clips, c)] or list(clips)[:1]
    if gen_default is None or not clip_default:
        raise UserError("the web UI needs at least one generator and one CLIP model to offer")
    # The defaults shown are the defaults sent: what the user leaves alone stays "not explicit".
    base = base.replace(generator=generators[gen_default], clip=tuple(clips[c] for c in clip_default))
    app = WebApp(limits, session, generators, clips, base, style_dirs)
    styles = [s.name for s in list_styles(style_dirs).values()]
    info = field_help

    with gr.Blocks(title="clipguide", delete_cache=(3600, 6 * 3600)) as blocks:
        gr.Markdown(f"# clipguide {__version__}\nCLIP-guided VQGAN/BigGAN art. One run at a time on this server; "
                    f"caps: {limits.max_size}px, {limits.max_steps} steps, {limits.max_seeds} seeds.")
        own: dict[str, Any] = {}
        with gr.Tab("Generate"):
            with gr.Row():
                with gr.Column(scale=1):
                    own["prompt"] = gr.Textbox(label="Prompt", info=info("prompt"), lines=2,
                                               placeholder="a sunset over the sea", max_length=limits.max_prompt_chars)
                    own["style"] = gr.Dropdown(styles, value=_style_name(styles, base.style), label="Style",
                                               info=info("style"))
                    own["seeds"] = slider(1, limits.max_seeds, base.seeds, label="Images (seeds)", info=info("seeds"))
                    run, stop = run_buttons("Generate")
                with gr.Column(scale=1):
                    preview, status = live_preview()
            gallery = gr.Gallery(label="Results (PNG with settings in the metadata)", columns=6, height=300,
                                 fit_columns=False, object_fit="contain", interactive=False,
                                 buttons=["download", "download_all", "fullscreen"])
            history = gr.State([])
        with gr.Tab("Compare styles"):
            compare = compare_tab.build(app, styles)
        with gr.Tab("Telephone"):
            telephone = telephone_tab.build(app, styles)
        with gr.Tab("Animate"):
            animate = animate_tab.build(app, styles)

        gr.Markdown("### Model and settings (every tab)")
        shared: dict[str, Any] = {}
        with gr.Row():
            shared["generator"] = gr.Dropdown(list(generators), value=gen_default, label="Generator",
                                              info=info("generator"))
            shared["clip"] = gr.Dropdown(list(clips), value=clip_default, multiselect=True, label="CLIP model(s)",
                                         info=info("clip"))
        with gr.Row():
            shared["width"] = slider(16, limits.max_size, size[0], step=16, label="Width", info=info("size"))
            shared["height"] = slider(16, limits.max_size, size[1], step=16, label="Height")
            shared["steps"] = slider(1, limits.max_steps, base.steps, label="Steps", info=info("steps"))
            shared["seed"] = gr.Number(value=base.seed, precision=0, label="Seed", info=info("seed"))
        with gr.Accordion("Advanced", open=False):
            for name in fields_for("advanced"):
                overrides = {"maximum": LIMITS["cutn"]} if name == "cutn" else {}
                shared[name] = widget(name, getattr(base, name), visible=shown_for(name, base.generator), **overrides)
            with gr.Row():
                own["init_image"] = gr.Image(type="filepath", label="Init image (Generate)",
                                             sources=["upload", "clipboard"], format="png")
                own["image_prompts"] = gr.File(file_count="multiple", file_types=["image"], type="filepath",
                                               label="Image prompts (Generate)", height=160)
        with gr.Accordion("Loss terms", open=bool(base.losses)):
            shared["losses"] = loss_table(base.losses)
            with gr.Row():
                for name in fields_for("losses"):
                    shared[name] = widget(name, getattr(base, name))

        widgets = {**own, **shared}
        # A drawer's options show only while that drawer is the chosen generator.
        drawer_options = [n for n in fields_for("advanced") if drawer_of(n)]
        shared["generator"].change(lambda label: [gr.update(visible=shown_for(n, generators.get(label, label)))
                                                  for n in drawer_options],
                                   shared["generator"], [shared[n] for n in drawer_options], queue=False,
                                   api_visibility="private")
        gen_inputs = [widgets[n] for n in generate_inputs()]

        # Gradio hands the request (and progress) to the parameters annotated for them; they come
        # first so that every input of the endpoint can follow in *args.
        def run_generate(request: gr.Request, *args):
            *values, past = args
            yield from app.generate(dict(zip(generate_inputs(), values)), past, request)

        def check_generate(*args):
            return [*app.check(*args[:-1]), gr.validate(True, "")]  # the history state needs no check

        def run_compare(request: gr.Request, progress=gr.Progress(), *args):  # noqa: B008 - Gradio's own idiom
            return compare_tab.run(app, dict(zip(compare_tab.compare_inputs(), args)), request, progress)

        def check_compare(*args):
            return compare_tab.check(app, *args)

        def arm(request: gr.Request) -> None:
            app.arm(request)

        def do_stop(request: gr.Request) -> str:
            return app.stop(request)

        def forget(request: gr.Request) -> None:
            app.forget(request)

        gr.on([run.click, own["prompt"].submit], arm, None, None, queue=False, api_visibility="private").then(
            run_generate, [*gen_inputs, history], [preview, status, gallery, history], api_name="generate",
            concurrency_limit=1, concurrency_id="device", show_progress="minimal", validator=check_generate)
        stop.click(do_stop, None, status, queue=False, api_name="stop", show_progress="hidden")
        compare_widgets = {**compare["inputs"], **shared}
        compare["button"].click(arm, None, None, queue=False, api_visibility="private").then(
            run_compare, [compare_widgets[n] for n in compare_tab.compare_inputs()], compare["outputs"],
            api_name="compare", concurrency_limit=1, concurrency_id="device", validator=check_compare)
        telephone_tab.wire(app, telephone, shared, arm, do_stop)
        animate_tab.wire(app, animate, shared, arm, do_stop)
        blocks.unload(forget)
    blocks.queue(default_concurrency_limit=1, max_size=32)
    blocks.clipguide = app  # tests and main() reach the temp folder through this
    return blocks


def _label_of(choices: Mapping[str, str], name: str) -> str | None:
    """The choice a Settings value stands for: the label itself, or the label whose spec it is."""
    if name in choices:
        return name
    return next((label for label, spec in choices.items() if spec == name), None)


def _style_name(styles: Sequence[str], name: str) -> str | None:
    from ..presets import normalize_name

    return next((s for s in styles if normalize_name(s) == normalize_name(name)), styles[0] if styles else None)


def parser() -> argparse.ArgumentParser:
    defaults = Limits()
    p = argparse.ArgumentParser(prog="clipguide ui", description="Start the clipguide web UI.")
    p.add_argument("--host", default="127.0.0.1",
                   help="Address to listen on (default: 127.0.0.1; 0.0.0.0 serves your network).")
    p.add_argument("--port", type=int, default=7860, help="Port (default: 7860).")
    p.add_argument("--share", action="store_true", help="Also make a temporary public gradio.live link.")
    p.add_argument("--demo", action="store_true", help="Preselect the shipped offline demo models and sizes.")
    p.add_argument("--device", default=Settings().device, choices=specs.choices_of(Settings, "device"),
                   help=field_help("device"))
    p.add_argument("--offline", action="store_true", help=field_help("offline"))
    p.add_argument("--presets", action="append", default=[], metavar="DIR", help="Extra style preset folder.")
    p.add_argument("--max-size", type=int, default=defaults.max_size, help="Largest side in pixels people may ask for.")
    p.add_argument("--max-steps", type=int, default=defaults.max_steps, help="Most steps per run.")
    p.add_argument("--max-seeds", type=int, default=defaults.max_seeds, help="Most images per run.")
    p.add_argument("--max-upload-mb", type=float, default=defaults.max_upload_mb, help="Largest upload in MB.")
    p.add_argument("--max-prompt-chars", type=int, default=defaults.max_prompt_chars,
                   help="Longest prompt in characters.")
    return p


CAPS = ("max_size", "max_steps", "max_seeds", "max_upload_mb", "max_prompt_chars")


def main(argv: Sequence[str] | None = None) -> int:
    """Start the server and block until Ctrl-C."""
    ns = parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    try:
        for flag in CAPS:
            if getattr(ns, flag) <= 0:
                raise UserError(f"--{flag.replace('_', '-')} must be positive, got {getattr(ns, flag)}")
        from ..session import Session

        limits = Limits(**{flag: getattr(ns, flag) for flag in CAPS})
        blocks = build_app(limits=limits, session=Session(ns.device, ns.offline), demo=ns.demo, style_dirs=ns.presets)
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


__all__ = ["build_app", "main", "parser", "GALLERY_SIZE", "shared_inputs"]
