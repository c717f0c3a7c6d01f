"""``clipguide bench``: seconds per step, images per minute and peak memory of the real loop.

No checkpoint can be assumed (CI machines have no network), and timing does not depend on
weight values, so the benchmark builds the *real-size* architectures with random weights — VQGAN
ImageNet f16_16384 (taming's published ddconfig) and open_clip ``ViT-B-32`` — hands them to a
:class:`~clipguide.session.Session`, and runs the product's own run on them: settings →
:func:`clipguide.build.build_run` → :func:`clipguide.engine.run`, exactly what ``generate`` does.
``--tiny`` swaps in test-size models (for tests).

``--generator pixel`` or ``fft`` times a drawer instead (no checkpoint, so nothing random but the
CLIP). Peak RSS comes from ``getrusage``, a process-lifetime maximum, so a grid runs every
configuration in its own subprocess (:mod:`clipguide.bench_grid`); a single configuration runs
in-process. ``--quality`` (:mod:`clipguide.bench_quality`) compares precisions on the demo models.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from .registry import GENERATORS
from .settings import CHECKPOINTING, Settings

#: taming's model.params of the published VQGAN ImageNet f16_16384 (architecture part only).
VQGAN_F16_16384: dict[str, Any] = {
    "embed_dim": 256,
    "n_embed": 16384,
    "ddconfig": {"double_z": False, "z_channels": 256, "resolution": 256, "in_channels": 3, "out_ch": 3,
                 "ch": 128, "ch_mult": [1, 1, 2, 2, 4], "num_res_blocks": 2, "attn_resolutions": [16],
                 "dropout": 0.0},
}
CLIP_ARCH = "ViT-B-32"

# Test-size stand-ins of the same two architectures (taming's GroupNorm needs ch >= 32).
TINY_VQGAN: dict[str, Any] = {
    "embed_dim": 4, "n_embed": 32,
    "ddconfig": {"double_z": False, "z_channels": 4, "resolution": 32, "in_channels": 3, "out_ch": 3, "ch": 32,
                 "ch_mult": [1, 2], "num_res_blocks": 1, "attn_resolutions": [], "dropout": 0.0},
}
TINY_CLIP_CFG: dict[str, Any] = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": 2, "width": 32, "patch_size": 8, "head_width": 16},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 2},
}

PROMPT = "a watercolour painting of a lighthouse at dawn"
GRID_SIZES = (128, 256, 512)
GRID_CUTN = (16, 32, 64)
GRID_SEEDS = (1, 4, 8)
#: Steps one finished image takes (the Settings default, 400), for "images per minute".
IMAGE_STEPS = Settings().steps


def build_models(device: torch.device, *, tiny: bool = False, seed: int = 0, vqgan: bool = True):
    """(generator, perceptor) of the real architectures with random weights, frozen, on ``device``
    (generator None when ``vqgan`` is False)."""
    import open_clip

    from .generators.vqgan import VQGANGenerator
    from .perceptor import Perceptor, wrap_clip

    generator = None
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if vqgan:
            generator = VQGANGenerator.from_config(TINY_VQGAN if tiny else VQGAN_F16_16384)
            with torch.no_grad():  # taming's tiny uniform codebook init makes every code alike
                generator.codebook.normal_()
        if tiny:
            clip = open_clip.CLIP(**TINY_CLIP_CFG)
        else:
            clip = open_clip.create_model(CLIP_ARCH, pretrained=None)
    generator = generator.to(device) if generator is not None else None
    return generator, Perceptor([wrap_clip(CLIP_ARCH, clip, CLIP_ARCH, device)])


#: The specs the benchmark's random-weight models are known by in its session.
BENCH_GENERATOR, BENCH_CLIP = "bench:vqgan_f16_16384", "bench:ViT-B-32"
#: What ``--generator`` takes: the random-weight VQGAN, or a drawer (built as users get it).
VQGAN = "vqgan"


def generator_choices() -> tuple[str, ...]:
    return (VQGAN, *(n for n in GENERATORS if not GENERATORS.info.get(n, {}).get("weights", True)))


def bench_settings(*, size: tuple[int, int] = (256, 256), cutn: int = 32, seeds: int = 1, steps: int = 10,
                   precision: str = "fp32", device: str = "cpu", checkpointing: str = "auto",
                   compile: bool = False, generator: str = VQGAN) -> Settings:
    """What the benchmark runs: the defaults users get (augments, optimiser, lr), at the asked size."""
    return Settings(prompt=PROMPT, generator=BENCH_GENERATOR if generator == VQGAN else generator,
                    clip=(BENCH_CLIP,), size=size, cutn=cutn, seeds=seeds, steps=steps, precision=precision,
                    device=device, checkpointing=checkpointing, compile=compile)


def bench_session(device: str, *, tiny: bool = False, generator: str = VQGAN):
    """A session whose CLIP (and VQGAN, unless a drawer is timed) are the real architectures with random weights."""
    from .session import Session

    session = Session(device)
    vqgan, perceptor = build_models(session.device, tiny=tiny, vqgan=generator == VQGAN)
    if vqgan is not None:
        session.add_generator(BENCH_GENERATOR, vqgan)
    session.add_clip(BENCH_CLIP, perceptor.models[0])
    return session


def run_config(*, size: tuple[int, int] = (256, 256), cutn: int = 32, seeds: int = 1, steps: int = 8,
               warmup: int = 2, precision: str = "fp32", device: str = "cpu", tiny: bool = False,
               checkpointing: str = "auto", compile: bool = False, flops: bool = False,
               peak_tflops: float | None = None, generator: str = VQGAN) -> dict[str, Any]:
    """Time ``steps`` steps of the real run after ``warmup`` steps; returns the figures as a dict."""
    from . import engine
    from .build import build_run, resolve_checkpointing

    if device != "cpu" and torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    t_build = time.perf_counter()
    session = bench_session(device, tiny=tiny, generator=generator)
    dev = session.device
    settings = bench_settings(size=size, cutn=cutn, seeds=seeds, steps=warmup + steps, precision=precision,
                              device=device, checkpointing=checkpointing, compile=compile, generator=generator)
    run = build_run(settings, session=session)
    build_s = time.perf_counter() - t_build
    dtype = run.autocast_dtype

    stamps: list[float] = []
    cpu_stamps: list[float] = []  # process CPU time: a steadier figure than wall time on a shared machine
    losses: list[float] = []

    def callback(step: engine.Step) -> None:
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        stamps.append(time.perf_counter())
        cpu_stamps.append(time.process_time())
        losses.append(step.loss)

    stamps.append(time.perf_counter())
    cpu_stamps.append(time.process_time())
    engine.run(run, callback)
    per_step = [b - a for a, b in zip(stamps, stamps[1:])]
    timed = per_step[warmup:] or per_step
    cpu_timed = [b - a for a, b in zip(cpu_stamps, cpu_stamps[1:])][warmup:] or [cpu_stamps[-1] - cpu_stamps[0]]
    median = statistics.median(timed)
    result: dict[str, Any] = {
        "generator": generator, "size": list(size), "cutn": cutn, "seeds": seeds, "precision": precision,
        "autocast": str(dtype).replace("torch.", "") if dtype else "fp32", "device": str(dev),
        "tiny": tiny, "checkpointing": resolve_checkpointing(checkpointing, size), "compile": compile,
        "steps": len(timed), "warmup": warmup,
        "min_s_per_it": min(timed), "median_s_per_it": median, "max_s_per_it": max(timed),
        "median_cpu_s_per_it": statistics.median(cpu_timed), "threads": torch.get_num_threads(),
        "first_step_s": per_step[0], "build_s": build_s,
        "image_steps_per_s": seeds / median,
        "images_per_minute": 60.0 * seeds / (median * IMAGE_STEPS), "image_steps": IMAGE_STEPS,
        "peak_rss_mib": peak_rss_mib(), "losses": losses,
    }
    if dev.type == "cuda":
        result["peak_cuda_mib"] = torch.cuda.max_memory_allocated(dev) / 2**20
    if flops:  # after the peak was read: the counting pass holds extra state of its own
        gflop = count_step_gflop(run)
        result["gflop_per_it"] = gflop
        result["achieved_tflops"] = gflop / median / 1000
        if peak_tflops:  # model FLOPs utilisation against the peak the user gives for the device
            result["mfu"] = result["achieved_tflops"] / peak_tflops
    return result


def count_step_gflop(run) -> float:
    """GFLOP of one forward+backward of the loss (torch.utils.flop_counter: matmuls/convs/attention)."""
    from torch.utils.flop_counter import FlopCounterMode

    from . import engine

    latent = run.latent
    device_type = next(iter(latent.values())).device.type
    dtype = run.autocast_dtype
    autocast = torch.autocast(device_type, dtype=dtype) if dtype else torch.autocast(device_type, enabled=False)
    probe = {k: v.detach().clone().requires_grad_(not k.startswith("_")) for k, v in latent.items()}
    counter = FlopCounterMode(display=False)
    with counter:
        with autocast:
            loss = engine.losses(_with_latent(run, probe), 0)[0].sum()
        loss.backward()
    return counter.get_total_flops() / 1e9


def _with_latent(run, latent):
    from dataclasses import replace

    return replace(run, latent=latent)


def peak_rss_mib() -> float:
    """The process's peak resident set size so far (ru_maxrss is KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    info: dict[str, Any] = {"python": platform.python_version(), "torch": torch.__version__,
                            "platform": platform.platform(), "threads": torch.get_num_threads(),
                            "cpu_count": os.cpu_count(), "mkldnn": torch.backends.mkldnn.is_available()}
    amx = getattr(torch.cpu, "_is_amx_tile_supported", None)
    info["amx"] = bool(amx()) if amx else None
    avx512_bf16 = getattr(torch.cpu, "_is_avx512_bf16_supported", None)
    info["avx512_bf16"] = bool(avx512_bf16()) if avx512_bf16 else None
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
    except OSError:
        info["cpu"] = platform.processor()
    if hasattr(os, "getloadavg"):
        info["loadavg"] = list(os.getloadavg())
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name()
    return info


