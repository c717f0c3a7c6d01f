"""The Compare styles tab: every style over the same seeds, the grid, the metrics table and the plot."""

from __future__ import annotations

import re
import tempfile
from pathlib import Path
from typing import Any

import gradio as gr

from ..errors import UserError
from .jobs import WebApp, gr_error, shared_inputs, validate
from .widgets import slider

#: The /compare endpoint's inputs, in order.
def compare_inputs() -> tuple[str, ...]:
    return ("prompt", "styles", "seeds", *shared_inputs())


def metric_headers() -> list[str]:
    """Column titles of the compare table, in the order of :data:`clipguide.compare.METRIC_NAMES`."""
    from ..compare import METRIC_NAMES

    titles = {"vendi": "Vendi", "vendi_ratio": "Vendi / none", "pairwise_distance": "mean pairwise distance",
              "clip_score": "CLIP score vs prompt", "style_shift": "style shift vs none"}
    return ["style", *(titles.get(m, m) for m in METRIC_NAMES)]


def parse(app: WebApp, values: dict[str, Any]):
    """(settings, explicit, styles) of a compare request, checked against the caps."""
    styles = [s for s in (values.pop("styles") or []) if s]
    if not styles:
        raise UserError("choose at least one style to compare")
    if int(values["seeds"]) < 2:
        raise UserError("compare needs at least 2 seeds per style to measure diversity")
    settings, explicit = app.settings(style="none", **values)
    app.check_styles(settings, explicit | {"seeds"}, styles)
    return settings, explicit, styles


def check(app: WebApp, *args: Any) -> list:
    """Gradio's validator of /compare: refuse a bad request before it waits in the queue."""
    return validate(compare_inputs(), args, lambda values: parse(app, values))


def run(app: WebApp, values: dict[str, Any], request=None, progress=None) -> tuple:
    """Run every style over the same seeds: (grid, metrics table, plot, report files)."""
    from ..compare import METRIC_NAMES, run_compare

    flag = app.flag(request)
    try:
        try:
            settings, explicit, styles = parse(app, values)
            out_dir = Path(tempfile.mkdtemp(prefix="compare-", dir=app.session_dir(request)))
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

            report = run_compare(settings, styles, out_dir=out_dir, eval_clip=None, session=app.session,
                                 callback=on_step, explicit=explicit | {"seeds"}, style_dirs=app.style_dirs,
                                 progress=said)
        except UserError as e:
            raise gr_error(e) from None
    finally:
        app.release(request, flag)
    rows = [[r.style, *(f"{r.metrics[m].value:.3f} [{r.metrics[m].low:.3f}, {r.metrics[m].high:.3f}]"
                        for m in METRIC_NAMES)] for r in report.results]
    table = gr.Dataframe(value=rows, headers=metric_headers())
    files = [str(report.files[k]) for k in ("report.md", "report.json") if k in report.files]
    return str(report.files["grid.png"]), table, str(report.files["alignment_vs_diversity.png"]), files


def build(app: WebApp, styles: list[str]) -> dict[str, Any]:
    """The tab's own widgets (inside a ``gr.Tab``); returns them by input name plus the outputs."""
    gr.Markdown("Runs every style over the same seeds with the model and settings below, then measures "
                "diversity (Vendi score, mean pairwise distance) and alignment (CLIP score vs the prompt "
                "without the style).")
    with gr.Row():
        prompt = gr.Textbox(label="Prompt", placeholder="a sunset over the sea", scale=2)
        chosen = gr.Dropdown(styles, value=[s for s in styles if s != "none"][:2], multiselect=True,
                             label="Styles ('none' is always added)", scale=2)
        seeds = slider(2, app.limits.max_seeds, app.limits.max_seeds, label="Seeds per style", scale=1)
    button = gr.Button("Compare", variant="primary")
    with gr.Row():
        grid = gr.Image(label="Grid (rows: styles, columns: seeds)", type="filepath", interactive=False,
                        buttons=["download", "fullscreen"])
        plot = gr.Image(label="Alignment vs diversity", type="filepath", interactive=False,
                        buttons=["download", "fullscreen"])
    table = gr.Dataframe(headers=metric_headers(), label="Metrics (95% bootstrap intervals)", interactive=False,
                         wrap=True)
    files = gr.Files(label="Report files")
    return {"inputs": {"prompt": prompt, "styles": chosen, "seeds": seeds}, "button": button,
            "outputs": [grid, table, plot, files]}
