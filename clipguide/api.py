"""The Python API every front end calls: ``generate(settings, callback) -> Result``.

``generate`` is :func:`clipguide.build.build_run` followed by :func:`clipguide.engine.run`, with
the failures users meet (out of memory, a diverging loss) turned into one-line errors. It writes
nothing: :func:`clipguide.output.save_result` saves what it returns.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch

from . import engine
from .build import build_run, prepare_models, resolve_size
from .errors import NonFiniteLossError, OutOfMemoryError
from .session import Session, cpu_has_native_bf16, resolve_device, resolve_precision
from .settings import Settings

Notify = Callable[[str], None]


@dataclass
class Result:
    images: torch.Tensor  # (B,3,H,W) in [0,1], CPU float32
    settings: Settings  # as given (style by name): what `clipguide again` re-runs
    resolved: Settings  # after the style preset was applied
    seeds: list[int]
    losses: list[float]
    steps_done: int
    stopped: bool
    notices: list[str] = field(default_factory=list)
    #: fields the user set themselves (they beat style overrides); stored so `again` resolves alike
    explicit: frozenset[str] = frozenset()
    #: the run's latent at the end (on the run's device), for a front end that goes on from it
    latent: dict | None = field(default=None, repr=False)

    def pil(self):
        from .output import to_pil

        return to_pil(self.images)

    def metadata(self, k: int, **source) -> dict[str, str]:
        """PNG text chunks for image k: the settings that reproduce it (with its own seed)."""
        from .output import png_chunks

        return png_chunks(self, k, **source)


def generate(settings: Settings, callback: engine.Hook | None = None, *, explicit: frozenset[str] = frozenset(),
             session: Session | None = None, style_dirs: Sequence[str] = (), notify: Notify | None = None) -> Result:
    """Run the loop for ``settings.seeds`` images in one batch and return them.

    ``explicit`` names the fields the user set themselves (they win over a style's overrides);
    ``notify`` receives one-line notices (a rounded size, a style that changed a setting).
    """
    with out_of_memory_advice(settings):
        run = build_run(settings, session=session, explicit=explicit, style_dirs=style_dirs, notify=notify)
        return execute(run, callback, notify)


def execute(run: engine.Run, hook: engine.Hook | None = None, notify: Notify | None = None) -> Result:
    """Run a built run to its end (or until the hook stops it) and collect its images."""
    with out_of_memory_advice(run.resolved, run.size):
        outcome = engine.run(run, hook)
        with torch.no_grad():
            images = run.generator.output(outcome.latent).float().cpu()
    if not torch.isfinite(images).all():
        raise NonFiniteLossError("the generator produced NaN/Inf pixels: try a smaller lr (--lr) or precision fp32 "
                                 "(--precision fp32)")
    if outcome.lr != run.lr:
        message = f"the loss became NaN/Inf; recovered by lowering the lr to {outcome.lr:g}"
        run.notices.append(message)
        if notify is not None:
            notify(message)
    return Result(images, run.settings, run.resolved, list(run.seeds), outcome.losses, outcome.steps_done,
                  outcome.stopped, list(run.notices), run.explicit, outcome.latent)


class out_of_memory_advice:
    """Turn an out-of-memory error into a one-line error naming settings that would fit."""

    def __init__(self, settings: Settings, size: tuple[int, int] | None = None) -> None:
        self.settings = settings
        self.size = size

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind, error, tb) -> bool:
        if error is None or not _is_oom(error):
            return False
        s = self.settings
        width, height = self.size or s.size or (256, 256)
        raise OutOfMemoryError(
            f"out of memory at {width}x{height} with cutn {s.cutn} and {s.seeds} seed(s): try a smaller size "
            f"(--size {max(16, width // 2)} {max(16, height // 2)}), fewer cutouts (--cutn {max(1, s.cutn // 2)}) "
            f"or fewer seeds (--seeds {max(1, s.seeds // 2)})") from None


def _is_oom(e: BaseException) -> bool:
    if isinstance(e, torch.OutOfMemoryError):
        return True
    if not isinstance(e, RuntimeError):
        return False
    text = str(e)
    return "out of memory" in text or "DefaultCPUAllocator: can't allocate" in text or "not enough memory" in text


__all__ = ["Result", "Session", "generate", "execute", "build_run", "resolve_device", "resolve_precision",
           "cpu_has_native_bf16", "prepare_models", "resolve_size"]
