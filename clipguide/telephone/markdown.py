"""report.md: the telephone report for people (report.json has every number and every round)."""

from __future__ import annotations

from typing import Any


def _est(e: dict[str, float] | None, digits: int = 2) -> str:
    if not e or e["value"] != e["value"]:  # NaN: nothing to measure
        return "–"

    def num(x: float) -> str:
        return f"{round(x, digits) + 0.0:.{digits}f}"

    if e["low"] == e["high"] == e["value"]:
        return num(e["value"])
    return f"{num(e['value'])} [{num(e['low'])}, {num(e['high'])}]"


def _pct(e: dict[str, float]) -> str:
    return _est({k: 100 * v for k, v in e.items()}, 0) + " %"


def render_markdown(report: dict[str, Any]) -> str:
    level = int(round(report["bootstrap"]["level"] * 100))
    tele = report["telephone"]
    lines = ["# Telephone", ""]
    lines.append(f"- Start prompts: {len(report['prompts'])}; trajectories per prompt: "
                 f"{report['trajectories_per_prompt']} (seeds from {report['seeds'][0]}); rounds: {report['rounds']}")
    if report["trajectories_made"] < report["trajectories_planned"]:
        lines.append(f"- **Unfinished**: {report['trajectories_made']} of {report['trajectories_planned']} trajectories "
                     "started; the numbers below are over those, up to the last round all of them reached")
    where = "every round's caption" if tele["style_mode"] == "every" else "the start prompt only"
    start = "fresh codes" if tele["start"] == "fresh" else "the previous round's image"
    seeds = "a new seed every round" if tele["reseed"] == "round" else "the trajectory's seed every round"
    lines.append(f"- Styles: {', '.join(report['styles'])} (a style's suffix goes on {where}); rounds start from "
                 f"{start}, with {seeds}")
    lines.append(f"- Describer: {tele['describer']}" + (f" ({tele['vocabulary']})" if tele.get("vocabulary") else ""))
    same = " — **the same model that guided the runs**, so similarity reads high" \
        if report["eval_model_same_as_guide"] else ""
    lines.append(f"- Guiding CLIP: {', '.join(report['guide_models'])}; evaluation CLIP: {report['eval_model']}{same}")
    unit = {"trajectory": "trajectories", "start prompt": "start prompts"}[report["bootstrap"]["unit"]]
    lines.append(f"- Intervals: {level}% percentile bootstrap over {unit} ({report['bootstrap']['n_boot']} "
                 "resamples, the same for every style)")
    settle = report["settle_distance"]
    lines.append(f"- Settle distance: {settle['value']:.4g} (cosine, evaluation CLIP; {settle['how']})")
    lines.append("")
    lines += ["## Summary at the last round every trajectory reached", "",
              "| Style | round | similarity to start prompt | Vendi across trajectories | motifs | distinct captions "
              "| captions settled | median settling round (captions) | images settled | median settling round "
              "(images) |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for style, cond in report["conditions"].items():
        if not cond["per_round"]:
            continue
        last = cond["per_round"][-1]
        settle = cond["settling"]
        lines.append(f"| {style} | {last['round']} | {_est(last['similarity'], 1)} | {_est(last['vendi'])} | "
                     f"{cond['final']['motifs']['count']} | {cond['final']['distinct_captions']} | "
                     f"{_pct(settle['captions']['settled'])} | {_est(settle['captions']['median_round'], 1)} | "
                     f"{_pct(settle['images']['settled'])} | {_est(settle['images']['median_round'], 1)} |")
    lines.append("")
    for style, diff in report.get("versus_none", {}).items():
        lines += [f"**{style} minus none** at round {diff['round']} (paired): similarity "
                  f"{_est(diff['similarity'], 1)}, Vendi {_est(diff['vendi'])}, share of captions settled "
                  f"{_est(diff['captions_settled'])}.", ""]
    lines += ["## Motifs", ""]
    for style, cond in report["conditions"].items():
        motifs = cond.get("final", {}).get("motifs")
        if not motifs:
            continue
        how = motifs["method"] + (f", silhouette {motifs['silhouette']:.2f}" if motifs["silhouette"] is not None else "")
        lines += [f"### {style}: {motifs['count']} motif(s) at round {cond['final']['round']} ({how})", "",
                  "| Motif | trajectories | most common captions |", "|---:|---:|---|"]
        for c in motifs["clusters"]:
            common = "; ".join(f"{text} ×{n}" for text, n in c["captions"][:3])
            lines.append(f"| {c['motif']} | {c['size']} | {common} |")
        lines.append("")
    lines += ["## Round by round", "", "| Style | round | similarity | Vendi | motifs |", "|---|---:|---:|---:|---:|"]
    for style, cond in report["conditions"].items():
        for row in cond["per_round"]:
            lines.append(f"| {style} | {row['round']} | {_est(row['similarity'], 1)} | {_est(row['vendi'])} | "
                         f"{row['motifs']} |")
    lines += ["", "## Figures", ""]
    lines += [f"- `{name}`" for name in report["files"] if name.endswith(".png")]
    lines += ["", "## How to read this", "",
              "- **Similarity**: CLIP score `100·max(cos, 0)` of each round's image against the *start* prompt "
              "(without the style suffix), with the evaluation CLIP. Falling similarity is the loop drifting away "
              "from where it began.",
              "- **Vendi**: the effective number of distinct images among all trajectories of a style at that "
              "round (1 = all alike). Its intervals are recentred on the value (resamples repeat images, which "
              "pulls Vendi down).",
              "- **Motifs**: the last round's images clustered by average-linkage clustering on cosine distance; "
              "the number of clusters is the one with the highest mean silhouette among 2…30 (one motif when all "
              "images are closer than the settle distance). The motif grid "
              "(`motifs.png`) shows each motif's most typical images.",
              "- **Settled**: captions settle at the first round from which they repeat with a period of at most 4 "
              "(1: a fixed point, more: a cycle) for at least max(3, 2·period) rounds; images settle at the first "
              "round from which each round moves less than the settle distance (cosine) from the "
              "one before, for at least 3 rounds. A trajectory that has not settled by the last round counts as "
              "not settled; the median settling round is over those that did.",
              ""]
    return "\n".join(lines)


__all__ = ["render_markdown"]
