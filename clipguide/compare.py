"""What does a style do to the images? The paired style-versus-diversity comparison.

For every style (and always the ``none`` style, the reference) the same prompt is run over the
same seeds, one batch per style, so row k of every style started from the same random latent.
The images are then embedded with an evaluation CLIP model and compared:

* diversity within a style: Vendi score and mean pairwise cosine distance;
* diversity relative to ``none``: the Vendi ratio, paired over the same seeds;
* alignment: CLIP score of each image against the *base* prompt, without the style suffix,
  preferably measured by a CLIP model that did not guide the run;
* style shift: how far the style moved the centre of the images away from ``none``'s.

Every number comes with a 95% bootstrap interval over seeds (the same resamples for every
style, so differences are paired). The run is resumable: images are saved per style as soon as
they exist, and a second run with the same settings loads them instead of generating again.

Files in ``out_dir``: ``images/<style>/seed-<n>.png``, ``compare.json`` (what was generated with
which settings), ``grid.png``, ``report.json``, ``report.md``, ``alignment_vs_diversity.png``.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont, ImageOps
from PIL.PngImagePlugin import PngInfo

from . import metrics
from .errors import UserError
from .output import atomic_write_bytes, ensure_out_dir, slugify
from .presets import apply_style, get_style, list_styles, normalize_name, split_style_names
from .prompts import parse_prompts
from .settings import Settings, to_dict

FORMAT = "clipguide-compare"
VERSION = 1
#: Fields that do not change the images, so a resumed run may differ in them.
_NOT_HASHED = ("style", "device", "offline", "save_every")

#: Grid geometry: each image is scaled to GRID_TILE pixels wide.
GRID_TILE = 160
GRID_LABEL_WIDTH = 170
GRID_HEADER_HEIGHT = 22

METRIC_NAMES = ("vendi", "vendi_ratio", "pairwise_distance", "clip_score", "style_shift")


@dataclass(frozen=True)
class Estimate:
    """A point estimate and its bootstrap interval."""

    value: float
    low: float
    high: float

    def to_dict(self) -> dict[str, float]:
        return {"value": self.value, "low": self.low, "high": self.high}


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


@dataclass
class _Item:
    """One (prompt, style) batch while the run is assembled."""

    prompt_index: int
    style: str
    folder: Path
    resolved: Settings
    cached: bool
    pixels: np.ndarray  # (n, H, W, 3) uint8


# --------------------------------------------------------------------------- small helpers
def _settings_hash(values: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(values, sort_keys=True).encode()).hexdigest()[:16]


def _hashed_fields(settings: Settings, *, drop: Sequence[str] = ()) -> dict[str, Any]:
    return {k: v for k, v in to_dict(settings).items() if k not in _NOT_HASHED and k not in drop}


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    """Reports and state are replaced on each run, always through a temp file and a rename."""
    ensure_out_dir(path.parent)
    atomic_write_bytes(path, data, overwrite=True)


def _atomic_write_text(path: Path, text: str) -> None:
    _atomic_write_bytes(path, text.encode("utf-8"))


def _to_uint8(images: torch.Tensor) -> np.ndarray:
    """(B,3,H,W) in [0,1] → (B,H,W,3) uint8, the exact pixels a PNG keeps."""
    x = images.detach().to("cpu", torch.float32).clamp(0, 1).mul(255).round().to(torch.uint8)
    return x.permute(0, 2, 3, 1).numpy()


def _unit_rows(x: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.normalize(torch.as_tensor(x).detach().to("cpu", torch.float64), dim=-1)


def _from_uint8(pixels: Sequence[np.ndarray]) -> torch.Tensor:
    return torch.from_numpy(np.stack(pixels)).permute(0, 3, 1, 2).float().div(255)


def _save_png(path: Path, pixels: np.ndarray, metadata: dict[str, Any]) -> None:
    info = PngInfo()
    info.add_text("clipguide", json.dumps(metadata, sort_keys=True))
    buf = io.BytesIO()
    Image.fromarray(pixels, "RGB").save(buf, format="PNG", pnginfo=info)
    _atomic_write_bytes(path, buf.getvalue())


def _load_png(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def _eval_text(prompt: str) -> str:
    """The text alignment is measured against: the prompt's positive parts, without weights."""
    return ", ".join(p.text for p in parse_prompts(prompt) if p.weight > 0)


