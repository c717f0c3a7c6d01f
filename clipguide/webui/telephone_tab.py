"""The Telephone tab: prompt → image → caption → image …, a strip that fills in round by round.

It runs the library's loop (:mod:`clipguide.telephone`) with the shared model and settings; every
round's PNG is saved (settings and caption in its metadata) as soon as it is described, so Stop
keeps the finished rounds. A finished run adds the report files.
"""

from __future__ import annotations

import queue
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gradio as gr

from ..errors import UserError
from .jobs import WebApp, gr_error, shared_inputs, validate
from .widgets import run_buttons, slider

#: Tile width of the strip shown while the loop runs (demo images are 64 px: shown larger).
STRIP_TILE = 112


def telephone_inputs() -> tuple[str, ...]:
    """The /telephone endpoint's inputs, in order."""
    return ("prompt", "style", "seeds", "rounds", "style_mode", "start", *shared_inputs())


def parse(app: WebApp, values: dict[str, Any]):
    """(settings, explicit, telephone settings) of a request, checked against the caps."""
    from ..telephone.settings import from_dict

    rounds = values.pop("rounds")
    loop = {"rounds": rounds, "style_mode": values.pop("style_mode"), "start": values.pop("start")}
    if isinstance(rounds, (int, float)):
        app.limits.check_count(rounds, app.limits.max_rounds, "rounds")
    telephone = from_dict(loop)
    settings, explicit = app.settings(**values)
    app.check_prompt(settings, explicit)
    return settings, explicit, telephone


def check(app: WebApp, *args: Any) -> list:
    """Gradio's validator of /telephone: refuse a bad request before it waits in the queue."""
    return validate(telephone_inputs(), args, lambda values: parse(app, values))


def run(app: WebApp, values: dict[str, Any], request=None) -> Iterator[tuple]:
    """Stream (strip, status, captions, files) while the loop runs in a worker thread."""
    from ..telephone.loop import LoopStopped
    from ..telephone.plan import make_describers, make_plan, record_plan, run_plan
    from ..telephone.plots import strip

    flag = app.flag(request)
    try:
        try:
            settings, explicit, telephone = parse(app, values)
            out_dir = Path(tempfile.mkdtemp(prefix="telephone-", dir=app.session_dir(request)))
            plan = make_plan([settings.prompt], [settings.style], settings, telephone, out_dir, explicit=explicit,
                             style_dirs=app.style_dirs)
        except UserError as e:
            raise gr_error(e) from None
        yield None, "starting (loading the models the first time)…", [], []
        done: queue.Queue = queue.Queue()
        trajectories: dict[int, Any] = {}

        def work(hook) -> None:
            describers = make_describers(plan, app.session)
            record_plan(plan)
            run_plan(plan, session=app.session, together=True, describers=describers, hook=hook,
                     on_round=lambda trajectory, finished: done.put((trajectory, finished)))

        def picture():
            rows = [(f"t{j}", t.rounds) for j, t in sorted(trajectories.items()) if t.rounds]
            return strip(rows, tile=STRIP_TILE) if rows else None

        def table() -> list[list]:
            return [[f"t{j}", r.round, r.caption] for j, t in sorted(trajectories.items()) for r in t.rounds]

        status = ""
        try:
            for kind, payload in app.stream(work, flag):
                fresh = False
                while not done.empty():
                    trajectory, _ = done.get_nowait()
                    trajectories[trajectory.index] = trajectory
                    fresh = True
                if kind == "step":
                    finished = min((len(t.rounds) for t in trajectories.values()), default=0)
                    i, steps, _, _ = payload
                    status = f"round {finished + 1}/{telephone.rounds} · step {i}/{steps}"
                    yield (picture() if fresh else gr.skip()), status, (table() if fresh else gr.skip()), gr.skip()
        except LoopStopped as stopped:
            yield picture(), f"stopped in round {stopped.round}; the {stopped.round} finished round(s) were kept", \
                table(), _files(plan, app)
            return
        except UserError as e:
            raise gr_error(e) from None
        while not done.empty():
            trajectory, _ = done.get_nowait()
            trajectories[trajectory.index] = trajectory
        yield picture(), f"done: {telephone.rounds} rounds", table(), _files(plan, app, report=True)
    finally:
        app.release(request, flag)


