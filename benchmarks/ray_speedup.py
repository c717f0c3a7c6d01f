"""What ``--ray local`` buys on this machine: the same comparison in-process and on a local Ray cluster.

    python benchmarks/ray_speedup.py                      # 4 styles × 4 seeds on the demo models, 60 steps
    python benchmarks/ray_speedup.py --steps 240 --seeds 8

Each row is the user's whole command (``clipguide compare … --demo``) in a fresh process, wall clock,
so Ray's start-up is included; the cost of starting and stopping a local cluster alone is measured too.
Rows: in-process (torch's default threads), in-process ``--threads 1``, ``--ray local --workers 2``
(one worker per two threads: on a 2-core machine that is one worker, the in-process pictures), and
``--ray local --workers 2 --threads 1`` (two one-thread workers; their pictures are the in-process
``--threads 1`` ones, which the script checks byte for byte). docs/scale-out.md has the figures.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def run(args: list[str], out: Path) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "clipguide", "compare", *args, "--out", str(out), "--quiet"], check=True,
                   stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def images(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted((folder / "images").rglob("*.png"))}


def ray_start_stop() -> float:
    code = ("import time, os; os.environ.setdefault('RAY_USAGE_STATS_ENABLED', '0'); import ray; t = time.perf_counter(); "
            "ray.init(include_dashboard=False, log_to_driver=False); ray.shutdown(); print(time.perf_counter() - t)")
    done = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    return float(done.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--styles", default="none,baroque,cyberpunk,pencil sketch")
    p.add_argument("--seeds", type=int, default=4)
    p.add_argument("--steps", type=int, default=60)
    ns = p.parse_args()
    base = ["a red circle on a blue background", "--demo", "--styles", ns.styles, "--seeds", str(ns.seeds),
            "--steps", str(ns.steps)]
    rows = [("in-process", []), ("in-process --threads 1", ["--threads", "1"]),
            ("--ray local --workers 2", ["--ray", "local", "--workers", "2"]),
            ("--ray local --workers 2 --threads 1", ["--ray", "local", "--workers", "2", "--threads", "1"])]
    batches = len(ns.styles.split(",")) + (0 if "none" in ns.styles.split(",") else 1)
    print(f"clipguide compare --demo: {batches} styles × {ns.seeds} seeds, {ns.steps} steps; cpus {os.cpu_count()}")
    print(f"starting and stopping a local Ray cluster alone: {ray_start_stop():.1f} s")
    with tempfile.TemporaryDirectory() as tmp:
        times, made = {}, {}
        for name, extra in rows:
            out = Path(tmp) / name.replace(" ", "_")
            times[name] = run(base + extra, out)
            made[name] = images(out)
            print(f"{name:<38} {times[name]:7.1f} s   speed-up vs in-process {times['in-process'] / times[name]:.2f}×",
                  flush=True)
        print("byte-identical images: in-process = --ray (threads default):",
              made["in-process"] == made["--ray local --workers 2"],
              "; --threads 1 in-process = 2 Ray workers:",
              made["in-process --threads 1"] == made["--ray local --workers 2 --threads 1"])


if __name__ == "__main__":
    main()
