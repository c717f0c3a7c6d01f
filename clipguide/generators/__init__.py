"""Generators, and the one function that turns a user's ``--generator`` value into one.

A spec is one of, tried in this order:

* a generator kind that needs no checkpoint (a drawer such as ``pixel``), built from the settings;
* a weights-manifest name (downloaded and verified through :mod:`clipguide.weights`; ``demo`` is
  a manifest entry whose files ship with clipguide);
* a local file or folder, recognised by each registered kind's ``detect``.

Kinds come from :data:`clipguide.registry.GENERATORS`; each kind's options object (BigGAN's
truncation, classes, …) is read from the settings and is part of the model cache key.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ..errors import UserError, unknown
from ..registry import GENERATORS
from .base import Generator, GeneratorKind, Latent

__all__ = ["Generator", "GeneratorKind", "Latent", "load_generator", "resolve", "kind_of"]


def kind_of(name: str) -> GeneratorKind:
    return GENERATORS.get(name)


def resolve(spec: str, settings: Any) -> tuple[str, Any]:
    """(kind name, options) of the generator a spec names, without loading it (the cache key)."""
    kind = _kind_name(spec)
    return kind, kind_of(kind).options_from(settings)


def _kind_name(spec: str) -> str:
    from .. import weights

    if spec in GENERATORS and not GENERATORS.info.get(spec, {}).get("weights", True):
        return spec
    manifest = weights.load_manifest()
    if spec in manifest:
        return manifest[spec].kind
    local = Path(spec).expanduser()
    if local.exists():
        for name in GENERATORS:
            detect = kind_of(name).detect
            if detect is not None and detect(local):
                return name
        layouts = "; or ".join(kind_of(n).layout for n in GENERATORS if kind_of(n).layout)
        raise UserError(f"cannot tell what generator {local} is: give {layouts}")
    if "/" in spec or "\\" in spec or local.suffix:
        raise UserError(f"generator file or folder {spec} does not exist: check the path (setting generator)")
    drawers = [n for n in GENERATORS if not GENERATORS.info.get(n, {}).get("weights", True)]
    raise unknown("generator", spec, [*drawers, *manifest])


def load_generator(spec: str, device: torch.device | str, settings: Any = None, *, offline: bool = False,
                   progress: bool = True) -> Generator:
    """Build the generator a spec names, on ``device``; its options come from ``settings``."""
    from .. import weights
    from ..settings import Settings

    settings = settings if settings is not None else Settings()
    name, options = resolve(spec, settings)
    kind = kind_of(name)
    if kind.build is not None and spec == name:
        return kind.build(device, options)
    manifest = weights.load_manifest()
    if spec in manifest:
        files = weights.fetch(spec, offline=offline, progress=progress)
        return kind.from_files(files, device, options)
    return kind.from_path(Path(spec).expanduser(), device, options)