# --------------------------------------------------------------------------- the run
def run_compare(base_settings: Settings, styles: Sequence[str], *, out_dir: str | os.PathLike[str],
                eval_clip: str | None = None, session: Any, callback: Callable[[Any], Any] | None = None,
                explicit: frozenset[str] = frozenset(), style_dirs: Sequence[str | os.PathLike[str]] = (),
                prompts: Sequence[str] | None = None, n_boot: int = 1000, level: float = 0.95,
                bootstrap_seed: int = 0, progress: Callable[[str], None] | None = None,
                generate: Callable[..., Any] | None = None) -> Report:
    """Run (or resume) the comparison of ``styles`` on ``base_settings`` and write the reports.

    ``prompts`` replaces ``base_settings.prompt`` with several base prompts (metrics per prompt
    and their mean). ``callback`` is passed to every generation; ``progress`` gets one line per
    style. ``generate`` defaults to :func:`clipguide.api.generate` (tests pass a fake).
    """
    out_dir = Path(out_dir)
    if generate is None:
        from . import api  # imported here: api imports the heavy components

        generate = api.generate
    say = progress or (lambda _msg: None)

    prompts = list(prompts) if prompts else [base_settings.prompt]
    eval_texts = [_eval_text(p) for p in prompts]
    for p, t in zip(prompts, eval_texts):
        if not t:
            raise UserError(f"compare needs a text prompt with a positive weight, got {p!r}")
    seeds = base_settings.seed_list()
    if len(seeds) < 2:
        raise UserError("compare needs at least 2 seeds per style to measure diversity; use --seeds 16 or more")

    style_list, none_added = _style_list(styles, style_dirs)
    if none_added:
        say("adding the 'none' style: every comparison is relative to it")
    base_hash = _settings_hash(_hashed_fields(base_settings, drop=("prompt", "negative")))
    state = _open_state(out_dir, base_settings, base_hash)

    # 1. images, generated or loaded
    items: list[_Item] = []
    total = len(prompts) * len(style_list)
    generated = loaded = 0
    for pi, prompt in enumerate(prompts):
        for style in style_list:
            settings = base_settings.replace(prompt=prompt, style=style)
            resolved = apply_style(settings, explicit=explicit, extra_dirs=style_dirs)
            rel_dir = _item_dir(pi, prompt, style, multi=len(prompts) > 1)
            folder = out_dir / rel_dir
            files = [folder / f"seed-{s}.png" for s in seeds]
            key = rel_dir.as_posix()
            rhash = _settings_hash(_hashed_fields(resolved))
            entry = state["items"].get(key)
            if entry is not None and entry["resolved_hash"] != rhash:
                why = "a different prompt" if entry.get("prompt") != prompt else "different settings (was the preset changed?)"
                raise UserError(f"{out_dir} holds images of style {style!r} made with {why}; "
                                f"choose a new --out or delete the folder")
            label = f"[{len(items) + 1}/{total}] {style}" + (f" (prompt {pi + 1})" if len(prompts) > 1 else "")
            if entry is not None and all(f.is_file() for f in files):
                say(f"{label}: loading {len(files)} images from {folder}")
                pixels = np.stack([_load_png(f) for f in files])
                cached = True
                loaded += len(files)
            else:
                say(f"{label}: generating {len(seeds)} images")
                result = generate(settings, callback=callback, explicit=explicit, session=session,
                                  style_dirs=tuple(style_dirs))
                if getattr(result, "stopped", False):
                    raise UserError(f"compare stopped during style {style!r}; run the same command again to resume")
                if list(result.seeds) != seeds:
                    raise RuntimeError(f"generate returned seeds {list(result.seeds)}, expected {seeds}")
                pixels = _to_uint8(result.images)
                meta_settings = to_dict(getattr(result, "resolved", None) or resolved)
                for f, s, px in zip(files, seeds, pixels):
                    _save_png(f, px, {"settings": meta_settings, "seed": s, "compare_style": style})
                state["items"][key] = {"style": style, "prompt": prompt, "resolved_hash": rhash,
                                       "resolved_prompt": resolved.prompt, "seeds": seeds}
                _atomic_write_text(out_dir / "compare.json", json.dumps(state, indent=2, sort_keys=True))
                cached = False
                generated += len(files)
            items.append(_Item(pi, style, folder, resolved, cached, pixels))

    # 2. embeddings with the evaluation model
    guide = tuple(base_settings.clip)
    eval_model = eval_clip or guide[0]
    same = eval_model in guide
    perceptor = session.perceptor((eval_model,))
    with torch.no_grad():
        text_emb = [_unit_rows(perceptor.embed_texts([t])) for t in eval_texts]
        embs = [_unit_rows(perceptor.embed_images(_from_uint8(list(it.pixels)))) for it in items]

    # 3. metrics, paired over seeds: one set of resample indices for everything
    idx = metrics.bootstrap_indices(len(seeds), n_boot, bootstrap_seed)
    none_pos = {pi: next(k for k, it in enumerate(items) if it.prompt_index == pi and _is_none(it.style))
                for pi in range(len(prompts))}
    samples = [_resampled(emb, text_emb[it.prompt_index], idx) for emb, it in zip(embs, items)]
    results = []
    per_style: dict[str, list[dict[str, tuple[float, np.ndarray]]]] = {s: [] for s in style_list}
    for it, emb, smp in zip(items, embs, samples):
        ref = none_pos[it.prompt_index]
        values = _with_relative(smp, samples[ref], emb, embs[ref], idx)
        per_style[it.style].append(values)
        results.append(StyleResult(
            prompt_index=it.prompt_index, prompt=prompts[it.prompt_index], style=it.style, slug=it.folder.name,
            resolved_prompt=it.resolved.prompt, resolved_negative=it.resolved.negative,
            images=tuple(it.folder / f"seed-{s}.png" for s in seeds), cached=it.cached,
            metrics={m: _estimate(*values[m], m, level) for m in METRIC_NAMES},
            clip_scores=tuple(float(v) for v in metrics.clip_score(emb, text_emb[it.prompt_index]))))
    means = {}
    if len(prompts) > 1:
        for style, vals in per_style.items():
            means[style] = {m: _estimate(float(np.mean([v[m][0] for v in vals])),
                                         np.mean([v[m][1] for v in vals], axis=0), m, level) for m in METRIC_NAMES}

    report = Report(out_dir=out_dir, prompts=prompts, eval_texts=eval_texts, styles=style_list,
                    none_added=none_added, seeds=seeds, guide_models=guide, eval_model=eval_model,
                    eval_model_same_as_guide=same, settings=base_settings, settings_hash=base_hash,
                    n_boot=n_boot, level=level, results=results, mean_over_prompts=means,
                    generated=generated, loaded=loaded)

    # 4. files
    report.files = {name: out_dir / name for name in
                    ("grid.png", "report.json", "report.md", "alignment_vs_diversity.png", "compare.json")}
    rows = [(_row_label(it.style, it.prompt_index, len(prompts)), [Image.fromarray(p) for p in it.pixels])
            for it in items]
    buf = io.BytesIO()
    make_grid(rows, seeds).save(buf, format="PNG")
    _atomic_write_bytes(report.files["grid.png"], buf.getvalue())
    _atomic_write_bytes(report.files["alignment_vs_diversity.png"], plot_alignment_vs_diversity(report))
    _atomic_write_text(report.files["report.md"], render_markdown(report))
    _atomic_write_text(report.files["report.json"], json.dumps(report.to_dict(), indent=2, sort_keys=True))
    say(f"wrote {report.files['report.md']}")
    return report


