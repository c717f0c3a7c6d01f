"""``clipguide bench --grid``: every (size, cutn, seeds, precision, device) point in its own process.

Peak RSS comes from ``getrusage``, a process-lifetime maximum, so each point runs as a fresh
``python -m clipguide.bench`` and reports through a JSON file; a point that fails becomes a row
with its last error line instead of ending the grid.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

def _point_argv(ns: argparse.Namespace, size: int, cutn: int, seeds: int, precision: str, device: str,
                out: Path) -> list[str]:
    argv = [sys.executable, "-m", "clipguide.bench", "--size", str(size), str(size), "--cutn", str(cutn),
            "--seeds", str(seeds), "--precision", precision, "--device", device, "--steps", str(ns.steps),
            "--warmup", str(ns.warmup), "--generator", ns.generator, "--json", str(out), "--quiet"]
    argv += ["--checkpointing", ns.checkpointing]
    for flag in ("tiny", "compile", "flops"):
        if getattr(ns, flag):
            argv.append(f"--{flag}")
    if ns.peak_tflops:
        argv += ["--peak-tflops", str(ns.peak_tflops)]
    return argv


def run_grid(ns: argparse.Namespace) -> list[dict[str, Any]]:
    """Every (size, cutn, seeds, precision, device) point in its own subprocess (own peak RSS)."""
    import tempfile

    from .bench import format_row

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


__all__ = ["run_grid"]
