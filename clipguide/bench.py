"""``clipguide bench``: seconds per step, images per minute and peak memory of the real loop.

No checkpoint can be assumed (CI machines have no network), and timing does not depend on
weight values, so the benchmark builds the *real-size* architectures with random weights — VQGAN
ImageNet f16_16384 (taming's published ddconfig) and open_clip ``ViT-B-32`` — hands them to a
:class:`~clipguide.session.Session`, and runs the product's own run on them: settings →
:func:`clipguide.build.build_run` → :func:`clipguide.engine.run`, exactly what ``generate`` does.
``--tiny`` swaps in test-size models (for tests).

Peak RSS comes from ``getrusage``, which is a process-lifetime maximum, so a grid runs every
configuration in its own subprocess; a single configuration runs in-process.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from .presets import demo_settings
from .settings import Settings

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


def build_models(device: torch.device, *, tiny: bool = False, seed: int = 0):
    """(generator, perceptor) of the real architectures with random weights, frozen, on ``device``."""
    import open_clip

    from .generators.vqgan import VQGANGenerator
    from .perceptor import Perceptor, wrap_clip

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        generator = VQGANGenerator.from_config(TINY_VQGAN if tiny else VQGAN_F16_16384)
        with torch.no_grad():  # taming's tiny uniform codebook init makes every code alike
            generator.codebook.normal_()
        if tiny:
            clip = open_clip.CLIP(**TINY_CLIP_CFG)
        else:
            clip = open_clip.create_model(CLIP_ARCH, pretrained=None)
    generator = generator.to(device)
    return generator, Perceptor([wrap_clip(CLIP_ARCH, clip, CLIP_ARCH, device)])


#: The specs the benchmark's random-weight models are known by in its session.
BENCH_GENERATOR, BENCH_CLIP = "bench:vqgan_f16_16384", "bench:ViT-B-32"


def bench_settings(*, size: tuple[int, int] = (256, 256), cutn: int = 32, seeds: int = 1, steps: int = 10,
                   precision: str = "fp32", device: str = "cpu", checkpointing: bool = False) -> Settings:
    """What the benchmark runs: the defaults users get (augments, optimiser, lr), at the asked size."""
    return Settings(prompt=PROMPT, generator=BENCH_GENERATOR, clip=(BENCH_CLIP,), size=size, cutn=cutn, seeds=seeds,
                    steps=steps, precision=precision, device=device, checkpointing=checkpointing)


def bench_session(device: str, *, tiny: bool = False):
    """A session whose generator and CLIP are the real architectures with random weights."""
    from .session import Session

    session = Session(device)
    generator, perceptor = build_models(session.device, tiny=tiny)
    session.add_generator(BENCH_GENERATOR, generator)
    session.add_clip(BENCH_CLIP, perceptor.models[0])
    return session


def run_config(*, size: tuple[int, int] = (256, 256), cutn: int = 32, seeds: int = 1, steps: int = 8,
               warmup: int = 2, precision: str = "fp32", device: str = "cpu", tiny: bool = False,
               checkpointing: bool = False, compile: bool = False, flops: bool = False,
               peak_tflops: float | None = None) -> dict[str, Any]:
    """Time ``steps`` steps of the real run after ``warmup`` steps; returns the figures as a dict."""
    from . import engine
    from .build import build_run, prepare_models

    if device != "cpu" and torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    t_build = time.perf_counter()
    session = bench_session(device, tiny=tiny)
    dev = session.device
    settings = bench_settings(size=size, cutn=cutn, seeds=seeds, steps=warmup + steps, precision=precision,
                              device=device, checkpointing=checkpointing)
    run = build_run(settings, session=session)
    if compile:
        prepare_models(run.generator, run.perceptor, dev, checkpointing=checkpointing, compile=True)
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
        "size": list(size), "cutn": cutn, "seeds": seeds, "precision": precision,
        "autocast": str(dtype).replace("torch.", "") if dtype else "fp32", "device": str(dev),
        "tiny": tiny, "checkpointing": checkpointing, "compile": compile,
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


QUALITY_BACKGROUNDS = ("red", "blue", "green", "yellow")


def quality_check(precisions: Sequence[str] = ("fp32", "bf16", "fp16"), *, steps: int = 30, seeds: int = 4,
                  size: int = 64, cutn: int = 16, device: str = "cpu") -> dict[str, Any]:
    """Loss curves and steering rates of each precision on the shipped demo models, against fp32.

    For each background colour, ``seeds`` images are steered toward "a <colour> background" with
    the product's ``generate``; per step the mean loss is recorded, and at the end the demo judge
    (pixel statistics, not CLIP) names each image's background. Same seeds for every precision.
    """
    import numpy as np

    from . import api
    from .demo.judge import background_name

    session = api.Session(device)
    demo = {k: v for k, v in demo_settings().items() if k in ("generator", "clip")}
    curves: dict[str, list[list[float]]] = {p: [] for p in precisions}
    hits: dict[str, int] = {p: 0 for p in precisions}
    seconds: dict[str, float] = {p: 0.0 for p in precisions}
    for colour in QUALITY_BACKGROUNDS:
        settings = Settings(prompt=f"a {colour} background", **demo, size=(size, size),
                            steps=steps, cutn=cutn, seeds=seeds, seed=0, device=device)
        for precision in precisions:
            curve: list[float] = []
            start = time.perf_counter()
            result = api.generate(settings.replace(precision=precision), lambda s: curve.append(s.loss / seeds),
                                  session=session)
            seconds[precision] += time.perf_counter() - start
            curves[precision].append(curve)
            pixels = (result.images.permute(0, 2, 3, 1).numpy() * 255.0).astype(float)
            hits[precision] += sum(background_name(img) == colour for img in pixels)
    reference = np.array(curves[precisions[0]])
    out: dict[str, Any] = {"steps": steps, "seeds": seeds, "size": size, "cutn": cutn,
                           "backgrounds": list(QUALITY_BACKGROUNDS), "reference": precisions[0], "precisions": {}}
    for precision in precisions:
        c = np.array(curves[precision])
        rel = np.abs(c - reference) / np.abs(reference)
        out["precisions"][precision] = {
            "mean_curve": c.mean(0).round(5).tolist(),
            "max_rel_diff": float(rel.max()), "mean_rel_diff": float(rel.mean()),
            "final_rel_diff": float(np.abs(c[:, -1].mean() - reference[:, -1].mean()) / abs(reference[:, -1].mean())),
            "loss_drop": float(c[:, 0].mean() - c[:, -1].mean()),
            "steering_hits": int(hits[precision]), "steering_trials": len(QUALITY_BACKGROUNDS) * seeds,
            "seconds": seconds[precision],
        }
    return out


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


def _point_argv(ns: argparse.Namespace, size: int, cutn: int, seeds: int, precision: str, device: str,
                out: Path) -> list[str]:
    argv = [sys.executable, "-m", "clipguide.bench", "--size", str(size), str(size), "--cutn", str(cutn),
            "--seeds", str(seeds), "--precision", precision, "--device", device, "--steps", str(ns.steps),
            "--warmup", str(ns.warmup), "--json", str(out), "--quiet"]
    for flag in ("tiny", "checkpointing", "compile", "flops"):
        if getattr(ns, flag):
            argv.append(f"--{flag}")
    if ns.peak_tflops:
        argv += ["--peak-tflops", str(ns.peak_tflops)]
    return argv


def run_grid(ns: argparse.Namespace) -> list[dict[str, Any]]:
    """Every (size, cutn, seeds, precision, device) point in its own subprocess (own peak RSS)."""
    import tempfile

    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for device in ns.devices:
            for precision in ns.precisions:
                for size in ns.sizes:
                    for cutn in ns.cutns:
                        for seeds in ns.seed_counts:
                            out = Path(tmp) / f"{len(results)}.json"
                            argv = _point_argv(ns, size, cutn, seeds, precision, device, out)
                            proc = subprocess.run(argv, capture_output=True, text=True)
                            if proc.returncode != 0 or not out.is_file():
                                tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
                                row = {"size": [size, size], "cutn": cutn, "seeds": seeds, "precision": precision,
                                       "device": device, "error": tail}
                            else:
                                row = json.loads(out.read_text())
                            results.append(row)
                            if not ns.quiet:
                                print(format_row(row), flush=True)
    return results


def format_row(r: dict[str, Any]) -> str:
    head = f"{r['size'][0]}x{r['size'][1]} cutn {r['cutn']:>3} seeds {r['seeds']} {r['precision']:>4} {r['device']:>4}"
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
    p.add_argument("--checkpointing", action="store_true", help="gradient checkpointing in the VQGAN decoder")
    p.add_argument("--compile", action="store_true", help="torch.compile the decoder and CLIP image tower")
    p.add_argument("--flops", action="store_true", help="count GFLOP per step (torch.utils.flop_counter)")
    p.add_argument("--peak-tflops", type=float, help="the device's peak TFLOP/s at this precision, for MFU (with --flops)")
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
        precisions = ["fp32", *(p for p in ns.precisions if p != "fp32")]  # fp32 is the reference
        payload = {"machine": machine(),
                   "quality": quality_check(precisions, steps=ns.steps, seeds=ns.seeds, device=ns.device)}
        if not ns.quiet:
            for name, q in payload["quality"]["precisions"].items():
                print(f"{name:>4}: loss {q['mean_curve'][0]:.4f} -> {q['mean_curve'][-1]:.4f}, "
                      f"mean/max rel. diff to fp32 {q['mean_rel_diff']:.4f}/{q['max_rel_diff']:.4f}, "
                      f"steering {q['steering_hits']}/{q['steering_trials']}, {q['seconds']:.1f} s", flush=True)
    elif ns.grid:
        rows = run_grid(ns)
        payload: dict[str, Any] = {"machine": machine(), "results": rows}
    else:
        row = run_config(size=tuple(ns.size), cutn=ns.cutn, seeds=ns.seeds, steps=ns.steps, warmup=ns.warmup,
                         precision=ns.precision, device=ns.device, tiny=ns.tiny, checkpointing=ns.checkpointing,
                         compile=ns.compile, flops=ns.flops, peak_tflops=ns.peak_tflops)
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