def _style_list(styles: Sequence[str], style_dirs: Sequence[str | os.PathLike[str]]) -> tuple[list[str], bool]:
    """Validate the names up front (before any generation) and put ``none`` in if missing."""
    registry = list_styles(style_dirs)
    out: list[str] = []
    seen: set[str] = set()
    for spec in styles:
        names = split_style_names(spec) or ["none"]
        for name in names:
            get_style(name, styles=registry)
        key = ",".join(normalize_name(n) for n in names)
        if key not in seen:
            seen.add(key)
            out.append(", ".join(names))
    if not out:
        raise UserError("compare needs at least one style, e.g. --styles baroque,cyberpunk")
    slugs: dict[str, str] = {}
    for style in out:
        other = slugs.setdefault(slugify(style), style)
        if other != style:
            raise UserError(f"styles {other!r} and {style!r} would share the folder {slugify(style)!r}; rename one preset")
    none_added = not any(_is_none(s) for s in out)
    if none_added:
        out.insert(0, "none")
    return out, none_added


def _is_none(style: str) -> bool:
    return all(normalize_name(n) == "none" for n in split_style_names(style) or ["none"])


def _item_dir(prompt_index: int, prompt: str, style: str, *, multi: bool) -> Path:
    style_dir = Path("images")
    if multi:
        style_dir /= f"p{prompt_index + 1}-{slugify(_eval_text(prompt), 32)}"
    return style_dir / slugify(style)


