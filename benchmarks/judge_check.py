"""Does the demo judge read generated pictures the way the eye does? Its verdicts against eye labels.

    python benchmarks/judge_check.py                                 # the shipped judge
    python benchmarks/judge_check.py --judge runs/judge.safetensors  # a candidate (scripts/train_demo.py --part judge)

The steering benchmark trusts the judge; the judge was trained on clean shapes-world renders only.
`judge_check/pictures.png` holds pictures the loop generated for the shape and position prompts
(several CLIPs, both starts) and `judge_check/labels.json` what was seen in each by eye, labelled blind
to the prompt, the CLIP and every judge (see the file's "about"). For each task it prints how often
the judge agrees with the eye where the eye saw something clear, the confusion table, and the
steering rate of each CLIP and start as the eye reads it and as the judge reads it. Colours are not
checked here: the judge reads them from pixel statistics, not from a learned model.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from clipguide.demo.judge import Judge
from clipguide.errors import UserError

CHECK_DIR = Path(__file__).resolve().parent / "judge_check"
# task -> (the judge's key for it, the values the eye can give; "unclear" is not counted as clear)
TASKS = {"shape": ("shape", ("circle", "square", "unclear")),
         "position": ("side", ("left", "centre", "right", "unclear"))}


@dataclass
class CheckResult:
    task: str
    pictures: list[dict]  # labels.json's entries of this task, each with the judge's reading as "judge"
    agree: int  # clear pictures (the eye saw something other than "unclear") where the judge says the same
    clear: int

    @property
    def rate(self) -> float:
        return self.agree / self.clear if self.clear else 0.0


def load_pictures(folder: Path = CHECK_DIR) -> tuple[np.ndarray, list[dict]]:
    """The labelled pictures: uint8 (N, cell, cell, 3) and one label dict each."""
    from PIL import Image

    labels = json.loads((folder / "labels.json").read_text())
    sheet = np.asarray(Image.open(folder / "pictures.png").convert("RGB"))
    cell, columns, pictures = labels["cell"], labels["columns"], labels["pictures"]
    rows = -(-len(pictures) // columns)
    if sheet.shape[:2] != (rows * cell, columns * cell):
        raise UserError(f"{folder / 'pictures.png'} is {sheet.shape[1]}x{sheet.shape[0]}, but labels.json describes "
                        f"{len(pictures)} pictures of {cell} px in {columns} columns: rebuild one from the other")
    cells = [sheet[r * cell:(r + 1) * cell, c * cell:(c + 1) * cell]
             for r, c in (divmod(n, columns) for n in range(len(pictures)))]
    return np.stack(cells), pictures


def check(judge: Judge, folder: Path = CHECK_DIR) -> dict[str, CheckResult]:
    """Per task in the labels: the judge's reading of each picture against the eye's."""
    from clipguide.demo.shapes import to_tensor

    images, pictures = load_pictures(folder)
    verdicts = judge.predict(to_tensor(images))
    results = {}
    for task, (key, _) in TASKS.items():
        mine = [{**p, "judge": v[key]} for p, v in zip(pictures, verdicts) if p["task"] == task]
        if mine:
            clear = [p for p in mine if p["eye"] != "unclear"]
            results[task] = CheckResult(task, mine, sum(p["judge"] == p["eye"] for p in clear), len(clear))
    return results


def summary_line(result: CheckResult) -> str:
    seen = "a circle or a square" if result.task == "shape" else "which third the shape is in"
    return (f"judge check, {result.task}: the judge agrees with the eye labels on {result.agree}/{result.clear} = "
            f"{result.rate:.0%} of the generated pictures where the eye saw {seen} (benchmarks/judge_check.py)")


def format_report(result: CheckResult) -> str:
    key, eye_values = TASKS[result.task]
    said = sorted({p["judge"] for p in result.pictures} | set(eye_values[:-1]))
    pairs = Counter((p["eye"], p["judge"]) for p in result.pictures)
    lines = [summary_line(result), "", "| eye \\ judge | " + " | ".join(said) + " |", "|---" * (len(said) + 1) + "|"]
    lines += [f"| {eye} | " + " | ".join(str(pairs[(eye, s)]) for s in said) + " |" for eye in eye_values]
    lines += ["", f"{result.task.capitalize()} steering (the picture shows what its prompt asked for), read by eye and by the judge:",
              "", "| CLIP | start | pictures | eye: right / wrong / unclear | judge: right |", "|---|---|---|---|---|"]
    groups: dict[tuple[str, str], list[dict]] = {}
    for p in result.pictures:
        groups.setdefault((p["clip"], p["start"]), []).append(p)
    for (clip, start), ps in sorted(groups.items()):
        right = sum(p["eye"] == p["asked"] for p in ps)
        unclear = sum(p["eye"] == "unclear" for p in ps)
        judged = sum(p["judge"] == p["asked"] for p in ps)
        lines.append(f"| {clip} | {start} | {len(ps)} | {right} / {len(ps) - right - unclear} / {unclear} | {judged} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--judge", default=None, help="a judge.safetensors to check instead of the shipped one")
    args = p.parse_args(argv)
    try:
        results = check(Judge.load(path=args.judge))
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print("\n\n".join(format_report(r) for r in results.values()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
