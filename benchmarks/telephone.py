"""Seconds per telephone round, and what a full study costs (issue 28).

Two measurements, both of the product's own code:

* ``--demo``: the real loop (``clipguide.telephone.loop.run_trajectories``) on the shipped demo
  models, a few rounds, timing each round's generation and description separately;
* ``--real-size``: the architectures a real study runs, with random weights (timing does not
  depend on weight values; ``clipguide bench`` builds them): VQGAN ImageNet f16_16384 + open_clip
  ViT-B-32. It times optimisation steps through ``clipguide.bench.run_config`` and the CLIP
  describer over the ``general`` vocabulary (2300+ phrases) on the same CLIP, then projects a
  round (``--study-steps`` steps + one description) and the whole study.

    python benchmarks/telephone.py --demo --steps 80 --rounds 3
    python benchmarks/telephone.py --real-size --size 256 256 --cutn 32 --steps 2
    python benchmarks/telephone.py --real-size --device cuda --size 512 512 --cutn 32 --steps 20   # on a GPU

Prints one line per figure; ``--json FILE`` keeps them.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch


def demo(ns: argparse.Namespace) -> dict:
    from clipguide import api
    from clipguide.presets import demo_settings
    from clipguide.session import Session
    from clipguide.settings import Settings
    from clipguide.telephone import loop
    from clipguide.telephone.settings import TelephoneSettings

    settings = Settings(**{**demo_settings(), "steps": ns.steps, "seeds": 1, "device": ns.device,
                           "precision": ns.precision})
    telephone = TelephoneSettings(rounds=ns.rounds)
    session = Session(ns.device)
    describer = loop.describer_for(settings, telephone, session)
    timings = {"generate": [], "describe": []}
    real_execute, real_describe = api.execute, describer.describe

    def timed(store, function):
        def wrapper(*args, **kw):
            start = time.perf_counter()
            try:
                return function(*args, **kw)
            finally:
                store.append(time.perf_counter() - start)
        return wrapper

    api.execute = timed(timings["generate"], real_execute)
    describer.describe = timed(timings["describe"], real_describe)
    start = time.perf_counter()
    try:
        with tempfile.TemporaryDirectory() as folder:
            for j in range(ns.seeds):  # batch 1 each, as a study runs them
                loop.run_trajectory(ns.prompt, j, settings, telephone, Path(folder), session=session,
                                    describer=describer)
    finally:
        api.execute = real_execute
    total = time.perf_counter() - start
    rounds = ns.rounds * ns.seeds
    gen = timings["generate"][1:] or timings["generate"]  # the first round also loads the models
    return {"mode": "demo", "steps": ns.steps, "rounds": rounds, "wall_s": total,
            "s_per_round_median": statistics.median(gen) + statistics.median(timings["describe"]),
            "generate_s_per_round_median": statistics.median(gen),
            "generate_s_per_step": statistics.median(gen) / ns.steps,
            "describe_s_per_round_median": statistics.median(timings["describe"]),
            "first_round_s": timings["generate"][0] + timings["describe"][0]}


def real_size(ns: argparse.Namespace) -> dict:
    from clipguide import bench
    from clipguide.telephone.loop import describer_for
    from clipguide.telephone.settings import TelephoneSettings

    steps = bench.run_config(size=tuple(ns.size), cutn=ns.cutn, steps=ns.steps, warmup=1, precision=ns.precision,
                             device=ns.device, flops=ns.flops)
    session = bench.bench_session(ns.device)
    settings = bench.bench_settings(size=tuple(ns.size), cutn=ns.cutn, device=ns.device, precision=ns.precision)
    describer = describer_for(settings, TelephoneSettings(), session)
    generator = torch.Generator().manual_seed(0)
    images = [torch.rand(1, 3, ns.size[1], ns.size[0], generator=generator) for _ in range(3)]
    times = []
    for image in images:  # the first also embeds the first slot's phrases once (cached after)
        start = time.perf_counter()
        describer.describe(image)
        if ns.device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    describe = statistics.median(times[1:])
    per_round = ns.study_steps * steps["median_s_per_it"] + describe
    rounds = ns.study_prompts * ns.study_seeds * ns.study_styles * ns.study_rounds
    out = {"mode": "real-size", "size": ns.size, "cutn": ns.cutn, "precision": steps["autocast"],
           "device": steps["device"], "s_per_step_median": steps["median_s_per_it"],
           "describe_first_s": times[0], "describe_s_per_round": describe, "vocabulary": describer.about,
           "study_steps": ns.study_steps, "projected_s_per_round": per_round,
           "study_rounds": rounds, "projected_study_hours": rounds * per_round / 3600}
    if ns.flops:
        out["gflop_per_step"] = steps["gflop_per_it"]
    return out


def parse_args(argv) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    mode = p.add_mutually_exclusive_group(required=True)
    mode.add_argument("--demo", action="store_true")
    mode.add_argument("--real-size", action="store_true")
    p.add_argument("--prompt", default="a red circle on a blue background")
    p.add_argument("--steps", type=int, default=80, help="demo: steps per round; real-size: timed steps")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--seeds", type=int, default=1, help="demo: trajectories (each alone, as in a study)")
    p.add_argument("--size", type=int, nargs=2, default=(256, 256))
    p.add_argument("--cutn", type=int, default=32)
    p.add_argument("--device", default="cpu")
    p.add_argument("--precision", default="auto")
    p.add_argument("--flops", action="store_true", help="real-size: count GFLOP per step too")
    p.add_argument("--study-steps", type=int, default=200)
    p.add_argument("--study-prompts", type=int, default=100)
    p.add_argument("--study-seeds", type=int, default=3)
    p.add_argument("--study-styles", type=int, default=2)
    p.add_argument("--study-rounds", type=int, default=100)
    p.add_argument("--json", default=None)
    return p.parse_args(argv)


def main(argv=None) -> int:
    ns = parse_args(sys.argv[1:] if argv is None else argv)
    result = demo(ns) if ns.demo else real_size(ns)
    result["threads"] = torch.get_num_threads()
    for key, value in result.items():
        print(f"{key}: {value:.4g}" if isinstance(value, float) else f"{key}: {value}")
    if ns.json:
        Path(ns.json).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
