"""The ``mse-latent`` term: a pull toward the starting latent that fades over the run.

The "MSE regulated VQGAN+CLIP" recipe: half the mean squared difference between the latent and the
latent the run started from (random codes, or the ``--init-image``'s) — the same pull as
``--init-weight-mode latent`` — but with a weight that decays, so early steps stay near the start
and later ones are free. A number as the weight decays linearly to 0 over the run
(``--loss mse-latent:0.5``); keyframes (``--loss "mse-latent:0:1, 100:0.2, 200:0"``) are used as written.
"""

from __future__ import annotations

from ..schedules import Constant, Scaled, linear_decay
from . import Context
from .init import InitLatentLoss


class LatentMSE(InitLatentLoss):
    name = "mse-latent"

    @classmethod
    def build(cls, context: Context, weight) -> "LatentMSE":
        if isinstance(weight, Constant):
            weight = Scaled(weight, linear_decay(context.settings.steps))
        return cls(context.start, weight)
