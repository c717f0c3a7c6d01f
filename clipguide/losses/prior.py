"""The generator's own prior (BigGAN's latent and class losses; zero for a VQGAN)."""

from __future__ import annotations

import torch

from . import Context, LossTerm, State


class GeneratorPrior(LossTerm):
    name = "prior"

    def __init__(self, generator, weight=1.0) -> None:
        super().__init__(weight)
        self.generator = generator

    @classmethod
    def build(cls, context: Context, weight) -> "GeneratorPrior":
        return cls(context.generator, weight)

    def __call__(self, state: State) -> torch.Tensor:
        return self.generator.regularizer(state.latent).float()
