"""The telephone report's figures: convergence curves, the motif grid, strips of rounds."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ..figures import figure_png, make_grid, new_figure, png_of
from ..output import atomic_write_bytes, slugify

#: Most images of one motif shown in the motif grid.
MOTIF_EXAMPLES = 8


def write_figures(plan: Any, entries: list[Any], report: dict[str, Any]) -> dict[str, Path]:
    """convergence.png, motifs.png and the strips (strip.png, or strips/p001-….png per start prompt)."""
    root = plan.out_dir
    files: dict[str, Path] = {}
    if any(c["horizon"] for c in report["conditions"].values()):
        files["convergence.png"] = _write(root / "convergence.png", convergence_plot(report, entries))
        files["motifs.png"] = _write(root / "motifs.png", png_of(motif_grid(report, root)))
    if plan.single:
        rows = [(f"t{e.task.trajectory} (seed {plan.settings.seed + e.task.trajectory})", e.trajectory.rounds)
                for e in entries]
        if any(rounds for _, rounds in rows):
            files["strip.png"] = _write(root / "strip.png", png_of(strip(rows)))
    else:
        for p, prompt in enumerate(plan.prompts):
            rows = [(f"{e.task.style} t{e.task.trajectory}", e.trajectory.rounds) for e in entries
                    if e.task.prompt_index == p]
            if any(rounds for _, rounds in rows):
                name = f"strips/p{p + 1:03d}-{slugify(prompt, 40)}.png"
                files[name] = _write(root / name, png_of(strip(rows)))
    return files


def _write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write_bytes(path, data, overwrite=True)


def _open(path: Path) -> Image.Image:
    with Image.open(path) as im:
        return im.convert("RGB")


def strip(rows: Sequence[tuple[str, Sequence[Any]]], tile: int | None = None) -> Image.Image:
    """One row per trajectory (label, its rounds), one column per round: the image each round made."""
    count = max(len(rounds) for _, rounds in rows)
    tile = tile or max(48, min(128, 4800 // max(count, 1)))
    pictures = [(label, [_open(r.image) for r in rounds]) for label, rounds in rows if rounds]
    return make_grid(pictures, [], tile=tile, headers=[f"round {r}" for r in range(count)])


def motif_grid(report: dict[str, Any], root: Path) -> Image.Image:
    """One row per motif of the last round (per style), its most typical images first."""
    rows = []
    for style, cond in report["conditions"].items():
        for cluster in cond.get("final", {}).get("motifs", {}).get("clusters", []):
            label = f"{style} · motif {cluster['motif']} ({cluster['size']})"
            rows.append((label, [_open(root / p) for p in cluster["images"][:MOTIF_EXAMPLES]]))
    return make_grid(rows, [], headers=[])


def convergence_plot(report: dict[str, Any], entries: list[Any]) -> bytes:
    """Similarity to the start prompt, Vendi score, motifs, and the share settled, round by round."""
    fig = new_figure(11, 8)
    axes = fig.subplots(2, 2)
    colours = ["black", "tab:red", "tab:blue", "tab:green", "tab:purple", "tab:orange"]
    for n, (style, cond) in enumerate(report["conditions"].items()):
        rows = cond["per_round"]
        if not rows:
            continue
        colour = colours[n % len(colours)]
        x = [row["round"] for row in rows]
        for ax, key in ((axes[0][0], "similarity"), (axes[0][1], "vendi")):
            ax.plot(x, [row[key]["value"] for row in rows], color=colour, label=style)
            ax.fill_between(x, [row[key]["low"] for row in rows], [row[key]["high"] for row in rows], color=colour,
                            alpha=0.15, linewidth=0)
        axes[1][0].step(x, [row["motifs"] for row in rows], where="mid", color=colour, label=style)
        own = [e for e in entries if e.task.style == style]
        for attribute, line in (("caption_settled", "-"), ("image_settled", "--")):
            settled = [getattr(e, attribute) for e in own]
            share = [np.mean([s is not None and s <= r for s in settled]) for r in x]
            what = "captions" if attribute == "caption_settled" else "images"
            axes[1][1].plot(x, share, line, color=colour, label=f"{style}: {what}")
    n_traj = sum(c["trajectories"] for c in report["conditions"].values()) // max(1, len(report["conditions"]))
    level = int(round(report["bootstrap"]["level"] * 100))
    axes[0][0].set_ylabel(f"CLIP score vs start prompt ({report['eval_model']})")
    axes[0][1].set_ylabel(f"Vendi score across the {n_traj} trajectories")
    axes[1][0].set_ylabel("motifs (clusters of the round's images)")
    axes[1][1].set_ylabel("share of trajectories settled by this round")
    axes[1][1].set_ylim(-0.02, 1.02)
    for ax in axes.flat:
        ax.set_xlabel("round")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
    unit = {"trajectory": "trajectories", "start prompt": "start prompts"}[report["bootstrap"]["unit"]]
    fig.suptitle(f"Telephone: {len(report['prompts'])} start prompt(s) × {report['trajectories_per_prompt']} "
                 f"trajectories · {level}% bootstrap intervals over {unit}", fontsize=10)
    return figure_png(fig)


__all__ = ["write_figures", "strip", "motif_grid", "convergence_plot"]
