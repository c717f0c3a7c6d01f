"""Optimisers by name (see :data:`clipguide.registry.OPTIMIZERS`): ``factory(params, lr)``."""

from __future__ import annotations

from collections.abc import Sequence

import torch


def adam(params: Sequence[torch.Tensor], lr: float) -> torch.optim.Optimizer:
    """The lineage's choice for VQGAN and BigGAN alike."""
    return torch.optim.Adam(params, lr=lr)


def adamw(params: Sequence[torch.Tensor], lr: float) -> torch.optim.Optimizer:
    return torch.optim.AdamW(params, lr=lr, weight_decay=0.01)


def sgd(params: Sequence[torch.Tensor], lr: float) -> torch.optim.Optimizer:
    return torch.optim.SGD(params, lr=lr, momentum=0.9)
