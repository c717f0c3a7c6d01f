"""Describers: image → caption, the other half of the telephone loop.

A describer is any object with ``describe(images) -> list[str]`` (``images``: (B,3,H,W) floats in
[0,1] on the CPU, one caption per image) and an ``about`` line for the records. It is made by a
factory ``(DescriberContext) -> Describer`` registered in :data:`clipguide.registry.DESCRIBERS`:

* ``clip`` (:mod:`.clip_describer`): ranks the phrases of a vocabulary with the run's CLIP models,
  the way CLIP interrogators do;
* ``blip`` (:mod:`.captioner`): a captioning model through ``transformers``;
* your own: ``DESCRIBERS.register("mine", lambda context: CallableDescriber(my_function))`` where
  ``my_function(pil_images) -> captions``; or, from the command line, ``--describer module:function``
  naming such a factory.

Captions are cleaned (:func:`clean_caption`) so that the next round reads them as one plain
prompt: the prompt syntax's ``|``, ``^`` and ``:`` never reach it.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from ..errors import UserError
from .settings import TelephoneSettings

if TYPE_CHECKING:  # keeps `clipguide telephone --help` free of torch
    import torch


@runtime_checkable
class Describer(Protocol):
    #: one line saying what describes the images (written into every round's record)
    about: str

    def describe(self, images: torch.Tensor) -> list[str]:
        """(B,3,H,W) in [0,1] on the CPU → one caption per image."""
        ...


@dataclass
class DescriberContext:
    """What a describer factory may use: the run's settings, the loop's settings, the loaded models."""

    settings: Any  # the image Settings (resolved), whose CLIP models a describer may share
    telephone: TelephoneSettings
    session: Any  # clipguide.session.Session: loaded models, device, offline


class CallableDescriber:
    """A describer from any function ``(list of PIL images) -> list of captions``."""

    def __init__(self, function: Callable[[list], Sequence[str]], about: str | None = None) -> None:
        self.function = function
        self.about = about or f"the function {getattr(function, '__qualname__', repr(function))}"

    def describe(self, images: torch.Tensor) -> list[str]:
        from ..output import to_pil

        captions = list(self.function(to_pil(images)))
        if len(captions) != images.shape[0]:
            raise RuntimeError(f"{self.about} returned {len(captions)} captions for {images.shape[0]} images")
        return captions


def load_describer(context: DescriberContext) -> Describer:
    """The describer the telephone settings name, built; a one-line UserError if it cannot be."""
    from ..registry import DESCRIBERS

    name = context.telephone.describer
    if ":" in name:
        factory = _import(name)
    else:
        try:
            factory = DESCRIBERS.get(name)
        except ImportError as e:
            raise UserError(f"describer {name!r} cannot be loaded: {e}") from None
    describer = factory(context)
    if not callable(getattr(describer, "describe", None)):
        raise UserError(f"describer {name!r} cannot be loaded: its factory returned {type(describer).__name__}, "
                        "which has no describe(images) method")
    if not getattr(describer, "about", ""):
        describer.about = name
    return describer


def _import(spec: str) -> Callable[[DescriberContext], Describer]:
    module, _, attribute = spec.partition(":")
    try:
        factory = getattr(importlib.import_module(module.strip()), attribute.strip())
    except (ImportError, AttributeError) as e:
        raise UserError(f"describer {spec!r} cannot be loaded: {e}") from None
    if not callable(factory):
        raise UserError(f"describer {spec!r} cannot be loaded: {attribute} is not a function")
    return factory


def clean_caption(text: str, max_chars: int = 300) -> str:
    """One line of plain text that the prompt parser reads as a single prompt of weight 1."""
    text = re.sub(r"[|^:]+", ",", str(text))
    text = " ".join(text.split()).strip(" ,;.")
    text = re.sub(r"\s*,\s*(,\s*)*", ", ", text)
    return text[:max_chars].rstrip(" ,") or "an image"


__all__ = ["Describer", "DescriberContext", "CallableDescriber", "load_describer", "clean_caption"]
