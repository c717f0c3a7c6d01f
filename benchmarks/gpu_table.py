"""Every GPU figure in one run: s/it, images per minute, peak memory and MFU of the real loop.

    bash benchmarks/gpu.sh                      # on a GPU machine: the table below, about 5-8 minutes
    bash benchmarks/gpu.sh --device cpu --quick # anywhere: the same script on test-size models

Configurations (the real-size random-weight models of ``clipguide bench``, bf16 autocast): 256 and
512 px, cutn 32 and 64, 1 and 8 seeds in a batch, ``torch.compile`` off and on, the pixel and fft
drawers at 256/32, and frames per minute of ``clipguide animate`` (256 px, 20 steps a frame).
MFU is the counted FLOPs per step (torch.utils.flop_counter) over the time, against the device's
dense bf16 peak (``--peak-tflops``; known GPUs are looked up). Prints a Markdown table; ``--json``
writes every row. Configurations are run in order of cost and skipped (said so in the table) once
``--budget`` seconds are spent, so the run always ends in time. ``--quick`` leaves out the compile
rows: compiling even the test-size models takes minutes on a small CPU and proves nothing there.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))  # animate_bench beside this script
from clipguide import bench  # noqa: E402

#: dense bf16 tensor-core peaks (TFLOP/s) of GPUs people run this on, by a name fragment
PEAKS = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "L40S": 362.0, "L4": 121.0, "A10": 125.0, "4090": 165.0,
         "3090": 71.0, "T4": 65.0, "V100": 125.0}

FULL = [  # (size, cutn, seeds, compile, generator)
    (256, 32, 1, False, "vqgan"), (256, 64, 1, False, "vqgan"), (512, 32, 1, False, "vqgan"),
    (512, 64, 1, False, "vqgan"), (256, 32, 8, False, "vqgan"), (512, 32, 8, False, "vqgan"),
    (256, 64, 8, False, "vqgan"), (512, 64, 8, False, "vqgan"), (256, 32, 1, False, "pixel"),
    (256, 32, 1, False, "fft"), (512, 32, 1, True, "vqgan"), (256, 32, 8, True, "vqgan"),
]
QUICK = [(32, 4, 1, False, "vqgan"), (32, 8, 1, False, "vqgan"), (32, 4, 2, False, "vqgan"), (32, 4, 1, False, "pixel")]


def peak_for(device: str) -> float | None:
    import torch

    if not device.startswith("cuda") or not torch.cuda.is_available():
        return None
    name = torch.cuda.get_device_name()
    return next((peak for key, peak in PEAKS.items() if key in name), None)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cuda")
    p.add_argument("--quick", action="store_true", help="test-size models and sizes (checks the script anywhere)")
    p.add_argument("--steps", type=int, default=None, help="timed steps per configuration (default 10; quick 2)")
    p.add_argument("--peak-tflops", type=float, default=None, help="the device's dense bf16 peak, for MFU")
    p.add_argument("--budget", type=float, default=420.0, help="seconds after which remaining rows are skipped")
    p.add_argument("--json", default="gpu_results.json")
    ns = p.parse_args(argv)
    configs = QUICK if ns.quick else FULL
    steps = ns.steps or (2 if ns.quick else 10)
    peak = ns.peak_tflops or peak_for(ns.device)
    start, rows = time.perf_counter(), []
    for size, cutn, seeds, compiled, generator in configs:
        head = {"size": [size, size], "cutn": cutn, "seeds": seeds, "compile": compiled, "generator": generator}
        if time.perf_counter() - start > ns.budget:
            rows.append({**head, "skipped": "budget"})
            continue
        try:
            row = bench.run_config(size=(size, size), cutn=cutn, seeds=seeds, steps=steps, warmup=2 if compiled else 1,
                                   precision="bf16", device=ns.device, tiny=ns.quick,
                                   compile=compiled, flops=True, peak_tflops=peak, generator=generator)
        except Exception as e:  # an out-of-memory row is a figure too; keep going
            row = {**head, "error": str(e).splitlines()[0][:120]}
        rows.append(row)
        print(_line(row), flush=True)
    animation = None
    if not ns.quick and time.perf_counter() - start < ns.budget:
        animation = _animation(ns.device)
        print(f"animate 256 px, 20 steps a frame: {animation['frames_per_minute']} frames/min", flush=True)
    print()
    print(table(rows, peak))
    if animation:
        print(f"\n`clipguide animate` at 256x256, cutn {animation['cutn']}, {animation['steps_per_frame']} steps a "
              f"frame, {animation['precision']}: **{animation['frames_per_minute']} frames/min**")
    Path(ns.json).write_text(json.dumps({"machine": bench.machine(), "peak_tflops": peak, "rows": rows,
                                         "animation": animation}, indent=2, default=str) + "\n", encoding="utf-8")
    print(f"\nwrote {ns.json} ({time.perf_counter() - start:.0f} s)")
    return 0


def _animation(device: str) -> dict:
    """Frames per minute of the product's frame loop on the real-size models (benchmarks/animate_bench.py)."""
    from animate_bench import real

    return real(frames=3, device=device, size=256, first_steps=2)


def _line(row: dict) -> str:
    head = f"{row['generator']} {row['size'][0]} px cutn {row['cutn']} seeds {row['seeds']} compile {row['compile']}"
    if "error" in row or "skipped" in row:
        return f"{head}: {row.get('error') or 'skipped (time budget)'}"
    return f"{head}: {row['median_s_per_it']:.4f} s/it"


def table(rows: list[dict], peak: float | None) -> str:
    lines = ["| generator | size | cutn | seeds | compile | s/it | images/min (400 steps) | peak memory MiB | GFLOP/it | TFLOP/s | MFU |",
             "|---|---:|---:|---:|:---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lead = f"| {r['generator']} | {r['size'][0]} | {r['cutn']} | {r['seeds']} | {'yes' if r['compile'] else 'no'} |"
        if "error" in r or "skipped" in r:
            lines.append(f"{lead} {r.get('error') or 'skipped: time budget'} | | | | | |")
            continue
        memory = r.get("peak_cuda_mib", r["peak_rss_mib"])
        mfu = f"{100 * r['mfu']:.1f}%" if "mfu" in r else "n/a" if peak is None else ""
        lines.append(f"{lead} {r['median_s_per_it']:.4f} | {r['images_per_minute']:.1f} | {memory:.0f} | "
                     f"{r['gflop_per_it']:.0f} | {r['achieved_tflops']:.2f} | {mfu} |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
