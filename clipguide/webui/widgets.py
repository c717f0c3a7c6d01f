"""Web UI widgets derived from the settings' declarations: label, help, range, choices, default.

A setting declared with ``ui="advanced"`` (:func:`clipguide.specs.setting`) appears in the
Advanced section by itself; its widget type follows its type (number, checkbox, choice, text).
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any

import gradio as gr

from .. import specs
from ..settings import Settings


def fields_for(place: str) -> list[str]:
    """The settings shown in one place of the page ("main", "advanced"), in declaration order."""
    return [f.name for f in fields(Settings) if f.metadata.get("ui") == place]


def drawer_of(name: str) -> str | None:
    """The drawer (generator without a checkpoint) whose option a setting is, or None."""
    from ..registry import GENERATORS

    group = specs.spec(Settings, name).metadata.get("group")
    drawers = [n for n in GENERATORS if not GENERATORS.info.get(n, {}).get("weights", True)]
    return group if group in drawers else None


def shown_for(name: str, generator: str) -> bool:
    """Whether a setting's widget is shown while ``generator`` (a spec) is chosen: a drawer's
    options only with that drawer, everything else always."""
    drawer = drawer_of(name)
    return drawer is None or drawer == generator


def label_of(name: str, cls: type = Settings) -> str:
    return specs.spec(cls, name).metadata.get("label") or name.replace("_", " ").capitalize()


def widget(name: str, value: Any, *, cls: type = Settings, **overrides: Any) -> gr.components.Component:
    """The widget of one setting of ``cls`` (Settings, or a front end's own settings class), showing ``value``."""
    meta = specs.spec(cls, name).metadata
    kind = specs.kinds(cls)[name]
    choices = specs.choices_of(cls, name)
    common = {"label": label_of(name, cls), "info": specs.help_of(cls, name), **overrides}
    if meta.get("schedule"):  # a number or keyframes: text
        return gr.Textbox(value=str(value), **common)
    if kind.base is bool:
        return gr.Checkbox(value=bool(value), **common)
    if choices is not None and kind.shape == "list":
        return gr.CheckboxGroup(list(choices), value=list(value or ()), **common)
    if choices is not None:
        return gr.Radio(list(choices), value=value, **common) if len(choices) <= 4 else \
            gr.Dropdown(list(choices), value=value, **common)
    if kind.base in (int, float) and kind.shape == "scalar":
        bounds = {"minimum": meta.get("low"), "maximum": meta.get("high")}
        return gr.Number(value=value, precision=0 if kind.base is int else None,
                         **{k: v for k, v in bounds.items() if v is not None}, **common)
    return gr.Textbox(value="" if value is None else str(value), **common)


def loss_table(value: tuple[str, ...] = (), **overrides: Any) -> gr.components.Component:
    """The ``losses`` setting as a small table of (loss, weight) rows; the term names come from the registry."""
    from ..registry import LOSSES

    rows = [[name, weight] for name, _, weight in (spec.partition(":") for spec in value)]
    label = f"Loss terms ({', '.join(LOSSES)}); weight: a number or keyframes '0:1, 200:0' (empty: 1)"
    return gr.Dataframe(value=rows or [["", ""]], headers=["loss", "weight"], datatype=["str", "str"], type="array",
                        column_count=2, label=label, **overrides)


def losses_from_table(rows: Any) -> tuple[str, ...]:
    """The table's rows as ``losses`` specs ``NAME:WEIGHT``; blank rows are skipped, a blank weight is 1."""
    if isinstance(rows, dict):  # the API's {"headers": …, "data": …} form
        rows = rows.get("data")
    specs_: list[str] = []
    for row in rows or []:
        cells = [str(c).strip() if c is not None else "" for c in list(row)[:2]] + ["", ""]
        name, weight = cells[0], cells[1]
        if name:
            specs_.append(f"{name}:{weight}" if weight else name)
    return tuple(specs_)


def from_widget(name: str, value: Any) -> Any:
    """A widget's value as the setting takes it (an empty optional number is None)."""
    if name == "losses":
        return losses_from_table(value)
    kind = specs.kinds(Settings)[name]
    if kind.optional and value in ("", None, 0) and kind.base in (int, float):
        return None
    if kind.shape == "list":
        return tuple(value or ())
    return value


def slider(low: int, high: int, value: int, **kw: Any) -> gr.components.Component:
    """A slider from low to high, or a plain number box when the operator's cap leaves one value."""
    if high <= low:
        return gr.Number(value=low, minimum=low, maximum=low, precision=0, **kw)
    return gr.Slider(low, high, value=min(max(value, low), high), step=kw.pop("step", 1), **kw)


def run_buttons(label: str, stop_label: str = "Stop") -> tuple[gr.Button, gr.Button]:
    """A tab's start and Stop buttons, side by side."""
    with gr.Row():
        return gr.Button(label, variant="primary"), gr.Button(stop_label, variant="stop")


def live_preview() -> tuple[gr.Image, gr.Textbox]:
    """The live preview image and the progress line of a tab that shows a run as it goes."""
    preview = gr.Image(label="Live preview", format="png", interactive=False, height=320, buttons=["fullscreen"])
    return preview, gr.Textbox(label="Progress", interactive=False, max_lines=2)

