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
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from .. import metrics
from ..errors import UserError
from ..figures import make_grid, png_of
from ..output import atomic_write_bytes, ensure_out_dir, read_folder_record, save_images, slugify
from ..presets import apply_style, get_style, is_none, list_styles, normalize_name, split_style_names
from ..prompts import parse_prompts
from ..settings import Settings, to_dict
from .report import Report, StyleResult, plot_alignment_vs_diversity, render_markdown
from .stats import METRIC_NAMES, estimate, resampled, with_relative

FORMAT = "clipguide-compare"
VERSION = 1
#: Fields that do not change the images, so a resumed run may differ in them.
_NOT_HASHED = ("style", "device", "threads", "offline", "save_every")


@dataclass
class Item:
    """One (prompt, style) batch: where its images go and the settings that make them."""

    prompt_index: int
    prompt: str
    style: str
    settings: Settings  # as given to generate: base settings with this prompt and style
    resolved: Settings
    folder: Path
    key: str  # its entry in compare.json
    resolved_hash: str
    files: list[Path]
    cached: bool = False
    pixels: np.ndarray | None = None  # (n, H, W, 3) uint8 once made or loaded

    @property
    def done(self) -> bool:
        return all(f.is_file() for f in self.files)


# --------------------------------------------------------------------------- small helpers
def _settings_hash(values: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(values, sort_keys=True).encode()).hexdigest()[:16]


def _hashed_fields(settings: Settings, *, drop: Sequence[str] = ()) -> dict[str, Any]:
    return {k: v for k, v in to_dict(settings).items() if k not in _NOT_HASHED and k not in drop}


def _replace_file(path: Path, data: bytes) -> None:
    """Reports and state are replaced on each run, always through a temp file and a rename."""
    ensure_out_dir(path.parent)
    atomic_write_bytes(path, data, overwrite=True)


def _to_uint8(images: torch.Tensor) -> np.ndarray:
    """(B,3,H,W) in [0,1] → (B,H,W,3) uint8, the exact pixels a PNG keeps."""
    x = images.detach().to("cpu", torch.float32).clamp(0, 1).mul(255).round().to(torch.uint8)
    return x.permute(0, 2, 3, 1).numpy()


