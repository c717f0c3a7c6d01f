"""Steering success rates of the offline demo models, judged without CLIP.

    python benchmarks/steering.py --seeds 32            # the figures in weights/demo/MODEL_CARD.md
    python benchmarks/steering.py --seeds 8 --tasks colour,shape --steps 100
    python benchmarks/steering.py --init mean --lr 0.1 --steps 270  # the start that steers position
    python benchmarks/steering.py --tasks shape --clip demo --clip demo-wide --init mean --lr 0.1 --steps 270  # shape
    python benchmarks/steering.py --clip runs/clip --clip demo      # a candidate CLIP (here with the shipped one)
    python benchmarks/steering.py --tasks background --seeds 16 --cut-min lineage  # the lineage's cutout sizes

Prints each CLIP's margins on clean pictures (can it tell the pair apart at all?), then the table of
success rates, under shape and position how often the judge agrees with eye labels on generated
pictures (benchmarks/judge_check.py: read those rates as the judge's), and with --json writes every verdict.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from clipguide import api
from clipguide.demo.judge import Judge
from clipguide.demo.steering import TASKS, clean_margins, demo_settings, format_table, measure
from clipguide.errors import UserError
from clipguide.output import atomic_write_text
from clipguide.settings import INITS

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the sibling benchmarks/judge_check.py
from judge_check import check as check_judge, summary_line  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, default=32, help="seeds per prompt (default 32)")
    p.add_argument("--first-seed", type=int, default=1000, help="first seed (default 1000: away from test seeds)")
    p.add_argument("--tasks", default=",".join(TASKS), help="comma-separated: " + ", ".join(TASKS))
    p.add_argument("--steps", type=int, default=None, help="override the demo's steps")
    p.add_argument("--lr", type=float, default=None, help="override the demo's learning rate")
    p.add_argument("--init", choices=INITS, default=None, help="override the demo's start (random codes or 'mean')")
    p.add_argument("--cut-min", default=None,
                   help="override the demo's smallest cutout (pixels, a fraction of the side, or 'lineage' for "
                        "the default min(width, height, CLIP input size))")
    p.add_argument("--clip", action="append", default=None,
                   help="guide with this CLIP instead of the shipped one ('demo', or a folder that "
                        "scripts/train_demo.py wrote); repeat for an ensemble")
    p.add_argument("--json", default=None, help="write the verdicts here")
    args = p.parse_args(argv)
    overrides = {k: v for k, v in (("steps", args.steps), ("lr", args.lr), ("init", args.init)) if v is not None}
    if args.clip:
        overrides["clip"] = tuple(args.clip)
    if args.cut_min is not None:
        overrides["cut_min"] = None if args.cut_min == "lineage" else float(args.cut_min)
    base = demo_settings(**overrides)
    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
    if unknown := [t for t in tasks if t not in TASKS]:
        p.error(f"unknown task {unknown[0]!r}: choose from {', '.join(TASKS)}")
    # checked before a run that can take half an hour, not after it
    verdicts = Path(args.json) if args.json else None
    if verdicts and verdicts.exists():
        p.error(f"--json {verdicts} exists: choose a new name (earlier verdicts are never overwritten)")
    if verdicts and not verdicts.parent.is_dir():
        p.error(f"--json: folder {verdicts.parent} does not exist: create it first")
    start = time.perf_counter()
    try:
        session = api.Session(base.device, offline=True, progress=False)
        judge = Judge()
        print_clean_margins(tasks, base.clip, session)
        results = measure(tasks, args.seeds, args.first_seed, base=base, session=session, judge=judge,
                          progress=lambda m: print(f"  {m}", file=sys.stderr))
    except UserError as e:  # e.g. a --clip folder that is not there
        print(f"error: {e}", file=sys.stderr)
        return 2
    seconds = time.perf_counter() - start
    print(format_table(results))
    if "position" in results:  # the stricter reading: exactly the named position "left" / "right"
        r = results["position"]
        exact = sum(v["position"] == asked for (asked, _, _), v in zip(r.judged, r.verdicts))
        print(f"\nposition, exact named position (not top/bottom left or right): {exact}/{r.runs} = {exact / r.runs:.0%}")
    # how far the judge's shape and position verdicts agree with the eye on generated pictures
    if checked := [name for name in ("shape", "position") if name in results]:
        agreement = check_judge(judge)
        for name in checked:
            print(f"\n{summary_line(agreement[name])}: the {name} rate above is the judge's reading")
    images = sum(r.runs for r in results.values())
    print(f"\n{images} images at {base.size[0]}x{base.size[1]}, {base.steps} steps, lr {base.lr:g}, init {base.init}, "
          f"cutn {base.cutn}, cut_min {base.cut_min}, CLIP {', '.join(base.clip)}: "
          f"{seconds:.0f} s ({seconds / images:.2f} s per image, batches of {args.seeds})")
    if verdicts:
        report = {name: {"hits": r.hits, "runs": r.runs, "paired_hits": r.paired_hits, "seeds": r.seeds,
                         "judged": r.judged, "verdicts": r.verdicts} for name, r in results.items()}
        try:  # whole or not at all: a temp file renamed into place
            atomic_write_text(verdicts, json.dumps(report, indent=2) + "\n")
        except UserError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
    return 0


def print_clean_margins(tasks: list[str], clips: tuple[str, ...], session: api.Session) -> None:
    """Each CLIP's own reading of the clean pictures the prompts describe: a margin at or below
    zero means that CLIP cannot steer that pair, whatever the loop does."""
    print("CLIP margin on clean pictures (cosine, own prompt minus the pair's other; > 0 is needed to steer):")
    for spec, model in zip(clips, session.perceptor(clips).models):
        for name in tasks:
            task = TASKS[name]
            margins = ", ".join(f"{asked} {m:+.3f}" for (asked, _), m in zip(task.options, clean_margins(task, model)))
            print(f"  {spec}: {name}: {margins}")
    print()


if __name__ == "__main__":
    sys.exit(main())