def _row_label(style: str, prompt_index: int, n_prompts: int) -> str:
    return f"P{prompt_index + 1}: {style}" if n_prompts > 1 else style


def _open_state(out_dir: Path, base: Settings, base_hash: str) -> dict[str, Any]:
    """compare.json of an earlier run in ``out_dir`` (checked to match), or a fresh one."""
    path = out_dir / "compare.json"
    fresh = {"format": FORMAT, "version": VERSION, "settings_hash": base_hash,
             "settings": _hashed_fields(base, drop=("prompt", "negative")), "items": {}}
    if not path.exists():
        out_dir.mkdir(parents=True, exist_ok=True)
        return fresh
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
        ok = state.get("format") == FORMAT and isinstance(state.get("items"), dict)
    except (OSError, ValueError, AttributeError):
        ok = False
    if not ok:
        raise UserError(f"{path} is not a clipguide compare record; choose a new --out or delete the folder")
    if state.get("settings_hash") != base_hash:
        old = state.get("settings", {})
        changed = sorted(k for k in fresh["settings"] if old.get(k) != fresh["settings"][k])
        what = ", ".join(changed[:6]) if changed else "settings"
        raise UserError(f"{out_dir} holds a compare run made with different settings ({what}); "
                        f"choose a new --out or delete the folder")
    return state