def _unit_rows(x: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.normalize(torch.as_tensor(x).detach().to("cpu", torch.float64), dim=-1)


def _from_uint8(pixels: Sequence[np.ndarray]) -> torch.Tensor:
    return torch.from_numpy(np.stack(pixels)).permute(0, 3, 1, 2).float().div(255)


def _load_png(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def eval_text(prompt: str) -> str:
    """The text alignment is measured against: the prompt's positive parts, without weights."""
    return ", ".join(p.text for p in parse_prompts(prompt) if p.weight > 0)


# --------------------------------------------------------------------------- the run
def run_compare(base_settings: Settings, styles: Sequence[str], *, out_dir: str | os.PathLike[str],
                eval_clip: str | None = None, session: Any, callback: Callable[[Any], Any] | None = None,
                explicit: frozenset[str] = frozenset(), style_dirs: Sequence[str | os.PathLike[str]] = (),
                prompts: Sequence[str] | None = None, n_boot: int = 1000, level: float = 0.95,
                bootstrap_seed: int = 0, progress: Callable[[str], None] | None = None,
                generate: Callable[..., Any] | None = None, produce_all: Callable[..., Any] | None = None) -> Report:
    """Run (or resume) the comparison of ``styles`` on ``base_settings`` and write the reports.

    ``prompts`` replaces ``base_settings.prompt`` with several base prompts (metrics per prompt
    and their mean). ``callback`` is passed to every generation; ``progress`` gets one line per
    style. ``generate`` defaults to :func:`clipguide.api.generate` (tests pass a fake);
    ``produce_all(items)`` makes the missing images some other way (the Ray scale-out).
    """
    out_dir = Path(out_dir)
    say = progress or (lambda _msg: None)
    prompts = list(prompts) if prompts else [base_settings.prompt]
    eval_texts = [eval_text(p) for p in prompts]
    for p, t in zip(prompts, eval_texts):
        if not t:
            raise UserError(f"compare needs a text prompt with a positive weight, got {p!r}")
    seeds = base_settings.seed_list()
    if len(seeds) < 2:
        raise UserError("compare needs at least 2 seeds per style to measure diversity; set seeds to 16 or more (--seeds 16)")
    style_list, none_added = _style_list(styles, style_dirs)
    if none_added:
        say("adding the 'none' style: every comparison is relative to it")
    base_hash = _settings_hash(_hashed_fields(base_settings, drop=("prompt", "negative")))
    state = _open_state(out_dir, base_settings, base_hash)
    items = plan(base_settings, prompts, style_list, out_dir, state, explicit=explicit, style_dirs=style_dirs)

    # 1. images, loaded where an earlier run made them, else generated (and saved at once)
    todo = [it for it in items if not (it.key in state["items"] and it.done)]
    if produce_all is not None and todo:
        say(f"making {len(todo)} of {len(items)} batches")
        produce_all(todo)
    for n, it in enumerate(items):
        label = f"[{n + 1}/{len(items)}] {it.style}" + (f" (prompt {it.prompt_index + 1})" if len(prompts) > 1 else "")
        if it.done and (it.key in state["items"] or produce_all is not None):
            say(f"{label}: loading {len(it.files)} images from {it.folder}")
            it.cached = it not in todo
        else:
            say(f"{label}: generating {len(seeds)} images")
            produce(it, generate=generate, session=session, callback=callback, style_dirs=style_dirs,
                    explicit=explicit)
        it.pixels = np.stack([_load_png(f) for f in it.files])
        state["items"][it.key] = {"style": it.style, "prompt": it.prompt, "resolved_hash": it.resolved_hash,
                                  "resolved_prompt": it.resolved.prompt, "seeds": seeds}
        _replace_file(out_dir / "compare.json", json.dumps(state, indent=2, sort_keys=True).encode())
    generated = sum(len(it.files) for it in items if not it.cached)

    # 2. metrics with the evaluation model, and 3. the files
    report = measure(items, out_dir, base_settings, prompts, eval_texts, style_list, none_added, base_hash, session=session,
                     eval_clip=eval_clip, n_boot=n_boot, level=level, bootstrap_seed=bootstrap_seed)
    report.generated, report.loaded = generated, len(items) * len(seeds) - generated
    write_report(report, items)
    say(f"wrote {report.files['report.md']}")
    return report


def plan(base: Settings, prompts: Sequence[str], styles: Sequence[str], out_dir: Path, state: dict[str, Any], *,
         explicit: frozenset[str], style_dirs: Sequence[str | os.PathLike[str]]) -> list[Item]:
    """Every (prompt, style) batch of the comparison, checked against what the folder already holds."""
    items = []
    for pi, prompt in enumerate(prompts):
        for style in styles:
            settings = base.replace(prompt=prompt, style=style)
            resolved = apply_style(settings, explicit=explicit, extra_dirs=style_dirs)
            rel_dir = _item_dir(pi, prompt, style, multi=len(prompts) > 1)
            key, rhash = rel_dir.as_posix(), _settings_hash(_hashed_fields(resolved))
            entry = state["items"].get(key)
            if entry is not None and entry["resolved_hash"] != rhash:
                why = "a different prompt" if entry.get("prompt") != prompt else "different settings (was the preset changed?)"
                raise UserError(f"{out_dir} holds images of style {style!r} made with {why}; "
                                f"choose a new --out or delete the folder")
            folder = out_dir / rel_dir
            items.append(Item(pi, prompt, style, settings, resolved, folder, key, rhash,
                              [folder / f"seed-{s}.png" for s in base.seed_list()]))
    return items


def produce(item: Item, *, generate: Callable[..., Any] | None, session: Any, callback: Any = None,
            style_dirs: Sequence[Any] = (), explicit: frozenset[str] = frozenset()) -> None:
    """Generate one batch and save its images (each as it is, with its settings record)."""
    if generate is None:
        from ..api import generate  # imported here: api imports the heavy components
    result = generate(item.settings, callback=callback, explicit=explicit, session=session, style_dirs=tuple(style_dirs))
    if getattr(result, "stopped", False):
        raise UserError(f"compare stopped during style {item.style!r}; run the same command again to resume")
    seeds = item.settings.seed_list()
    if list(result.seeds) != seeds:
        raise RuntimeError(f"generate returned seeds {list(result.seeds)}, expected {seeds}")
    images = [Image.fromarray(px) for px in _to_uint8(result.images)]
    save_images(result, images, item.folder, stems=[f.stem for f in item.files], overwrite=True,
                steps_done=getattr(result, "steps_done", None), kind="compare", style=item.style)


@dataclass
class ProduceTask:
    """One batch of the comparison as a task for :mod:`clipguide.scale` (a Ray worker makes it)."""

    item: Item
    explicit: frozenset[str]
    style_dirs: tuple[str, ...]

    @property
    def label(self) -> str:
        return self.item.key

    @property
    def device(self) -> str:
        return self.item.settings.device

    @property
    def offline(self) -> bool:
        return self.item.settings.offline

    def run(self, session: Any, hook: Any) -> int:
        produce(self.item, generate=None, session=session, callback=hook, style_dirs=self.style_dirs,
                explicit=self.explicit)
        return len(self.item.files)


def measure(items: list[Item], out_dir: Path, base: Settings, prompts: list[str], eval_texts: list[str], styles: list[str],
            none_added: bool, base_hash: str, *, session: Any, eval_clip: str | None, n_boot: int, level: float,
            bootstrap_seed: int) -> Report:
    """Embed every image with the evaluation model and compute the paired metrics."""
    seeds = base.seed_list()
    guide = tuple(base.clip)
    eval_model = eval_clip or guide[0]
    perceptor = session.perceptor((eval_model,))
    with torch.no_grad():
        text_emb = [_unit_rows(perceptor.embed_texts([t])) for t in eval_texts]
        embs = [_unit_rows(perceptor.embed_images(_from_uint8(list(it.pixels)))) for it in items]
    # paired over seeds: one set of resample indices for everything
    idx = metrics.bootstrap_indices(len(seeds), n_boot, bootstrap_seed)
    none_pos = {pi: next(k for k, it in enumerate(items) if it.prompt_index == pi and is_none(it.style))
                for pi in range(len(prompts))}
    samples = [resampled(emb, text_emb[it.prompt_index], idx) for emb, it in zip(embs, items)]
    results = []
    per_style: dict[str, list[dict[str, tuple[float, np.ndarray]]]] = {s: [] for s in styles}
    for it, emb, smp in zip(items, embs, samples):
        ref = none_pos[it.prompt_index]
        values = with_relative(smp, samples[ref], emb, embs[ref], idx)
        per_style[it.style].append(values)
        results.append(StyleResult(
            prompt_index=it.prompt_index, prompt=prompts[it.prompt_index], style=it.style, slug=it.folder.name,
            resolved_prompt=it.resolved.prompt, resolved_negative=it.resolved.negative, images=tuple(it.files),
            cached=it.cached, metrics={m: estimate(*values[m], m, level) for m in METRIC_NAMES},
            clip_scores=tuple(float(v) for v in metrics.clip_score(emb, text_emb[it.prompt_index]))))
    means = {}
    if len(prompts) > 1:
        for style, vals in per_style.items():
            means[style] = {m: estimate(float(np.mean([v[m][0] for v in vals])),
                                        np.mean([v[m][1] for v in vals], axis=0), m, level) for m in METRIC_NAMES}
    return Report(out_dir=out_dir, prompts=prompts,
                  eval_texts=eval_texts, styles=styles, none_added=none_added, seeds=seeds, guide_models=guide,
                  eval_model=eval_model, eval_model_same_as_guide=eval_model in guide, settings=base,
                  settings_hash=base_hash, n_boot=n_boot, level=level, results=results, mean_over_prompts=means)


def write_report(report: Report, items: list[Item]) -> None:
    out_dir = report.out_dir
    report.files = {name: out_dir / name for name in
                    ("grid.png", "report.json", "report.md", "alignment_vs_diversity.png", "compare.json")}
    rows = [(_row_label(it.style, it.prompt_index, len(report.prompts)), [Image.fromarray(p) for p in it.pixels])
            for it in items]
    _replace_file(report.files["grid.png"], png_of(make_grid(rows, report.seeds)))
    _replace_file(report.files["alignment_vs_diversity.png"], plot_alignment_vs_diversity(report))
    _replace_file(report.files["report.md"], render_markdown(report).encode("utf-8"))
    _replace_file(report.files["report.json"], json.dumps(report.to_dict(), indent=2, sort_keys=True).encode())


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
    none_added = not any(is_none(s) for s in out)
    if none_added:
        out.insert(0, "none")
    return out, none_added


def _item_dir(prompt_index: int, prompt: str, style: str, *, multi: bool) -> Path:
    style_dir = Path("images")
    if multi:
        style_dir /= f"p{prompt_index + 1}-{slugify(eval_text(prompt), 32)}"
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
    state = read_folder_record(path, FORMAT, "compare", "items")
    if state.get("settings_hash") != base_hash:
        old = state.get("settings", {})
        changed = sorted(k for k in fresh["settings"] if old.get(k) != fresh["settings"][k])
        what = ", ".join(changed[:6]) if changed else "settings"
        raise UserError(f"{out_dir} holds a compare run made with different settings ({what}); "
                        f"choose a new --out or delete the folder")
    return state


