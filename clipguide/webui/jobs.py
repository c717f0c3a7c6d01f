"""The web UI's state and handlers: widget values → settings, runs in a worker thread, Stop, saving.

Every request is checked before it is queued (:meth:`WebApp.check`, Gradio's ``validator``), so a
value over a cap is refused at once instead of after waiting its turn. Results are saved with the
library's :func:`clipguide.output.save_result` into a per-session temporary folder.
"""

from __future__ import annotations

import html
import math
import queue
import re
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import gradio as gr

from ..errors import UserError, unknown
from ..settings import Settings, from_dict, to_dict
from .limits import Limits, check_upload
from .widgets import fields_for, from_widget

#: Previews per run (roughly): a preview every steps/PREVIEWS steps...
PREVIEWS = 25
#: ...and at least one this often (seconds), however long the run.
PREVIEW_SECONDS = 2.0
#: Small previews are enlarged to about this many pixels.
PREVIEW_SIDE = 256
#: The gallery keeps this many of a session's latest images.
GALLERY_SIZE = 24



def shared_inputs() -> tuple[str, ...]:
    """The settings every tab takes from the shared "Model and settings" section, in order (the
    Advanced ones come from Settings' declarations)."""
    return ("generator", "clip", "width", "height", "steps", "seed", *fields_for("advanced"), "losses",
            *fields_for("losses"))


def generate_inputs() -> tuple[str, ...]:
    """The /generate endpoint's inputs, in order."""
    return ("prompt", "style", "seeds", *shared_inputs(), "init_image", "image_prompts")


def validate(names: Sequence[str], values: Sequence[Any], check: Callable[[dict[str, Any]], Any]) -> list:
    """Run ``check`` on a request's values; Gradio's per-input verdicts, the error on the input it names."""
    verdicts = [gr.validate(True, "") for _ in names]
    try:
        check(dict(zip(names, values)))
    except UserError as e:
        message = str(e)
        named = [i for i, n in enumerate(names) if re.search(rf"\b{re.escape(n)}\b", message)]
        verdicts[named[0] if named else 0] = gr.validate(False, message)
    return verdicts


def gr_error(e: UserError) -> gr.Error:
    # gr.Error renders HTML, and messages quote what people typed: escape it.
    return gr.Error(html.escape(str(e)), title="clipguide")


