"""The telephone report, assembled from the files on disk (so it can be rebuilt at any time, after
an interrupt, or after a study's trajectories were made on other machines).

Every round image is embedded with the evaluation CLIP (``eval_clip``, else the first guiding
CLIP, flagged in the report). Per style and round: the similarity of each image to its *start*
prompt (CLIP score, 100·max(cos, 0)), the Vendi score across all trajectories, the number of
motifs; at the last round every trajectory reached, the motifs with their most common captions;
per trajectory, when its captions and its images settled. Intervals are percentile bootstraps
that resample start prompts (each with all its trajectories; trajectories when there is one
prompt), with the same resamples for every style, so differences between styles are paired.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from .. import metrics, specs
from ..output import atomic_write_bytes, atomic_write_text
from .analysis import caption_settles, cosine_distances, embedding_settles, find_motifs
from .plan import Plan, Task
from .settings import SETTLE_SHARE
from .trajectory import Trajectory

VERSION = 1
EMBED_BATCH = 64
#: Settle distance when there are not two round-0 images to scale it by.
FALLBACK_SETTLE = 0.05


@dataclass
class Entry:
    """One trajectory with what the report measured of it."""

    task: Task
    prompt: str
    trajectory: Trajectory
    embeddings: np.ndarray  # (rounds, D), unit, evaluation CLIP
    similarity: np.ndarray  # (rounds,): CLIP score of each round's image vs the start prompt
    caption_settled: int | None
    period: int | None
    image_settled: int | None


def collect(plan: Plan, session: Any, eval_model: str, progress: Callable[[str], None] | None = None) -> list[Entry]:
    """Every trajectory of the plan as far as it got, embedded with ``eval_model``."""
    from ..compare.run import eval_text

    perceptor = session.perceptor((eval_model,))
    trajectories = [(task, plan.load(task)) for task in plan.tasks()]
    paths = [r.image for _, t in trajectories for r in t.rounds]
    if progress is not None:
        progress(f"embedding {len(paths)} round images with {eval_model}")
    with torch.no_grad():
        texts = perceptor.embed_texts([eval_text(p) or p for p in plan.prompts]).float().cpu().numpy()
        chunks = [perceptor.embed_images(_load(paths[i:i + EMBED_BATCH])).float().cpu().numpy()
                  for i in range(0, len(paths), EMBED_BATCH)]
    embeds = np.concatenate(chunks) if chunks else np.zeros((0, texts.shape[1]))
    entries, at = [], 0
    for task, trajectory in trajectories:
        own = embeds[at:at + len(trajectory.rounds)]
        at += len(trajectory.rounds)
        caption_round, period = caption_settles(trajectory.captions)
        similarity = 100.0 * np.clip(own @ texts[task.prompt_index], 0.0, None)
        entries.append(Entry(task, plan.prompts[task.prompt_index], trajectory, own, similarity, caption_round, period,
                             None))
    return entries


def settle_distance(plan: Plan, entries: list[Entry]) -> tuple[float, str]:
    """The settle distance: the setting, or SETTLE_SHARE of the median distance between round-0 images."""
    if plan.telephone.settle_distance is not None:
        return plan.telephone.settle_distance, "set"
    starts = [e.embeddings[0] for e in entries if len(e.embeddings)]
    if len(starts) < 2:
        return FALLBACK_SETTLE, "fallback (fewer than two round-0 images)"
    dist = cosine_distances(np.stack(starts))
    median = float(np.median(dist[np.triu_indices(len(starts), 1)]))
    if median <= 0:
        return FALLBACK_SETTLE, "fallback (the round-0 images are identical)"
    return SETTLE_SHARE * median, f"{SETTLE_SHARE:g} × the median distance between the round-0 images ({median:.4f})"


def _load(paths: Sequence[Path]) -> torch.Tensor:
    arrays = []
    for path in paths:
        with Image.open(path) as im:
            arrays.append(np.asarray(im.convert("RGB")))
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float().div(255)


# ----------------------------------------------------------------------------- statistics
class Resampler:
    """Bootstrap over start prompts (all of a prompt's trajectories together), paired across styles."""

    def __init__(self, entries: list[Entry], n_boot: int, level: float, seed: int = 0) -> None:
        self.groups = sorted({e.task.prompt_index for e in entries})
        self.by_prompt = len(self.groups) > 1
        self.n_boot, self.level, self.seed = n_boot, level, seed

    def estimate(self, rows: list[Entry], statistic: Callable[[list[Entry]], float], *, recenter: bool = False,
                 ) -> dict[str, float]:
        if self.by_prompt:
            members = [[e for e in rows if e.task.prompt_index == g] for g in self.groups]
        else:
            members = [[e] for e in rows]
        units = [m for m in members if m]

        def pick(idx: torch.Tensor) -> list[Entry]:
            return [e for i in idx.tolist() for e in units[i]]

        value = float(statistic(rows))
        if len(units) < 2:
            return {"value": value, "low": value, "high": value}
        low, high = metrics.bootstrap_ci(len(units), lambda idx: statistic(pick(idx)), n_boot=self.n_boot,
                                         seed=self.seed, level=self.level, recenter=recenter)
        return {"value": value, "low": low, "high": high}


def _vendi(rows: list[Entry], r: int) -> float:
    return metrics.vendi_score(np.stack([e.embeddings[r] for e in rows])) if rows else float("nan")


def _mean(values: Sequence[float]) -> float:
    return float(np.mean(values)) if len(values) else float("nan")


def _median_settled(rows: list[Entry], attribute: str) -> float:
    rounds = [getattr(e, attribute) for e in rows if getattr(e, attribute) is not None]
    return float(np.median(rounds)) if rounds else float("nan")


def condition(entries: list[Entry], same: float, boot: Resampler) -> dict[str, Any]:
    """The numbers of one style's trajectories (``same``: the settle distance)."""
    horizon = min((len(e.trajectory.rounds) for e in entries), default=0)
    per_round = []
    for r in range(horizon):
        per_round.append({
            "round": r, "n": len(entries),
            "similarity": boot.estimate(entries, lambda rows, r=r: _mean([e.similarity[r] for e in rows])),
            "vendi": boot.estimate(entries, lambda rows, r=r: _vendi(rows, r), recenter=True),
            "motifs": find_motifs(np.stack([e.embeddings[r] for e in entries]), same).count})
    out: dict[str, Any] = {"trajectories": len(entries), "horizon": horizon, "per_round": per_round}
    if horizon:
        last = horizon - 1
        found = find_motifs(np.stack([e.embeddings[last] for e in entries]), same)
        clusters = []
        for motif in range(found.count):
            members = [e for e, label in zip(entries, found.labels) if label == motif]
            centre = np.mean([e.embeddings[last] for e in members], axis=0)
            members.sort(key=lambda e: -float(e.embeddings[last] @ centre))  # most typical first
            captions = Counter(e.trajectory.rounds[last].caption for e in members).most_common()
            clusters.append({"motif": motif + 1, "size": len(members), "captions": [list(c) for c in captions],
                             "members": [_name(e) for e in members],
                             "images": [str(e.trajectory.rounds[last].image) for e in members]})
        out["final"] = {"round": last, "motifs": {
            "count": found.count, "method": found.method, "silhouette": found.silhouette,
            "silhouettes": {str(k): v for k, v in found.silhouettes.items()}, "clusters": clusters},
            "distinct_captions": len({e.trajectory.rounds[last].caption for e in entries})}
    out["settling"] = {
        kind: {"settled": boot.estimate(entries, lambda rows, a=attribute: _mean([getattr(e, a) is not None
                                                                                  for e in rows])),
               "median_round": boot.estimate(entries, lambda rows, a=attribute: _median_settled(rows, a)),
               "count": sum(getattr(e, attribute) is not None for e in entries)}
        for kind, attribute in (("captions", "caption_settled"), ("images", "image_settled"))}
    out["settling"]["captions"]["cycles"] = sum((e.period or 0) > 1 for e in entries)
    return out


def differences(by_style: dict[str, list[Entry]], boot: Resampler, none: str) -> dict[str, dict[str, Any]]:
    """Each style minus ``none`` at the last common round, paired over the same start prompts."""
    out = {}
    key = {(e.task.prompt_index, e.task.trajectory): e for e in by_style[none]}
    for style, rows in by_style.items():
        rows = [e for e in rows if (e.task.prompt_index, e.task.trajectory) in key]
        if style == none or not rows:
            continue
        last = min(len(e.trajectory.rounds) for e in rows + [key[e.task.prompt_index, e.task.trajectory]
                                                              for e in rows]) - 1

        out[style] = {"round": last,
                      "similarity": boot.estimate(rows, _paired(key, lambda rs, r=last: _mean([e.similarity[r]
                                                                                                for e in rs]))),
                      "vendi": boot.estimate(rows, _paired(key, lambda rs, r=last: _vendi(rs, r)), recenter=True),
                      "captions_settled": boot.estimate(rows, _paired(
                          key, lambda rs: _mean([e.caption_settled is not None for e in rs])))}
    return out


def _paired(key: dict, f: Callable[[list[Entry]], float]) -> Callable[[list[Entry]], float]:
    """f of the picked trajectories minus f of the same start prompts and seeds without the style."""
    return lambda picked: f(picked) - f([key[(e.task.prompt_index, e.task.trajectory)] for e in picked])


def _name(entry: Entry) -> str:
    return f"p{entry.task.prompt_index + 1} t{entry.task.trajectory}"


# ----------------------------------------------------------------------------- the files
def build_report(plan: Plan, session: Any, *, n_boot: int = 200, level: float = 0.95,
                 progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Measure everything on disk and write report.json, report.md and the figures; returns the report."""
    from ..presets import is_none
    from .markdown import render_markdown
    from .plots import write_figures

    guide = tuple(plan.settings.clip)
    eval_model = plan.telephone.eval_clip or guide[0]
    # A trajectory not started yet (a study still running) is left out; the report says how many.
    entries = [e for e in collect(plan, session, eval_model, progress) if e.trajectory.rounds]
    same, why = settle_distance(plan, entries)
    for e in entries:
        e.image_settled = embedding_settles(e.embeddings, same) if len(e.embeddings) else None
    boot = Resampler(entries, n_boot, level)
    by_style = {s: [e for e in entries if e.task.style == s] for s in plan.styles}
    none = next((s for s in plan.styles if is_none(s)), None)
    root = plan.out_dir
    report: dict[str, Any] = {
        "format": "clipguide-telephone-report", "version": VERSION, "prompts": plan.prompts, "styles": plan.styles,
        "trajectories_per_prompt": plan.settings.seeds, "rounds": plan.telephone.rounds,
        "trajectories_made": len(entries), "trajectories_planned": len(plan.tasks()),
        "seeds": [plan.settings.seed + j for j in plan.trajectories],
        "settings": specs.to_dict(plan.settings), "telephone": specs.to_dict(plan.telephone),
        "guide_models": list(guide), "eval_model": eval_model, "eval_model_same_as_guide": eval_model in guide,
        "bootstrap": {"n_boot": n_boot, "level": level, "unit": "start prompt" if boot.by_prompt else "trajectory",
                      "paired": "the same resamples for every style"},
        "trajectories": [{"style": e.task.style, "prompt_index": e.task.prompt_index, "prompt": e.prompt,
                          "trajectory": e.task.trajectory, "folder": _rel(e.trajectory.folder, root),
                          "rounds": [r.to_dict(root) for r in e.trajectory.rounds],
                          "similarity": [round(float(v), 3) for v in e.similarity],
                          "captions_settled_at": e.caption_settled, "period": e.period,
                          "images_settled_at": e.image_settled} for e in entries],
        "settle_distance": {"value": same, "how": why},
        "conditions": {s: condition(rows, same, boot) for s, rows in by_style.items() if rows},
    }
    if none is not None and len(plan.styles) > 1:
        report["versus_none"] = differences(by_style, boot, none)
    for cond in report["conditions"].values():
        for cluster in cond.get("final", {}).get("motifs", {}).get("clusters", []):
            cluster["images"] = [_rel(Path(p), root) for p in cluster["images"]]
    report["files"] = {name: _rel(path, root) for name, path in write_figures(plan, entries, report).items()}
    report["files"]["report.md"] = "report.md"
    report["files"]["report.json"] = "report.json"
    atomic_write_text(root / "report.md", render_markdown(report), overwrite=True)
    atomic_write_bytes(root / "report.json", json.dumps(report, indent=1, ensure_ascii=False, default=_plain).encode(),
                       overwrite=True)
    return report


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"not JSON: {type(value).__name__}")


def _rel(path: Path, root: Path) -> str:
    try:
        return Path(path).relative_to(root).as_posix()
    except ValueError:
        return Path(path).as_posix()


__all__ = ["Entry", "collect", "condition", "differences", "build_report", "Resampler"]