def format_row(r: dict[str, Any]) -> str:
    head = f"{r['size'][0]}x{r['size'][1]} cutn {r['cutn']:>3} seeds {r['seeds']} {r['precision']:>4} {r['device']:>4}"
    if r.get("generator", VQGAN) != VQGAN:
        head = f"{r['generator']} {head}"
    if "error" in r:
        return f"{head}  FAILED: {r['error']}"
    mem = f"peak RSS {r['peak_rss_mib']:.0f} MiB"
    if "peak_cuda_mib" in r:
        mem += f", peak CUDA {r['peak_cuda_mib']:.0f} MiB"
    text = (f"{head}  s/it min {r['min_s_per_it']:.3f} median {r['median_s_per_it']:.3f} max {r['max_s_per_it']:.3f}"
            f"  {r['images_per_minute']:.3f} img/min ({r['image_steps']} steps)  {mem}")
    if "gflop_per_it" in r:
        text += f"  {r['gflop_per_it']:.0f} GFLOP/it, {r['achieved_tflops'] * 1000:.0f} GFLOP/s"
        if "mfu" in r:
            text += f", MFU {100 * r['mfu']:.1f}%"
    return text


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="clipguide bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--size", nargs=2, type=int, metavar=("W", "H"), default=(256, 256))
    p.add_argument("--cutn", type=int, default=32)
    p.add_argument("--seeds", type=int, default=1, help="images optimised together in one batch")
    p.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16", "fp16"))
    p.add_argument("--device", default="cpu", choices=("auto", "cpu", "cuda", "mps"))
    p.add_argument("--steps", type=int, default=8, help="timed steps (after the warm-up)")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps first (allocator, oneDNN/compile caches)")
    p.add_argument("--checkpointing", default="auto", choices=CHECKPOINTING,
                   help="recompute activations in backward: the decoder's, or all (also CLIP's); auto as in runs")
    p.add_argument("--compile", action="store_true", help="torch.compile the decoder and CLIP image tower")
    p.add_argument("--flops", action="store_true", help="count GFLOP per step (torch.utils.flop_counter)")
    p.add_argument("--peak-tflops", type=float, help="the device's peak TFLOP/s at this precision, for MFU (with --flops)")
    p.add_argument("--generator", default=VQGAN, choices=generator_choices(),
                   help="what to time: the random-weight VQGAN f16_16384, or a drawer (default: vqgan)")
    p.add_argument("--tiny", action="store_true", help="test-size models of the same architectures")
    p.add_argument("--quality", action="store_true",
                   help="instead of timing: loss curves and steering rates on the demo models, "
                        "for --precisions against fp32 (--steps steps, --seeds images per colour)")
    p.add_argument("--json", type=Path, help="write the figures (with the machine description) here")
    p.add_argument("--quiet", action="store_true")
    g = p.add_argument_group("grid (opt-in: every point runs in its own process, slow on a CPU)")
    g.add_argument("--grid", action="store_true")
    g.add_argument("--sizes", nargs="+", type=int, default=list(GRID_SIZES))
    g.add_argument("--cutns", nargs="+", type=int, default=list(GRID_CUTN))
    g.add_argument("--seed-counts", nargs="+", type=int, default=list(GRID_SEEDS))
    g.add_argument("--precisions", nargs="+", default=["fp32", "bf16"], choices=("auto", "fp32", "bf16", "fp16"))
    g.add_argument("--devices", nargs="+", default=["cpu"], choices=("auto", "cpu", "cuda", "mps"))
    ns = p.parse_args(list(argv))
    if ns.steps < 1 or ns.warmup < 0 or ns.cutn < 1 or ns.seeds < 1:
        p.error("--steps, --cutn and --seeds must be at least 1 and --warmup at least 0")
    return ns