# --------------------------------------------------------------------------- statistics
def _resampled(emb: torch.Tensor, text: torch.Tensor, idx: torch.Tensor) -> dict[str, tuple[float, np.ndarray]]:
    """Point value and bootstrap samples of the within-style metrics of one set of images.

    ``idx`` is (n_boot, n) resample indices; the resamples are computed a chunk at a time,
    vectorised (a Python loop over 1000 resamples of 22 styles would take minutes).
    """
    n = emb.shape[0]
    kernel = (emb @ emb.T).double()
    a, b = torch.triu_indices(n, n, offset=1)

    def chunk_stats(rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        vendi = metrics.vendi_from_kernels(kernel[rows[:, :, None], rows[:, None, :]])
        # Pairs of a resample that are the same original image are left out: their distance is
        # 0 by construction and would bias the resampled mean pairwise distance low.
        ia, ib = rows[:, a], rows[:, b]
        keep = ia != ib
        dist = torch.where(keep, 1.0 - kernel[ia, ib], torch.zeros((), dtype=torch.float64))
        count = keep.sum(dim=1)
        pairwise = dist.sum(dim=1) / count.clamp_min(1)
        pairwise[count == 0] = float("nan")
        return vendi, pairwise

    both = torch.cat([torch.arange(n)[None], idx])
    step = max(1, 2_000_000 // (n * n))  # bounds memory at ~16 MB per (chunk, n, n) tensor
    parts = [chunk_stats(both[k:k + step]) for k in range(0, both.shape[0], step)]
    vendi = torch.cat([p[0] for p in parts])
    pairwise = torch.cat([p[1] for p in parts])
    clip = metrics.clip_score(emb, text).double()[both].mean(dim=1)
    return {
        "vendi": (float(vendi[0]), vendi[1:].numpy()),
        "pairwise_distance": (float(pairwise[0]), pairwise[1:].numpy()),
        "clip_score": (float(clip[0]), clip[1:].numpy()),
    }


def _with_relative(own: dict[str, tuple[float, np.ndarray]], ref: dict[str, tuple[float, np.ndarray]],
                   emb: torch.Tensor, ref_emb: torch.Tensor, idx: torch.Tensor) -> dict[str, tuple[float, np.ndarray]]:
    """Add the paired metrics against ``none``: Vendi ratio and style shift, from the same resamples."""
    out = dict(own)
    out["vendi_ratio"] = (own["vendi"][0] / ref["vendi"][0], own["vendi"][1] / ref["vendi"][1])
    # A resample's centroid is a weighted mean: weights = how often each image was drawn.
    n = emb.shape[0]
    weights = torch.zeros(idx.shape[0], n, dtype=torch.float64).scatter_add_(
        1, idx, torch.ones(idx.shape, dtype=torch.float64)) / n
    a, b = weights @ emb.double(), weights @ ref_emb.double()
    shift = 1.0 - torch.nn.functional.cosine_similarity(a, b, dim=-1, eps=1e-12)
    out["style_shift"] = (metrics.style_shift(emb, ref_emb), shift.numpy())
    return out


def _estimate(point: float, samples: np.ndarray, metric: str, level: float) -> Estimate:
    low, high = metrics.percentile_interval(point, samples, level=level, recenter=metric in ("vendi", "vendi_ratio"))
    return Estimate(float(point), low, high)


# --------------------------------------------------------------------------- outputs
def _font(size: int = 14) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has no size argument
        return ImageFont.load_default()


def _fit(draw: ImageDraw.ImageDraw, text: str, font: Any, width: int) -> str:
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength(text + "...", font=font) > width:
        text = text[:-1]
    return text + "..."


def make_grid(rows: Sequence[tuple[str, Sequence[Image.Image]]], seeds: Sequence[int], *,
              tile: int = GRID_TILE) -> Image.Image:
    """One row per style, one column per seed, the style name left of each row.

    Every image is scaled to ``tile`` pixels wide (small ones with nearest-neighbour, so their
    pixels stay visible); the grid is ``GRID_LABEL_WIDTH + cols·tile`` by
    ``GRID_HEADER_HEIGHT + rows·tile_h`` pixels, ``tile_h`` following the first image's aspect.
    """
    first = rows[0][1][0]
    tw = tile
    th = max(1, round(first.height * tw / first.width))
    cols = max(len(images) for _, images in rows)
    grid = Image.new("RGB", (GRID_LABEL_WIDTH + cols * tw, GRID_HEADER_HEIGHT + len(rows) * th), "white")
    draw = ImageDraw.Draw(grid)
    font = _font()
    for c, seed in enumerate(seeds[:cols]):
        draw.text((GRID_LABEL_WIDTH + c * tw + 4, 4), _fit(draw, f"seed {seed}", font, tw - 8), fill="black", font=font)
    for r, (label, images) in enumerate(rows):
        y = GRID_HEADER_HEIGHT + r * th
        draw.text((6, y + th // 2 - 8), _fit(draw, label, font, GRID_LABEL_WIDTH - 12), fill="black", font=font)
        for c, im in enumerate(images):
            smaller = im.width > tw or im.height > th
            resample = Image.Resampling.LANCZOS if smaller else Image.Resampling.NEAREST
            thumb = ImageOps.contain(im.convert("RGB"), (tw, th), method=resample)
            grid.paste(thumb, (GRID_LABEL_WIDTH + c * tw + (tw - thumb.width) // 2, y + (th - thumb.height) // 2))
    return grid


def _summary_rows(report: Report) -> list[tuple[str, dict[str, Estimate]]]:
    """The rows the plot shows: the mean over prompts when there are several, else the one prompt."""
    if report.mean_over_prompts:
        return list(report.mean_over_prompts.items())
    return [(r.style, r.metrics) for r in report.results]


def plot_alignment_vs_diversity(report: Report) -> bytes:
    """PNG bytes: Vendi score (x) against CLIP score (y) per style, with the bootstrap intervals."""
    # The Agg canvas is used directly: no pyplot, so no global backend is set or changed (a
    # notebook's inline backend stays as it is), and nothing is imported until a plot is made.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 5), dpi=120)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for style, m in _summary_rows(report):
        v, c = m["vendi"], m["clip_score"]
        xerr = [[max(v.value - v.low, 0.0)], [max(v.high - v.value, 0.0)]]
        yerr = [[max(c.value - c.low, 0.0)], [max(c.high - c.value, 0.0)]]
        none = _is_none(style)
        ax.errorbar([v.value], [c.value], xerr=xerr, yerr=yerr, fmt="s" if none else "o",
                    color="black" if none else "tab:blue", ecolor="0.6", capsize=3)
        ax.annotate(style, (v.value, c.value), textcoords="offset points", xytext=(5, 5), fontsize=8)
    n = len(report.seeds)
    ax.set_xlabel(f"diversity: Vendi score (effective number of distinct images, of {n})")
    ax.set_ylabel(f"alignment: CLIP score vs base prompt ({report.eval_model})")
    title = report.eval_texts[0] if len(report.prompts) == 1 else f"mean over {len(report.prompts)} prompts"
    ax.set_title(f"{title[:70]} · {n} seeds · {int(report.level * 100)}% intervals", fontsize=10)
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


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


__all__ = ["run_compare", "Report", "StyleResult", "Estimate", "make_grid", "render_markdown",
           "plot_alignment_vs_diversity", "slugify"]
