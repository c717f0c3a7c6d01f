"""Every pluggable part of clipguide by name: one registry line per generator kind, optimiser,
augmentation, loss term, cutout method and describer.

Settings choices, CLI choices, web UI dropdowns and "did you mean …?" errors all read these
tables, so a new part is one new file plus one line here. Entries are ``"module:attribute"``
strings, imported only when the part is used: reading the names costs nothing, which keeps
``import clipguide`` and ``clipguide --help`` free of torch. A plugin (or a test) may register
an object directly: ``LOSSES.register("brightness", Brightness)``.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping
from typing import Any

from .errors import unknown


class Registry:
    """An ordered name → part table whose parts are imported on first use."""

    def __init__(self, kind: str, entries: Mapping[str, Any] | None = None, **info: Mapping[str, Any]) -> None:
        self.kind = kind
        self._entries: dict[str, Any] = dict(entries or {})
        #: light facts about each entry that callers need without importing it (e.g. weight roles)
        self.info: dict[str, dict[str, Any]] = {name: dict(facts) for name, facts in info.items()}

    def register(self, name: str, target: Any, **facts: Any) -> Any:
        """Add (or replace) an entry; returns ``target`` so it can be used as a decorator's result."""
        self._entries[name] = target
        if facts:
            self.info[name] = dict(facts)
        return target

    def unregister(self, name: str) -> None:
        self._entries.pop(name, None)
        self.info.pop(name, None)

    def names(self) -> tuple[str, ...]:
        return tuple(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def check(self, name: str) -> str:
        """``name`` if registered, else the one-line "unknown … did you mean" UserError."""
        if name not in self._entries:
            raise unknown(self.kind, name, self._entries)
        return name

    def get(self, name: str) -> Any:
        """The registered part, imported on first use."""
        target = self._entries[self.check(name)]
        if isinstance(target, str):
            module, _, attribute = target.partition(":")
            target = getattr(importlib.import_module(module), attribute)
            self._entries[name] = target
        return target


#: Generator kinds. ``roles``/``optional_roles``: the files a manifest entry of that kind lists
#: (a VQGAN .safetensors carries its config, a .ckpt needs its model.yaml); ``weights``: False for
#: drawers that are built from settings alone (no checkpoint).
GENERATORS = Registry("generator kind", {
    "vqgan": "clipguide.generators.vqgan_files:KIND",
    "biggan": "clipguide.generators.biggan_files:KIND",
    "pixel": "clipguide.generators.pixel:KIND",
    "fft": "clipguide.generators.fft:KIND",
}, vqgan={"roles": ("checkpoint",), "optional_roles": ("config",), "weights": True},
   biggan={"roles": ("config", "weights"), "weights": True}, pixel={"weights": False}, fft={"weights": False})

OPTIMIZERS = Registry("optimizer", {
    "adam": "clipguide.optimizers:adam",
    "adamw": "clipguide.optimizers:adamw",
    "sgd": "clipguide.optimizers:sgd",
})

#: Cutout augmentations, applied in this order whatever order the user lists them in.
AUGMENTS = Registry("augment", {
    "flip": "clipguide.augments:flip",
    "sharpness": "clipguide.augments:sharpness",
    "affine": "clipguide.augments:affine",
    "perspective": "clipguide.augments:perspective",
    "jitter": "clipguide.augments:jitter",
    "erasing": "clipguide.augments:erasing",
    "noise": "clipguide.augments:noise",
})

#: Loss terms a user can add with ``--loss NAME[:WEIGHT]`` (the prompt, prior and init terms are
#: built from their own settings and are not listed here). ``needs``: settings that must be set for
#: the term to be used (checked with the other settings, before any model loads).
LOSSES = Registry("loss", {
    "symmetry": "clipguide.losses.symmetry:Symmetry",
    "smoothness": "clipguide.losses.smoothness:Smoothness",
    "saturation": "clipguide.losses.saturation:Saturation",
    "palette": "clipguide.losses.palette:PaletteLoss",
    "edge": "clipguide.losses.edge:Edge",
    "mse-latent": "clipguide.losses.mse_latent:LatentMSE",
}, palette={"needs": ("palette",)})

#: Telephone describers (image → caption): a factory ``(DescriberContext) -> Describer`` each
#: (clipguide.telephone.describe). "clip" ranks vocabulary phrases with the run's CLIP models.
DESCRIBERS = Registry("describer", {
    "clip": "clipguide.telephone.clip_describer:build",
    "blip": "clipguide.telephone.captioner:build_blip",
})
#: How an animation's frame follows the last (``clipguide animate --mode``): a subclass of
#: :class:`clipguide.animation.modes.Mode` in its own module.
ANIMATION_MODES = Registry("animation mode", {
    "2d": "clipguide.animation.motion:Motion2D",
    "video": "clipguide.animation.video:VideoStyle",
})

#: Kinds of job a ``clipguide batch`` file may list (``kind = "…"``): a class with ``from_values`` and the
#: task methods (:mod:`clipguide.batch.jobs`).
JOBS = Registry("batch job kind", {
    "generate": "clipguide.batch.jobs:GenerateJob",
    "animate": "clipguide.batch.jobs:AnimateJob",
})

__all__ = ["Registry", "GENERATORS", "OPTIMIZERS", "AUGMENTS", "LOSSES", "DESCRIBERS", "ANIMATION_MODES", "JOBS"]