def main(argv: Sequence[str] | None = None) -> int:
    ns = parse_args(sys.argv[1:] if argv is None else argv)
    if ns.quality:
        from .bench_quality import quality_check

        precisions = ["fp32", *(p for p in ns.precisions if p != "fp32")]  # fp32 is the reference
        payload = {"machine": machine(),
                   "quality": quality_check(precisions, steps=ns.steps, seeds=ns.seeds, device=ns.device)}
        if not ns.quiet:
            for name, q in payload["quality"]["precisions"].items():
                print(f"{name:>4}: loss {q['mean_curve'][0]:.4f} -> {q['mean_curve'][-1]:.4f}, "
                      f"mean/max rel. diff to fp32 {q['mean_rel_diff']:.4f}/{q['max_rel_diff']:.4f}, "
                      f"steering {q['steering_hits']}/{q['steering_trials']}, {q['seconds']:.1f} s", flush=True)
    elif ns.grid:
        from .bench_grid import run_grid

        rows = run_grid(ns)
        payload: dict[str, Any] = {"machine": machine(), "results": rows}
    else:
        row = run_config(size=tuple(ns.size), cutn=ns.cutn, seeds=ns.seeds, steps=ns.steps, warmup=ns.warmup,
                         precision=ns.precision, device=ns.device, tiny=ns.tiny, checkpointing=ns.checkpointing,
                         compile=ns.compile, flops=ns.flops, peak_tflops=ns.peak_tflops, generator=ns.generator)
        if not ns.quiet:
            print(format_row(row), flush=True)
        payload = {"machine": machine(), **row}
    if ns.json:
        ns.json.parent.mkdir(parents=True, exist_ok=True)
        ns.json.write_text(json.dumps(payload, indent=2, default=_json_default) + "\n", encoding="utf-8")
    return 0 if all("error" not in r for r in payload.get("results", [payload])) else 1


def _json_default(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return str(value)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
