"""The comparison's report: its data (:class:`Report`), Markdown and the alignment–diversity plot."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..figures import figure_png, new_figure
from ..presets import is_none
from ..settings import Settings, to_dict
from .stats import Estimate

VERSION = 1


@dataclass(frozen=True)
class StyleResult:
    """One style under one base prompt."""

    prompt_index: int
    prompt: str
    style: str
    slug: str
    resolved_prompt: str
    resolved_negative: str
    images: tuple[Path, ...]
    cached: bool
    metrics: dict[str, Estimate]
    clip_scores: tuple[float, ...]


@dataclass
class Report:
    out_dir: Path
    prompts: list[str]
    eval_texts: list[str]
    styles: list[str]
    none_added: bool
    seeds: list[int]
    guide_models: tuple[str, ...]
    eval_model: str
    eval_model_same_as_guide: bool
    settings: Settings
    settings_hash: str
    n_boot: int
    level: float
    results: list[StyleResult]
    #: style → metrics averaged over the prompts (paired over seeds); empty for one prompt.
    mean_over_prompts: dict[str, dict[str, Estimate]] = field(default_factory=dict)
    generated: int = 0
    loaded: int = 0
    files: dict[str, Path] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        rel = lambda p: Path(p).relative_to(self.out_dir).as_posix()  # noqa: E731
        return {
            "format": "clipguide-compare-report",
            "version": VERSION,
            "prompts": self.prompts,
            "eval_texts": self.eval_texts,
            "styles": self.styles,
            "none_added": self.none_added,
            "seeds": self.seeds,
            "n": len(self.seeds),
            "guide_models": list(self.guide_models),
            "eval_model": self.eval_model,
            "eval_model_same_as_guide": self.eval_model_same_as_guide,
            "bootstrap": {"n_boot": self.n_boot, "level": self.level, "method": "paired percentile over seeds; "
                          "Vendi and Vendi-ratio intervals recentred on the point estimate"},
            "settings": to_dict(self.settings),
            "settings_hash": self.settings_hash,
            "results": [{
                "prompt_index": r.prompt_index, "prompt": r.prompt, "style": r.style, "slug": r.slug,
                "resolved_prompt": r.resolved_prompt, "resolved_negative": r.resolved_negative,
                "images": [rel(p) for p in r.images], "cached": r.cached,
                "metrics": {k: e.to_dict() for k, e in r.metrics.items()},
                "clip_scores": list(r.clip_scores),
            } for r in self.results],
            "mean_over_prompts": {s: {k: e.to_dict() for k, e in m.items()}
                                  for s, m in self.mean_over_prompts.items()} or None,
            "generated": self.generated,
            "loaded": self.loaded,
            "files": {k: rel(p) for k, p in self.files.items()},
        }


def _summary_rows(report: Report) -> list[tuple[str, dict[str, Estimate]]]:
    """The rows the plot shows: the mean over prompts when there are several, else the one prompt."""
    if report.mean_over_prompts:
        return list(report.mean_over_prompts.items())
    return [(r.style, r.metrics) for r in report.results]


def plot_alignment_vs_diversity(report: Report) -> bytes:
    """PNG bytes: Vendi score (x) against CLIP score (y) per style, with the bootstrap intervals."""
    fig = new_figure()
    ax = fig.add_subplot()
    for style, m in _summary_rows(report):
        v, c = m["vendi"], m["clip_score"]
        xerr = [[max(v.value - v.low, 0.0)], [max(v.high - v.value, 0.0)]]
        yerr = [[max(c.value - c.low, 0.0)], [max(c.high - c.value, 0.0)]]
        none = is_none(style)
        ax.errorbar([v.value], [c.value], xerr=xerr, yerr=yerr, fmt="s" if none else "o",
                    color="black" if none else "tab:blue", ecolor="0.6", capsize=3)
        ax.annotate(style, (v.value, c.value), textcoords="offset points", xytext=(5, 5), fontsize=8)
    n = len(report.seeds)
    ax.set_xlabel(f"diversity: Vendi score (effective number of distinct images, of {n})")
    ax.set_ylabel(f"alignment: CLIP score vs base prompt ({report.eval_model})")
    title = report.eval_texts[0] if len(report.prompts) == 1 else f"mean over {len(report.prompts)} prompts"
    ax.set_title(f"{title[:70]} · {n} seeds · {int(report.level * 100)}% intervals", fontsize=10)
    ax.grid(True, alpha=0.3)
    return figure_png(fig)


def _fmt(e: Estimate, digits: int) -> str:
    def num(x: float) -> str:
        return f"{round(x, digits) + 0.0:.{digits}f}"  # + 0.0 turns a rounded -0.0 into 0.0

    return f"{num(e.value)} [{num(e.low)}, {num(e.high)}]"


_COLUMNS = (("vendi", "Vendi", 2), ("vendi_ratio", "Vendi / none", 2), ("pairwise_distance", "Mean pairwise distance", 3),
            ("clip_score", "CLIP score vs base prompt", 1), ("style_shift", "Style shift vs none", 3))


def _table(rows: Sequence[tuple[str, dict[str, Estimate]]]) -> list[str]:
    lines = ["| Style | " + " | ".join(title for _, title, _ in _COLUMNS) + " |",
             "|---|" + "---:|" * len(_COLUMNS)]
    for style, m in rows:
        lines.append(f"| {style} | " + " | ".join(_fmt(m[k], d) for k, _, d in _COLUMNS) + " |")
    return lines


def render_markdown(report: Report) -> str:
    n = len(report.seeds)
    pct = int(round(report.level * 100))
    lines = ["# Style comparison", ""]
    lines.append(f"- Seeds: {n} ({report.seeds[0]}–{report.seeds[-1]}), the same for every style (paired)")
    lines.append(f"- Guiding CLIP: {', '.join(report.guide_models)}")
    same = " — **the same model that guided the run**, so alignment is optimistic" if report.eval_model_same_as_guide else ""
    lines.append(f"- Evaluation CLIP: {report.eval_model}{same}")
    if report.none_added:
        lines.append("- The `none` style was not asked for; it was run too because every comparison is relative to it.")
    lines.append(f"- Images: {report.generated} generated, {report.loaded} loaded from an earlier run")
    lines.append("")
    for pi, prompt in enumerate(report.prompts):
        heading = f"## Prompt {pi + 1}: {prompt}" if len(report.prompts) > 1 else f"## Prompt: {prompt}"
        lines += [heading, ""]
        lines += _table([(r.style, r.metrics) for r in report.results if r.prompt_index == pi])
        lines.append("")
    if report.mean_over_prompts:
        lines += [f"## Mean over the {len(report.prompts)} prompts", ""]
        lines += _table(list(report.mean_over_prompts.items()))
        lines.append("")
    lines += [
        "## How to read this",
        "",
        f"- Every cell is `value [low, high]`: the {pct}% bootstrap interval over seeds ({report.n_boot} resamples, "
        "the same resamples for every style, so differences between styles are paired). Where intervals overlap, "
        f"{n} seeds do not establish a difference; 16–32 seeds per style are a sensible minimum.",
        f"- **Vendi**: the effective number of distinct images among the {n} (1 = all alike, {n} = all unrelated). "
        "It grows with the number of images, so compare it only between runs with the same number of seeds. "
        "Its interval (and that of Vendi / none) is recentred on the value, because resampled sets contain "
        "duplicates, which pull Vendi toward 1.",
        "- **Vendi / none**: diversity relative to the unstyled prompt over the same seeds; below 1 the style "
        "makes the images more alike (homogenises them), above 1 more varied. `none` is 1 by definition.",
        "- **Mean pairwise distance**: average `1 − cos` between the embeddings of two images; also depends on n.",
        "- **CLIP score**: `100·max(cos, 0)` between each image and the base prompt *without* the style suffix, "
        "measured with the evaluation CLIP model. It says whether the subject survived the style; when the "
        "evaluation model also guided the run, the loop optimised this very number and it reads high.",
        "- **Style shift**: `1 − cos` between the mean embedding of the style's images and of `none`'s images: "
        "how far the style moved the images as a group (0 = not at all).",
        "",
    ]
    return "\n".join(lines)


__all__ = ["Report", "StyleResult", "render_markdown", "plot_alignment_vs_diversity"]

