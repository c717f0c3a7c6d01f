"""Generators and the one function that turns a user's ``--generator`` value into one.

A spec is a weights-manifest name (downloaded and verified through :mod:`clipguide.weights`),
``demo`` (the shipped shapes-world VQGAN), or a local path: a VQGAN ``model.ckpt`` with its
``model.yaml`` beside it, a clipguide ``.safetensors`` file, a folder holding either of those, or a
BigGAN folder with ``config.json`` + ``pytorch_model.bin``.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..errors import UserError, unknown
from ..settings import Settings
from .base import Generator, Latent

__all__ = ["Generator", "Latent", "load_generator", "DEMO"]

DEMO = "demo"


def load_generator(spec: str, device: torch.device | str, settings: Settings | None = None, *,
                   offline: bool = False, progress: bool = True) -> Generator:
    """Build the generator a spec names, on ``device``; BigGAN knobs come from ``settings``."""
    from .. import weights

    settings = settings or Settings()
    if spec == DEMO:
        from ..demo import VQGAN_PATH as path

        if not path.is_file():
            raise UserError(f"the demo VQGAN is missing: expected {path} (reinstall clipguide)")
        return _vqgan(path, None, device)
    local = Path(spec).expanduser()
    if local.exists():
        return _from_path(local, device, settings)
    manifest = weights.load_manifest()
    if spec not in manifest:
        if "/" in spec or "\\" in spec or local.suffix:
            raise UserError(f"generator file or folder {spec} does not exist: check the path")
        raise unknown("generator", spec, [DEMO, *manifest])
    entry = manifest[spec]
    files = weights.fetch(spec, offline=offline, progress=progress)
    if entry.kind == "vqgan":
        return _vqgan(files["checkpoint"], files["config"], device)
    if entry.kind == "biggan":
        return _biggan(files["weights"].parent, device, settings)
    raise UserError(f"manifest entry {spec!r} has kind {entry.kind!r}, which no generator handles")


def _from_path(path: Path, device, settings: Settings) -> Generator:
    from .biggan import looks_like_biggan

    if looks_like_biggan(path):
        return _biggan(path, device, settings)
    if path.is_dir():
        for name in ("model.safetensors", "vqgan.safetensors", "model.ckpt"):
            if (path / name).is_file():
                return _vqgan(path / name, None, device)
        raise UserError(f"folder {path} holds no generator: expected model.ckpt + model.yaml (VQGAN) "
                        "or config.json + pytorch_model.bin (BigGAN)")
    if path.suffix in (".safetensors", ".ckpt"):
        return _vqgan(path, None, device)  # a .ckpt finds its YAML beside it (or says where to put it)
    raise UserError(f"cannot tell what generator {path} is: give a VQGAN .ckpt (with its .yaml beside it), "
                    "a .safetensors file, or a BigGAN folder")


def _vqgan(path: Path, config: Path | None, device) -> Generator:
    from .vqgan import load_vqgan

    return load_vqgan(path, config, device)


def _biggan(folder: Path, device, settings: Settings) -> Generator:
    from .biggan import from_settings

    return from_settings(folder, device, settings)
