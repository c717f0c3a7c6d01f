"""Offline demo models trained on a procedural shapes world (see clipguide.demo.shapes).

The weights live in `weights/demo/` (inside an installed wheel: `clipguide/_data/weights/demo`) (trained by scripts/train_demo.py):
`clip/` and `clip-wide/` (open_clip hub layout, load with "local-dir:<DEMO_DIR>/clip") and
`vqgan.safetensors` (clipguide-vqgan format). ``clip`` is the demo's CLIP; ``clip-wide`` (twice the
vision width) tells a circle from a square, and guides shape together with ``clip``. The steering
judge (clipguide.demo.judge) reads pixels and has no weights.
"""

from __future__ import annotations

from pathlib import Path

from ..weights import data_dir

DEMO_DIR: Path = data_dir("weights") / "demo"
CLIP_DIR: Path = DEMO_DIR / "clip"
WIDE_CLIP_DIR: Path = DEMO_DIR / "clip-wide"
VQGAN_PATH: Path = DEMO_DIR / "vqgan.safetensors"
#: --clip spec → folder of each shipped demo CLIP
DEMO_CLIPS: dict[str, Path] = {"demo": CLIP_DIR, "demo-wide": WIDE_CLIP_DIR}

__all__ = ["DEMO_DIR", "CLIP_DIR", "WIDE_CLIP_DIR", "VQGAN_PATH", "DEMO_CLIPS"]
