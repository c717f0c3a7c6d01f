"""Frames per minute of ``clipguide animate`` at its defaults, on the CPU (or the device asked for).

Two configurations, each the product's own frame loop (:func:`clipguide.animation.animate`: encode the
moved frame, ``steps_per_frame`` steps, save the PNG):

* ``demo``: the shipped demo models at the demo preset's settings (64x64, cutn 16) and the animation
  defaults (20 steps a frame), with a zoom;
* ``real``: the real-size architectures with random weights (VQGAN ImageNet f16_16384 and ViT-B-32,
  :func:`clipguide.bench.bench_session`; timing does not depend on the weights) at a small size.

Frame 0 is a still of ``--steps`` steps and is timed apart; "frames per minute" is over the later
frames, which is what a long animation runs at. Nothing is written outside a temporary folder.

    python benchmarks/animate_bench.py                       # both, 3 timed frames each
    python benchmarks/animate_bench.py --only demo --frames 6
    python benchmarks/animate_bench.py --only real --size 128 --device cuda
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from clipguide.animation import AnimationSettings, animate
from clipguide.settings import Settings


def measure(settings: Settings, anim: AnimationSettings, session) -> dict:
    """Seconds of frame 0 and of every later frame of one animation."""
    stamps: list[float] = []

    def on_start(first: int, last: int) -> None:
        stamps.append(time.perf_counter())  # the models are loaded and the run built

    def on_frame(frame: int, last: int, images, paths) -> None:
        stamps.append(time.perf_counter())

    with tempfile.TemporaryDirectory(prefix="animate-bench-") as out:
        animate(settings, anim, out, session=session, on_start=on_start, on_frame=on_frame)
    seconds = [b - a for a, b in zip(stamps, stamps[1:])]
    later = seconds[1:]
    return {"first_frame_s": round(seconds[0], 2), "frame_s": [round(s, 2) for s in later],
            "median_frame_s": round(statistics.median(later), 2),
            "frames_per_minute": round(60 / statistics.median(later), 2),
            "steps_per_frame": anim.steps_per_frame, "first_frame_steps": settings.steps,
            "size": list(settings.size), "cutn": settings.cutn, "precision": settings.precision}


def demo(frames: int, device: str):
    from clipguide.presets import demo_settings
    from clipguide.session import Session

    settings = Settings(prompt="a white circle on a red background", device=device).replace(**demo_settings())
    return measure(settings, AnimationSettings(frames=frames + 1, zoom=1.02), Session(device))


def real(frames: int, device: str, size: int, first_steps: int):
    from clipguide.bench import bench_session, bench_settings

    settings = bench_settings(size=(size, size), precision="auto", device=device, steps=first_steps,
                              cutn=Settings().cutn)
    return measure(settings, AnimationSettings(frames=frames + 1, zoom=1.02), bench_session(device))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--only", choices=("demo", "real"), help="Run one configuration only.")
    p.add_argument("--frames", type=int, default=3, help="Frames timed after frame 0 (default: 3).")
    p.add_argument("--size", type=int, default=128, help="Side of the real-size run (default: 128).")
    p.add_argument("--first-steps", type=int, default=2,
                   help="Steps of the real-size run's frame 0, which is not in the rate (default: 2).")
    p.add_argument("--device", default="cpu")
    p.add_argument("--json", metavar="FILE", help="Also write the figures as JSON.")
    ns = p.parse_args(argv)
    figures = {}
    for name in ("demo", "real"):
        if ns.only not in (None, name):
            continue
        f = demo(ns.frames, ns.device) if name == "demo" else real(ns.frames, ns.device, ns.size, ns.first_steps)
        figures[name] = f
        print(f"{name}: {f['frames_per_minute']} frames/min ({f['median_frame_s']} s a frame of {f['steps_per_frame']} "
              f"steps at {f['size'][0]}x{f['size'][1]}, cutn {f['cutn']}, precision {f['precision']}; frames "
              f"{f['frame_s']}); frame 0: {f['first_frame_s']} s for {f['first_frame_steps']} steps", flush=True)
    if ns.json:
        Path(ns.json).write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
