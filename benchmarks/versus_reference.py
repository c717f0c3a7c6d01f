"""clipguide against the classic fp32 VQGAN+CLIP loop, side by side in one run: speed and peak memory.

    python benchmarks/versus_reference.py --size 256 256 --cutn 32 --steps 4 --warmup 1 --rounds 2
    python benchmarks/versus_reference.py --tiny --steps 2      # check the script (test-size models)

Each configuration runs in its own process (peak RSS is per process), alternating reference and
clipguide ``--rounds`` times so that a change in machine load hits both alike: the reference loop of
``benchmarks/reference_loop.py`` (fp32, the same models, size, cutn and augments, one decode and one
CLIP pass per step), then ``clipguide bench`` at its defaults (``--precision auto``,
``--checkpointing auto``) and, for the split, with checkpointing off. Prints a Markdown table of the
medians and the ratios to the reference; ``--json`` keeps every run.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def _run(argv: list[str]) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "r.json"
        subprocess.run([sys.executable, *argv, "--json", str(out)], check=True, cwd=ROOT,
                       stdout=subprocess.DEVNULL)
        return json.loads(out.read_text(encoding="utf-8"))


def configurations(ns: argparse.Namespace) -> dict[str, list[str]]:
    common = ["--size", *map(str, ns.size), "--cutn", str(ns.cutn), "--steps", str(ns.steps),
              "--warmup", str(ns.warmup), *(["--tiny"] if ns.tiny else [])]
    bench = ["-m", "clipguide.bench", *common, "--quiet", "--precision", ns.precision]
    return {
        "reference (fp32, classic loop)": [str(HERE / "reference_loop.py"), *common],
        "clipguide, defaults": [*bench, "--checkpointing", "auto"],
        "clipguide, checkpointing off": [*bench, "--checkpointing", "off"],
        "clipguide, checkpointing all": [*bench, "--checkpointing", "all"],
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", nargs=2, type=int, default=(256, 256), metavar=("W", "H"))
    p.add_argument("--cutn", type=int, default=32)
    p.add_argument("--steps", type=int, default=4)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--rounds", type=int, default=2, help="times each configuration runs, alternating")
    p.add_argument("--precision", default="auto", help="clipguide's precision (the reference is always fp32)")
    p.add_argument("--tiny", action="store_true", help="test-size models (to check the script)")
    p.add_argument("--json", default=None)
    ns = p.parse_args(argv)
    configs = configurations(ns)
    runs: dict[str, list[dict]] = {name: [] for name in configs}
    for _ in range(ns.rounds):
        for name, args in configs.items():
            runs[name].append(_run(args))
            print(f"{name}: {runs[name][-1]['median_s_per_it']:.3f} s/it, "
                  f"{runs[name][-1]['peak_rss_mib']:.0f} MiB", file=sys.stderr, flush=True)
    speed = {name: statistics.median(r["median_s_per_it"] for r in rs) for name, rs in runs.items()}
    memory = {name: statistics.median(r["peak_rss_mib"] for r in rs) for name, rs in runs.items()}
    reference = next(iter(configs))
    print(f"{ns.size[0]}x{ns.size[1]}, cutn {ns.cutn}, {ns.steps} timed steps after {ns.warmup}, "
          f"{ns.rounds} rounds alternating")
    print("| loop | s/it (median) | speed vs reference | peak RSS MiB | memory vs reference |")
    print("|---|---:|---:|---:|---:|")
    for name in configs:
        print(f"| {name} | {speed[name]:.3f} | {speed[reference] / speed[name]:.2f}x | {memory[name]:.0f} | "
              f"{memory[name] / memory[reference]:.2f}x |")
    if ns.json:
        Path(ns.json).write_text(json.dumps({"settings": vars(ns), "runs": runs}, indent=2, default=str) + "\n",
                                 encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
