"""The Animate tab: a prompt per line (a story), the motion, the frames; a live preview, the video.

Each line of the prompt box is a story part (``30: a forest`` starts at frame 30). The run goes
through :func:`clipguide.animation.animate` with the shared model and settings below the tabs
("Steps" there is the first frame's); Stop ends it after the frames already finished, which are
kept with their video. Requests over the operator's caps (frames, steps, size) are refused before
they are queued.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import gradio as gr

from ..animation.settings import DEFAULT_FRAMES, AnimationSettings
from ..errors import UserError
from .jobs import PREVIEW_SIDE, WebApp, gr_error, shared_inputs, strip, validate
from .widgets import live_preview, run_buttons, slider, widget

#: The AnimationSettings fields the tab shows, in order.
MOTION = ("zoom", "angle", "translate_x", "translate_y")


def animate_inputs() -> tuple[str, ...]:
    """The /animate endpoint's inputs, in order."""
    return ("prompt", "style", "frames", "steps_per_frame", *MOTION, "fps", *shared_inputs())


def story_of(lines: str) -> str:
    """One prompt per line → a story ('a castle ^ 30: a forest'); one line is a plain prompt."""
    return " ^ ".join(line.strip() for line in (lines or "").splitlines() if line.strip())


def parse(app: WebApp, values: dict[str, Any]):
    """(settings, explicit, animation settings) of a request, checked against the caps."""
    from ..animation.loop import story_steps
    from ..animation.settings import from_dict

    values = dict(values)
    animation = {name: values.pop(name) for name in ("frames", "steps_per_frame", *MOTION, "fps")}
    animation["fps"] = animation["fps"] or None  # an empty box: the default
    anim = from_dict(animation)
    settings, explicit = app.settings(**{**values, "prompt": story_of(values.get("prompt", "")), "seeds": 1})
    app.check_prompt(settings, explicit)
    frames = anim.frames or DEFAULT_FRAMES
    app.limits.check_count(frames, app.limits.max_frames, "frames")
    app.limits.check_count(anim.steps_per_frame, app.limits.max_steps, "steps per frame")
    story_steps(settings, anim, frames)  # a story with more parts than frames
    return settings, explicit, anim


def check(app: WebApp, *args: Any) -> list:
    """Gradio's validator of /animate: refuse a bad request before it waits in the queue."""
    return validate(animate_inputs(), args, lambda values: parse(app, values))


def run(app: WebApp, values: dict[str, Any], request=None):
    """Stream (preview, status, video) while the frames are made in a worker thread."""
    from ..animation import animate

    flag = app.flag(request)
    try:
        try:
            settings, explicit, anim = parse(app, values)
        except UserError as e:
            raise gr_error(e) from None
        if flag.is_set():
            yield None, "stopped before it started", None
            return
        yield None, "starting (loading the models the first time)…", None
        out_dir = Path(tempfile.mkdtemp(prefix="animate-", dir=app.session_dir(request)))
        made = {"frame": 0}

        def on_frame(frame: int, last: int, images, paths) -> None:
            made["frame"] = frame + 1

        def work(hook):
            return animate(settings, anim, out_dir, explicit=explicit, session=app.session, style_dirs=app.style_dirs,
                           hook=hook, on_frame=on_frame, limits={"frames": app.limits.max_frames})

        result = None
        for kind, payload in app.stream(work, flag):
            if kind == "step":
                i, steps, loss, images = payload
                yield (strip(images, PREVIEW_SIDE), f"frame {made['frame'] + 1} · step {i}/{steps} · loss {loss:.4f}",
                       gr.skip())
            else:
                result = payload
        video = str(result.videos[0]) if result.videos else None
        last = sorted(result.folders[0].glob("[0-9]*.png"))[-1:] if result.done else []
        preview = strip([_open(last[0])], PREVIEW_SIDE) if last else None
        status = (f"stopped after {result.done} of {result.frames} frames; they and their video were kept"
                  if result.stopped else f"done: {result.done} frames at {result.fps:g} fps")
        yield preview, " · ".join([status, *result.notices]), video
    finally:
        app.release(request, flag)


def _open(path: Path):
    from PIL import Image

    with Image.open(path) as im:
        return im.convert("RGB")


def build(app: WebApp, styles: list[str]) -> dict[str, Any]:
    """The tab's own widgets (inside a ``gr.Tab``); returns them by input name, its buttons and outputs."""
    default = AnimationSettings()
    gr.Markdown("Frame 0 is a still made with the Steps below; every later frame moves the last one (zoom, angle, "
                "translate: numbers, or keyframes by frame like `0:1.0, 60:1.05`), re-encodes it and runs "
                "*steps per frame* more steps. One prompt per line makes a story: the next line after an even "
                "share of the frames, or from the frame a line names (`30: a forest`).")
    inputs: dict[str, Any] = {}
    with gr.Row():
        with gr.Column(scale=1):
            inputs["prompt"] = gr.Textbox(label="Prompts (one per line)", lines=3, placeholder="a castle\n30: a forest",
                                          max_length=app.limits.max_prompt_chars)
            inputs["style"] = gr.Dropdown(styles, value=styles[0] if styles else None, label="Style")
            with gr.Row():
                inputs["frames"] = slider(1, app.limits.max_frames, min(24, app.limits.max_frames), label="Frames")
                inputs["steps_per_frame"] = slider(1, min(200, app.limits.max_steps), default.steps_per_frame,
                                                   label="Steps per frame")
            with gr.Row():
                for name in MOTION:
                    inputs[name] = widget(name, getattr(default, name), cls=AnimationSettings)
            inputs["fps"] = widget("fps", default.fps, cls=AnimationSettings)
            button, stop = run_buttons("Animate")
        with gr.Column(scale=1):
            preview, status = live_preview()
            video = gr.Video(label="Video (MP4)", interactive=False)
    return {"inputs": inputs, "button": button, "stop": stop, "status": status, "outputs": [preview, status, video]}


def wire(app: WebApp, tab: dict[str, Any], shared: dict[str, Any], arm, stop) -> None:
    """The tab's events: Animate (checked before queueing, one run per device) and Stop."""

    def run_animate(request: gr.Request, *args):
        yield from run(app, dict(zip(animate_inputs(), args)), request)

    def check_animate(*args):
        return check(app, *args)

    widgets = {**tab["inputs"], **shared}
    tab["button"].click(arm, None, None, queue=False, api_visibility="private").then(
        run_animate, [widgets[n] for n in animate_inputs()], tab["outputs"], api_name="animate",
        concurrency_limit=1, concurrency_id="device", show_progress="minimal", validator=check_animate)
    tab["stop"].click(stop, None, tab["status"], queue=False, api_visibility="private", show_progress="hidden")


__all__ = ["animate_inputs", "story_of", "parse", "check", "run", "build", "wire", "MOTION"]
