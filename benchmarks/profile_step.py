"""Where one step's time goes: decoder, cutouts and augments, CLIP, optimiser, and the rest.

    python benchmarks/profile_step.py --size 256 256 --cutn 32 --precision bf16 --repeats 5
    python benchmarks/profile_step.py --trace trace.json   # also a torch.profiler trace of whole steps

The same random-weight real-size models as ``clipguide bench`` (VQGAN f16_16384, ViT-B-32), built
through the product's build_run. Each part is timed on its own, forward and backward, with the
inputs a step gives it (medians of ``--repeats`` runs after one warm-up):

* decoder — snap to the codebook, decode, clamp; backward to the latent;
* cutouts — cut and augment ``cutn`` views (fp32, as in a step); backward to the image;
* CLIP — normalise and embed the views (under the run's autocast); backward to the views;
* optimiser — Adam's step and the codebook clamp;
* whole step — ``engine.run`` for one step; "other" is what the parts do not account for
  (Python, the loss arithmetic, autograd bookkeeping between the parts).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from clipguide import bench, engine  # noqa: E402
from clipguide.build import build_run  # noqa: E402


def _time(fn, repeats: int) -> float:
    fn()  # warm-up: allocator, oneDNN primitive caches
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def split(size: tuple[int, int], cutn: int, precision: str, repeats: int, tiny: bool, checkpointing: str) -> dict:
    session = bench.bench_session("cpu", tiny=tiny)
    run = build_run(bench.bench_settings(size=size, cutn=cutn, steps=1, precision=precision,
                                         checkpointing=checkpointing), session=session)
    generator, prompt = run.generator, run.term("prompt")
    model = run.perceptor.models[0]
    autocast = (torch.autocast("cpu", dtype=run.autocast_dtype) if run.autocast_dtype else contextlib.nullcontext())
    z = run.latent["z"].detach().clone().requires_grad_(True)

    def decoder() -> None:
        with autocast:
            image = generator.decode({"z": z})
        image.float().sum().backward()

    with torch.no_grad(), autocast:
        image = generator.decode({"z": z}).float()
    pixels = image.clone().requires_grad_(True)

    def cutouts() -> None:
        views = prompt.cutouts(pixels, model.input_size, run.rngs)
        views.sum().backward()

    views = prompt.cutouts(image, model.input_size, run.rngs).detach().requires_grad_(True)

    def clip() -> None:
        with autocast:
            embeds = model.embed_images(views)
        embeds.sum().backward()

    params = [z]
    optimizer = engine.make_optimizer(run.optimizer, params, run.lr)
    z.grad = torch.randn_like(z)

    def optimise() -> None:
        optimizer.step()
        with torch.no_grad():
            generator.project_({"z": z})

    def whole() -> None:
        engine.run(run.__class__(**{**run.__dict__, "steps": 1}))

    parts = {"decoder": _time(decoder, repeats), "cutouts": _time(cutouts, repeats), "clip": _time(clip, repeats),
             "optimiser": _time(optimise, repeats)}
    total = _time(whole, repeats)
    parts["other"] = max(0.0, total - sum(parts.values()))
    return {"size": list(size), "cutn": cutn, "precision": precision, "checkpointing": checkpointing,
            "threads": torch.get_num_threads(), "step_s": total, "parts_s": parts}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", nargs=2, type=int, default=(256, 256), metavar=("W", "H"))
    p.add_argument("--cutn", type=int, default=32)
    p.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16"))
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--checkpointing", default="auto", choices=("auto", "off", "decoder", "all"))
    p.add_argument("--tiny", action="store_true", help="test-size models (to check the script)")
    p.add_argument("--json", default=None)
    p.add_argument("--trace", default=None, help="write a torch.profiler Chrome trace of two whole steps here")
    ns = p.parse_args(argv)
    result = split(tuple(ns.size), ns.cutn, ns.precision, ns.repeats, ns.tiny, ns.checkpointing)
    total = result["step_s"]
    print(f"{ns.size[0]}x{ns.size[1]} cutn {ns.cutn} {ns.precision}: {total:.3f} s per step")
    print("| part | s | share |\n|---|---:|---:|")
    for name, seconds in result["parts_s"].items():
        print(f"| {name} | {seconds:.3f} | {100 * seconds / total:.0f}% |")
    if ns.trace:
        from torch.profiler import ProfilerActivity, profile

        session = bench.bench_session("cpu", tiny=ns.tiny)
        run = build_run(bench.bench_settings(size=tuple(ns.size), cutn=ns.cutn, steps=2, precision=ns.precision),
                        session=session)
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            engine.run(run)
        prof.export_chrome_trace(ns.trace)
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=15))
    if ns.json:
        Path(ns.json).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
