"""Offline demo models trained on a procedural shapes world (see clipguide.demo.shapes).

The weights live in `weights/demo/` (inside an installed wheel: `clipguide/_data/weights/demo`) (trained by scripts/train_demo.py):
`clip/` (open_clip hub layout, load with "local-dir:<DEMO_DIR>/clip") and `vqgan.safetensors`
(clipguide-vqgan format). The steering judge (clipguide.demo.judge) reads pixels and has no weights.
"""

from __future__ import annotations

from pathlib import Path

from ..weights import data_dir

DEMO_DIR: Path = data_dir("weights") / "demo"
CLIP_DIR: Path = DEMO_DIR / "clip"
VQGAN_PATH: Path = DEMO_DIR / "vqgan.safetensors"

__all__ = ["DEMO_DIR", "CLIP_DIR", "VQGAN_PATH"]
