"""Seconds per telephone round, and what a full study costs (issue 28).

Two measurements, both of the product's own code:

* ``--demo``: the real loop (``clipguide.telephone.loop.run_trajectories``) on the shipped demo
  models, a few rounds, timing each round's generation and description separately;
* ``--real-size``: the architectures a real study runs, with random weights (timing does not
  depend on weight values; ``clipguide bench`` builds them): VQGAN ImageNet f16_16384 + open_clip
  ViT-B-32. It times optimisation steps through ``clipguide.bench.run_config`` and the CLIP
  describer's text embeddings (texts per second through the same CLIP's text tower, times the
  texts a description of a new image embeds with the ``general`` vocabulary), then projects a
  round (``--study-steps`` steps + one description) and the whole study.

    python benchmarks/telephone.py --demo --steps 80 --rounds 3
    python benchmarks/telephone.py --real-size --size 256 256 --cutn 32 --steps 2 --flops
    python benchmarks/telephone.py --real-size --steps 0 --s-per-step 3.94     # describer only, steps from RESULTS.md
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

    out: dict = {"mode": "real-size", "size": ns.size, "cutn": ns.cutn, "device": ns.device}
    if ns.steps:
        steps = bench.run_config(size=tuple(ns.size), cutn=ns.cutn, steps=ns.steps, warmup=1,
                                 precision=ns.precision, device=ns.device, flops=ns.flops)
        out.update(precision=steps["autocast"], s_per_step_median=steps["median_s_per_it"])
        if ns.flops:
            out["gflop_per_step"] = steps["gflop_per_it"]
    session = bench.bench_session(ns.device)
    settings = bench.bench_settings(size=tuple(ns.size), cutn=ns.cutn, device=ns.device, precision=ns.precision)
    describer = describer_for(settings, TelephoneSettings(), session)
    vocab = describer.vocabulary
    # The describer's cost is its text embeddings: the first slot's once per process, then every
    # later slot's phrases once per new (image, phrases so far). Measured as texts per second.
    texts = [vocab.render({"subject": p, "style": "baroque"}) for p in vocab.slots["subject"][:ns.texts]]
    model = describer.models[0]
    model.embed_texts(texts[:16])
    start = time.perf_counter()
    model.embed_texts(texts)
    if ns.device == "cuda":
        torch.cuda.synchronize()
    per_s = len(texts) / (time.perf_counter() - start)
    later = sum(len(vocab.slots[s]) + (s in vocab.optional) for s in vocab.order[1:])
    out.update(vocabulary=describer.about, texts_per_s=per_s, describe_first_slot_s=len(vocab.slots[vocab.order[0]]) / per_s,
               describe_s_per_round=later / per_s, texts_per_round=later)
    s_per_step = out.get("s_per_step_median", ns.s_per_step)
    if s_per_step:
        per_round = ns.study_steps * s_per_step + out["describe_s_per_round"]
        rounds = ns.study_prompts * ns.study_seeds * ns.study_styles * ns.study_rounds
        out.update(s_per_step_used=s_per_step, study_steps=ns.study_steps, projected_s_per_round=per_round,
                   study_rounds=rounds, projected_study_hours=rounds * per_round / 3600)
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
    p.add_argument("--texts", type=int, default=256, help="real-size: texts timed through the CLIP text tower")
    p.add_argument("--s-per-step", type=float, default=None,
                   help="real-size with --steps 0: the s/step to project with (e.g. from benchmarks/RESULTS.md)")
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
