"""Loss terms: what the engine adds up each step.

A term is an object with a ``name``, a ``weight`` schedule (step → float) and a ``__call__`` that
takes the step's :class:`State` and returns one value per image, shape (B,), so every image of a
batch stays independent of the others (image k of a batch is a single run with seed ``seed + k``).
The engine computes ``Σ weight(i) · term(state)`` and skips a term whose weight is 0 at that step.

Built from the settings by :func:`clipguide.build.build_terms`: the CLIP prompt term
(:mod:`.prompt`), the generator's own prior (:mod:`.prior`), the init-image term (:mod:`.init`),
and every ``--loss NAME[:WEIGHT]`` from :data:`clipguide.registry.LOSSES`. A new term is one class
(a subclass of :class:`LossTerm`) in one new file plus one registry line.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import torch

from ..schedules import Constant, Schedule

if TYPE_CHECKING:
    from ..generators.base import Generator, Latent


@dataclass
class State:
    """What a term sees at one step."""

    i: int  # 0-based step index (global: an animation's later frames continue the count)
    images: torch.Tensor  # (B,3,H,W) in [0,1], differentiable w.r.t. the latent
    latent: "Latent"
    rngs: Sequence[torch.Generator]  # one per image: a term that draws random numbers uses only these


@dataclass
class Context:
    """What a term may need when it is built (handed to :meth:`LossTerm.build`)."""

    settings: Any  # the resolved Settings
    generator: "Generator"
    device: torch.device
    size: tuple[int, int]  # (width, height)
    start: "Latent"  # the starting latent (detached copy)
    init_images: torch.Tensor | None  # (B,3,H,W) when the run starts from an init image


class LossTerm:
    """Base class of a loss term: subclass it, set ``name``, implement ``__call__``."""

    name: ClassVar[str] = "term"

    def __init__(self, weight: Schedule | float = 1.0) -> None:
        self.weight: Schedule = Constant(float(weight)) if isinstance(weight, (int, float)) else weight

    @classmethod
    def build(cls, context: Context, weight: Schedule) -> "LossTerm":
        """Make the term for a run; override when the term needs settings or the start latent."""
        return cls(weight)

    def __call__(self, state: State) -> torch.Tensor:
        raise NotImplementedError


__all__ = ["LossTerm", "State", "Context"]