def _files(plan, app: WebApp, report: bool = False) -> list[str]:
    """Every round's PNG, and the report files when the run finished."""
    from ..telephone.trajectory import round_files, trajectory_dir

    files = [str(p) for j in plan.trajectories for _, p in sorted(round_files(trajectory_dir(plan.out_dir, j)).items())]
    if report:
        from ..telephone.report import build_report

        built = build_report(plan, app.session)
        files = [str(plan.out_dir / built["files"][n]) for n in ("report.md", "report.json", "strip.png")
                 if n in built["files"]] + files
    return files


def build(app: WebApp, styles: list[str]) -> dict[str, Any]:
    """The tab's own widgets (inside a ``gr.Tab``); returns them by input name plus the outputs."""
    from ..telephone.settings import TelephoneSettings
    from .widgets import widget

    defaults = TelephoneSettings()
    gr.Markdown("Prompt → image → caption → image …: each round is generated from the caption of the round before "
                "(CLIP ranking over a vocabulary), with the model and settings below. Where does it end up?")
    with gr.Row():
        prompt = gr.Textbox(label="Start prompt", placeholder="a lighthouse in a storm", scale=2,
                            max_length=app.limits.max_prompt_chars)
        style = gr.Dropdown(styles, value=next((s for s in styles if s == "none"), styles[0] if styles else None),
                            label="Style", scale=1)
        seeds = slider(1, app.limits.max_seeds, 1, label="Trajectories (seeds, one batch)", scale=1)
    with gr.Row():
        rounds = slider(1, app.limits.max_rounds, min(defaults.rounds, app.limits.max_rounds), label="Rounds")
        style_mode = widget("style_mode", defaults.style_mode, cls=TelephoneSettings)
        start = widget("start", defaults.start, cls=TelephoneSettings)
    button, stop = run_buttons("Start", "Stop (keeps the finished rounds)")
    picture = gr.Image(label="Rounds (one row per trajectory)", type="pil", format="png", interactive=False,
                       buttons=["download", "fullscreen"])
    status = gr.Textbox(label="Progress", interactive=False, max_lines=1)
    captions = gr.Dataframe(headers=["trajectory", "round", "caption"], label="Captions", interactive=False, wrap=True)
    files = gr.Files(label="Round PNGs (settings and caption in the metadata) and the report")
    return {"inputs": {"prompt": prompt, "style": style, "seeds": seeds, "rounds": rounds, "style_mode": style_mode,
                       "start": start}, "button": button, "stop": stop,
            "outputs": [picture, status, captions, files]}


def wire(app: WebApp, tab: dict[str, Any], shared: dict[str, Any], arm, do_stop) -> None:
    """The tab's events: Start (checked before it is queued, one run per device) and Stop."""
    widgets = {**tab["inputs"], **shared}

    def run_telephone(request: gr.Request, *args):
        yield from run(app, dict(zip(telephone_inputs(), args)), request)

    def check_telephone(*args):
        return check(app, *args)

    tab["button"].click(arm, None, None, queue=False, api_visibility="private").then(
        run_telephone, [widgets[n] for n in telephone_inputs()], tab["outputs"], api_name="telephone",
        concurrency_limit=1, concurrency_id="device", validator=check_telephone, show_progress="minimal")
    tab["stop"].click(do_stop, None, tab["outputs"][1], queue=False, api_name="stop_telephone",
                      show_progress="hidden")


__all__ = ["telephone_inputs", "parse", "check", "run", "build", "wire"]
