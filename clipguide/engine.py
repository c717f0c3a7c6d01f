"""The optimisation loop. No I/O, no prints, no globals: it reports through a hook.

Per step ``i``: decode the latent, add up the loss terms (``Σ weight(i) · term``, one value per
image), take one optimiser step, let the generator project the latent back (codebook clamp, EMA,
…), then call the hook with a :class:`Step`. The hook may stop the run, or steer it: replace the
latent (after an image transform, say) or the prompt's targets. Every term stays per image, so
image k of a batch gets exactly the gradient it would get alone.

A :class:`Run` holds everything the loop needs; :func:`clipguide.build.build_run` makes one from
settings, and the same run can be executed again (an animation runs it once per frame).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from .errors import NonFiniteLossError
from .generators.base import Generator, Latent
from .losses import LossTerm, State
from .registry import OPTIMIZERS


@dataclass
class Run:
    """A built run: the loop's parts (used here) and what it was built from (for front ends)."""

    generator: Generator
    terms: list[LossTerm]
    latent: Latent
    rngs: list[torch.Generator]  # one per image, seeds seed..seed+B-1
    steps: int  # steps per execution
    lr: float
    optimizer: str = "adam"
    autocast_dtype: torch.dtype | None = None
    #: Index of this execution's first step: schedules keep counting across executions.
    first_step: int = 0
    # After a NaN/Inf loss the last finite latent is restored and the lr halved, this many times.
    max_nan_retries: int = 3
    # --- what the run was built from (the engine does not read these)
    settings: Any = None  # as given (style by name): what `clipguide again` re-runs
    resolved: Any = None  # after the style preset was applied
    explicit: frozenset[str] = frozenset()
    perceptor: Any = None
    size: tuple[int, int] = (0, 0)
    seeds: list[int] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)

    def term(self, name: str) -> LossTerm | None:
        return next((t for t in self.terms if t.name == name), None)


@dataclass
class Step:
    """One finished optimisation step, as the hook sees it."""

    i: int  # 1-based within this execution
    steps: int
    losses: list[float]  # per image: the weighted sum of the terms
    lr: float
    terms: dict[str, list[float]] = field(default_factory=dict)  # per term, unweighted, per image
    run: Run | None = field(default=None, repr=False)
    _image: torch.Tensor | None = field(default=None, repr=False)
    _stop: bool = field(default=False, repr=False)
    _latent: Latent | None = field(default=None, repr=False)

    @property
    def loss(self) -> float:
        return sum(self.losses)

    @property
    def latent(self) -> Latent:
        assert self.run is not None
        return self.run.latent

    def image(self) -> torch.Tensor:
        """The current images (B,3,H,W) in [0,1] on the CPU; decoded only when asked for."""
        if self._image is None:
            assert self.run is not None
            self._image = _render(self.run.generator, self.run.latent)
        return self._image

    def stop(self) -> None:
        """End the run after this step (returning True from the hook does the same)."""
        self._stop = True

    def replace_latent(self, latent: Latent) -> None:
        """Continue from ``latent`` (same keys and shapes) at the next step.

        The values are copied into the live tensors and the optimiser's moments are reset, so
        the next step is what a fresh run from ``latent`` would take; per-image RNGs go on as
        they were, which keeps image k of a batch independent of the others.
        """
        self._latent = latent

    def replace_targets(self, targets: Any) -> None:
        """Steer the prompt term toward ``targets`` (a TargetSchedule) from the next step on."""
        assert self.run is not None
        prompt = self.run.term("prompt")
        if prompt is None:
            raise ValueError("this run has no prompt term to retarget")
        prompt.targets = targets


@dataclass
class LoopResult:
    latent: Latent
    steps_done: int
    losses: list[float]
    stopped: bool  # by the hook or Ctrl-C, before the last step
    lr: float


Hook = Callable[[Step], "bool | None"]
Callback = Hook  # the name front ends have used


def make_optimizer(name: str, params: Sequence[torch.Tensor], lr: float) -> torch.optim.Optimizer:
    return OPTIMIZERS.get(name)(params, lr)


def losses(run: Run, i: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The weighted loss of every image at step ``i``, shape (B,), and each term's own (B,) values."""
    images = run.generator.decode(run.latent)
    state = State(i, images, run.latent, run.rngs)
    total: torch.Tensor | None = None
    parts: dict[str, torch.Tensor] = {}
    for term in run.terms:
        weight = term.weight(i)
        if weight == 0:
            continue
        value = term(state)
        parts[term.name] = value
        weighted = value if weight == 1 else weight * value
        total = weighted if total is None else total + weighted
    if total is None:
        total = images.new_zeros(images.shape[0], dtype=torch.float32)
    return total, parts


def run(job: Run, hook: Hook | None = None) -> LoopResult:
    """Optimise ``job.latent`` in place for ``job.steps`` steps; returns where it got to.

    The hook may stop the run (``step.stop()`` or returning True); Ctrl-C (KeyboardInterrupt) also
    stops and returns the latest latent, so a front end can still save what was made.
    """
    latent = job.latent
    params = [v.requires_grad_(True) for k, v in latent.items() if not k.startswith("_")]
    lr = job.lr
    optimizer = make_optimizer(job.optimizer, params, lr)
    device_type = params[0].device.type
    autocast = (torch.autocast(device_type, dtype=job.autocast_dtype) if job.autocast_dtype
                else contextlib.nullcontext())
    last_good = _snapshot(latent)
    values: list[float] = []
    retries = 0
    i = 0
    try:
        while i < job.steps:
            optimizer.zero_grad(set_to_none=True)
            with autocast:
                per_image, parts = losses(job, job.first_step + i)
            total = per_image.sum()
            if not torch.isfinite(total):
                retries += 1
                if retries > job.max_nan_retries:
                    raise NonFiniteLossError(
                        f"the loss became NaN/Inf at step {i + 1} even after lowering the lr to {lr:g}: "
                        "try a smaller lr (--lr) or precision fp32 (--precision fp32)")
                _restore(latent, last_good)
                lr /= 2
                optimizer = make_optimizer(job.optimizer, params, lr)
                continue
            total.backward()
            optimizer.step()
            with torch.no_grad():
                job.generator.project_(latent)
            last_good = _snapshot(latent)
            values = per_image.detach().float().cpu().tolist()
            i += 1
            if hook is not None:
                step = Step(i, job.steps, values, lr, {k: v.detach().float().cpu().tolist() for k, v in parts.items()},
                            job)
                stop = bool(hook(step)) or step._stop
                if step._latent is not None:
                    _restore(latent, step._latent)
                    last_good = _snapshot(latent)
                    optimizer = make_optimizer(job.optimizer, params, lr)
                if stop:
                    return LoopResult(latent, i, values, i < job.steps, lr)
    except KeyboardInterrupt:
        _restore(latent, last_good)  # the interrupted step may have left a half-updated latent
        return LoopResult(latent, i, values, True, lr)
    return LoopResult(latent, i, values, False, lr)


@torch.no_grad()
def _render(generator: Generator, latent: Latent) -> torch.Tensor:
    return generator.output(latent).float().cpu()


def _snapshot(latent: Latent) -> Latent:
    return {k: v.detach().clone() for k, v in latent.items()}


@torch.no_grad()
def _restore(latent: Latent, saved: Latent) -> None:
    for k, v in saved.items():
        latent[k].copy_(v)


__all__ = ["Run", "Step", "LoopResult", "Hook", "Callback", "run", "losses", "make_optimizer"]