def strip(images: list, min_side: int = 0) -> Any:
    """One image per seed side by side, for the live preview; small images are enlarged (pixels
    kept sharp) to about ``min_side`` so a 64-pixel demo is visible. Saved PNGs are never scaled."""
    from PIL import Image

    w, h = images[0].size
    scale = max(1, min_side // max(w, h))
    gap = 4 if len(images) > 1 else 0
    out = Image.new("RGB", (w * scale * len(images) + gap * (len(images) - 1), h * scale), "white")
    for k, im in enumerate(images):
        out.paste(im.resize((w * scale, h * scale), Image.NEAREST), (k * (w * scale + gap), 0))
    return out


class WebApp:
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

    def flag(self, request) -> threading.Event:
        with self._lock:
            return self._stops.setdefault(self._sid(request), threading.Event())

    def release(self, request, flag: threading.Event) -> None:
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
    def settings(self, **values: Any) -> tuple[Settings, frozenset[str]]:
        """Settings from widget values (names as in :func:`generate_inputs`), checked against the caps;
        also the names the user changed."""
        generator, clip = values.pop("generator"), values.pop("clip")
        if generator not in self.generators:
            raise unknown("generator", str(generator), self.generators)
        clip = [clip] if isinstance(clip, str) else list(clip or [])
        if not clip:
            raise UserError("choose at least one CLIP model")
        for name in clip:
            if name not in self.clips:
                raise unknown("CLIP model", str(name), self.clips)
        for text in ("prompt", "negative"):  # before any parsing: a cap on what the server reads
            if isinstance(values.get(text), str):
                self.limits.check_prompt(values[text], "the prompt" if text == "prompt" else "the negative prompt")
        init_image, image_prompts = values.pop("init_image", None), values.pop("image_prompts", None)
        chosen = {"prompt": values.pop("prompt", "") or "", "style": values.pop("style", None) or "none",
                  "generator": self.generators[generator], "clip": tuple(self.clips[c] for c in clip),
                  "size": (values.pop("width"), values.pop("height"))}
        chosen.update({name: from_widget(name, value) for name, value in values.items()})
        if init_image:
            chosen["init_image"] = check_upload(init_image, self.limits, "the init image")
        files = [getattr(f, "name", f) for f in (image_prompts or [])]
        # ':1' keeps the API from reading a colon in a file name as a weight.
        chosen["image_prompts"] = tuple(f"{check_upload(f, self.limits, 'an image prompt')}:1" for f in files if f)
        base = to_dict(self.defaults)
        settings = from_dict({**base, **chosen})
        self.limits.check(settings)
        # As on the command line, a style may change what the user left at its default.
        explicit = frozenset(k for k, v in to_dict(settings).items() if v != base[k]) | {"prompt"}
        self.check_styles(settings, explicit, [settings.style])
        return settings, explicit

    def check_prompt(self, settings: Settings, explicit: frozenset[str]) -> None:
        """The prompt's syntax, as the run will read it (cheap: no model is loaded)."""
        from ..build import story_prompts
        from ..presets import apply_style

        story_prompts(apply_style(settings, explicit=explicit, extra_dirs=self.style_dirs))

    def check_styles(self, settings: Settings, explicit: frozenset[str], styles: Sequence[str]) -> None:
        """A style preset may raise size or steps: check what would really run against the caps."""
        from ..presets import apply_style

        for style in styles:
            self.limits.check(apply_style(settings.replace(style=style), explicit=explicit,
                                          extra_dirs=self.style_dirs))

    def check(self, *args: Any) -> list:
        """Gradio's validator of /generate: refuse a bad request before it waits in the queue."""
        def full(values: dict[str, Any]) -> None:
            self.check_prompt(*self.settings(**values))

        return validate(generate_inputs(), args, full)

    # ------------------------------------------------------------------ generate
    def generate(self, values: dict[str, Any], history, request=None) -> Iterator[tuple]:
        """Stream (preview, status, gallery, history) while the API runs in a worker thread."""
        history = list(history or [])
        flag = self.flag(request)
        try:
            try:
                settings, explicit = self.settings(**values)
                self.check_prompt(settings, explicit)
            except UserError as e:
                raise gr_error(e) from None
            if flag.is_set():
                yield None, "stopped before it started", history, history
                return
            yield None, "starting (loading the models the first time)…", history, history
            result = None
            for kind, payload in self.stream(lambda hook: self._generate(settings, explicit, hook), flag):
                if kind == "step":
                    i, total, loss, images = payload
                    yield strip(images, PREVIEW_SIDE), f"step {i}/{total} · loss {loss:.4f}", gr.skip(), gr.skip()
                else:
                    result = payload
            from ..output import save_result

            paths = save_result(result, self.session_dir(request))
            history = ([[str(p), f"seed {s}"] for p, s in zip(paths, result.seeds)] + history)[:GALLERY_SIZE]
            status = (f"stopped after {result.steps_done} of {settings.steps} steps; the latest image was kept"
                      if result.stopped else f"done: {result.steps_done} steps, loss {sum(result.losses):.4f}")
            status = " · ".join([status, *result.notices])
            yield strip(result.pil(), PREVIEW_SIDE), status, history, history
        finally:
            self.release(request, flag)

    def _generate(self, settings: Settings, explicit: frozenset[str], hook):
        from ..api import generate

        return generate(settings, hook, explicit=explicit, session=self.session, style_dirs=self.style_dirs)

    def stream(self, work: Callable[[Callable], Any], flag: threading.Event, *, every_steps: int | None = None
               ) -> Iterator[tuple[str, Any]]:
        """Run ``work(hook)`` in a thread; yield ('step', (i, steps, loss, images)) previews, then ('done', result).

        The hook sends a preview every few steps (and at least every PREVIEW_SECONDS, so the page
        never looks stuck) and stops the work when Stop was pressed.
        """
        from ..output import to_pil

        events: queue.Queue = queue.Queue()
        last = [0.0]

        def hook(step) -> bool:
            every = every_steps or max(1, math.ceil(step.steps / PREVIEWS))
            now = time.monotonic()
            if step.i in (1, step.steps) or step.i % every == 0 or now - last[0] >= PREVIEW_SECONDS:
                last[0] = now
                events.put(("step", (step.i, step.steps, step.loss, to_pil(step.image()))))
            return flag.is_set()

        def run() -> None:
            try:
                events.put(("done", work(hook)))
            except BaseException as e:  # handed to the request thread, which raises it
                events.put(("error", e))

        worker = threading.Thread(target=run, name="clipguide-run", daemon=True)
        worker.start()
        try:
            while True:
                kind, payload = events.get()
                while kind == "step" and not events.empty():  # skip previews the page has not caught up with
                    kind, payload = events.get_nowait()
                if kind == "error":
                    if isinstance(payload, UserError):
                        raise gr_error(payload) from None
                    raise payload
                yield kind, payload
                if kind == "done":
                    return
        finally:
            flag.set()  # the page went away (generator closed) or the run ended: let the worker finish now
            worker.join()


__all__ = ["WebApp", "generate_inputs", "shared_inputs", "validate", "gr_error", "strip", "PREVIEW_SIDE", "GALLERY_SIZE"]
