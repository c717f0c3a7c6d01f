"""Does the demo judge read generated pictures the way the eye does? Its verdicts against eye labels.

    python benchmarks/judge_check.py

The steering benchmark trusts the judge (clipguide.demo.judge), whose rules were worked out on
shapes-world renders and on some of these pictures. `judge_check/pictures.png` holds pictures the
loop generated for the shape and position prompts (several CLIPs, both starts) and
`judge_check/labels.json` what was seen in each by eye, labelled blind to the prompt, the CLIP and
every judge (see the file's "about"). Each picture is "development" (its label was looked at while
the judge was built) or "held-out" (labelled, and first judged, after the judge was fixed): the
held-out agreement is the one to quote. For each task it prints how often the judge agrees with the
eye where the eye saw something clear, the confusion table, and the steering rate of each CLIP and
start as the eye reads it and as the judge reads it. Colours are not checked here.
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


SPLITS = ("held-out", "development")  # held-out first: its agreement is the one to quote


@dataclass
class CheckResult:
    task: str
    pictures: list[dict]  # labels.json's entries of this task, each with the judge's reading as "judge"

    def agreement(self, split: str | None = None) -> tuple[int, int]:
        """(agree, clear): of the pictures of `split` (default: all) where the eye saw something other
        than "unclear", how many the judge reads the same."""
        clear = [p for p in self.pictures if p["eye"] != "unclear" and split in (None, p["split"])]
        return sum(p["judge"] == p["eye"] for p in clear), len(clear)


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


def check(judge: Judge, folder: Path = CHECK_DIR, split: str | None = None) -> dict[str, CheckResult]:
    """Per task in the labels: the judge's reading of each picture (of `split`, default all) against the eye's."""
    from clipguide.demo.shapes import to_tensor

    images, pictures = load_pictures(folder)
    chosen = [i for i, p in enumerate(pictures) if split in (None, p["split"])]
    verdicts = judge.predict(to_tensor(images[chosen]))
    results = {}
    for task, (key, _) in TASKS.items():
        mine = [{**pictures[i], "judge": v[key]} for i, v in zip(chosen, verdicts) if pictures[i]["task"] == task]
        if mine:
            results[task] = CheckResult(task, mine)
    return results


def _share(agree: int, clear: int) -> str:
    return f"{agree}/{clear} = {agree / clear:.0%}" if clear else "0/0"


def summary_line(result: CheckResult) -> str:
    seen = "a circle or a square" if result.task == "shape" else "which third the shape is in"
    held_out, development = (_share(*result.agreement(split)) for split in SPLITS)
    return (f"judge check, {result.task}: the judge agrees with the eye labels on {held_out} of the held-out "
            f"generated pictures where the eye saw {seen} ({development} of those it was built on; "
            f"benchmarks/judge_check.py)")


def format_report(result: CheckResult) -> str:
    _, eye_values = TASKS[result.task]
    said = sorted({p["judge"] for p in result.pictures} | set(eye_values[:-1]))
    lines = [summary_line(result)]
    for split in SPLITS:
        pairs = Counter((p["eye"], p["judge"]) for p in result.pictures if p["split"] == split)
        lines += ["", f"{split.capitalize()} pictures:", "",
                  "| eye \\ judge | " + " | ".join(said) + " |", "|---" * (len(said) + 1) + "|"]
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
    p.parse_args(argv)
    try:
        results = check(Judge())
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print("\n\n".join(format_report(r) for r in results.values()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
