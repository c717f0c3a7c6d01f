"""One telephone loop: generate from a text, describe the image, generate from the description, …

Round r of trajectory j is a normal run (:func:`clipguide.build.build_batch_run`) whose prompt is
the caption of round r-1 (round 0: the start prompt), with seed ``seed + j`` (+ ``SEED_STRIDE·r``
with reseed "round"), the style on every round or only on the first, and a start from fresh
codes or from round r-1's image. Its PNG is saved with :func:`clipguide.output.save_images` (record
kind "telephone") as soon as the round is described; nothing of an unfinished round is kept.

:func:`run_trajectory` is a function of (start prompt, trajectory index, settings, folder) that
resumes from whatever rounds the folder holds: a study runs one per task, possibly on another
machine. :func:`run_trajectories` runs several of one start prompt in one batch (``--seeds N``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import specs
from ..settings import Settings
from .describe import Describer, DescriberContext, load_describer
from .settings import SEED_STRIDE, TelephoneSettings
from .trajectory import Round, Trajectory, load_trajectory, round_stem, write_summary

OnRound = Callable[[Trajectory, Round], None]


class LoopStopped(Exception):
    """A hook or Ctrl-C stopped round ``round``; the rounds before it are saved."""

    def __init__(self, round: int, trajectories: list[Trajectory]) -> None:
        super().__init__(f"stopped in round {round}")
        self.round = round
        self.trajectories = trajectories


@dataclass(frozen=True)
class _Made:
    """What :func:`clipguide.output.png_chunks` reads of one round's image."""

    settings: Settings
    resolved: Settings
    seeds: list[int]
    explicit: frozenset[str]


def round_seed(settings: Settings, telephone: TelephoneSettings, index: int, r: int) -> int:
    return settings.seed + index + (SEED_STRIDE * r if telephone.reseed == "round" else 0)


def round_settings(settings: Settings, telephone: TelephoneSettings, start_prompt: str, index: int, r: int,
                   previous: Round | None) -> Settings:
    """The settings round ``r`` of trajectory ``index`` is generated with (one seed)."""
    changes: dict[str, Any] = {"prompt": start_prompt if previous is None else previous.caption,
                               "seed": round_seed(settings, telephone, index, r), "seeds": 1}
    if r > 0 and telephone.style_mode == "start":
        changes["style"] = "none"
    if r > 0 and telephone.start == "previous":
        changes["init_image"] = str(previous.image)
    return settings.replace(**changes)


def describer_for(settings: Settings, telephone: TelephoneSettings, session: Any, style_dirs: Sequence[str] = (),
                  explicit: frozenset[str] = frozenset()) -> Describer:
    from ..presets import apply_style

    resolved = apply_style(settings, explicit=explicit, extra_dirs=tuple(style_dirs))
    return load_describer(DescriberContext(resolved, telephone, session))


def run_trajectory(start_prompt: str, index: int, settings: Settings, telephone: TelephoneSettings, folder: Path,
                   **kw: Any) -> Trajectory:
    """Trajectory ``index`` from ``start_prompt`` in ``folder/t<index>``, run (or resumed) to its rounds."""
    return run_trajectories(start_prompt, [index], settings, telephone, folder, **kw)[0]


def run_trajectories(start_prompt: str, indices: Sequence[int], settings: Settings, telephone: TelephoneSettings,
                     folder: Path, *, session: Any = None, describer: Describer | None = None,
                     explicit: frozenset[str] = frozenset(), style_dirs: Sequence[str] = (), hook: Any = None,
                     on_round: OnRound | None = None, notify: Callable[[str], None] | None = None) -> list[Trajectory]:
    """Trajectories ``indices`` of one start prompt, run together in one batch round by round.

    Rounds already in ``folder`` are kept and the loop goes on from the last; ``hook`` sees every
    optimisation step (and may stop: :class:`LoopStopped`, the finished rounds stay);
    ``on_round`` is called after each round is saved.
    """
    from ..api import execute
    from ..build import build_batch_run
    from ..session import Session

    folder = Path(folder)
    trajectories = [load_trajectory(folder, start_prompt, j) for j in indices]
    if all(len(t.rounds) >= telephone.rounds for t in trajectories):
        return trajectories
    session = session or Session(settings.device, settings.offline)
    explicit = frozenset(explicit) | {"prompt"} | ({"init_image"} if telephone.start == "previous" else frozenset())
    describer = describer or describer_for(settings, telephone, session, style_dirs, explicit)
    while True:
        pending = [t for t in trajectories if len(t.rounds) < telephone.rounds]
        if not pending:
            return trajectories
        r = min(len(t.rounds) for t in pending)
        batch = [t for t in pending if len(t.rounds) == r]
        per_image = [round_settings(settings, telephone, start_prompt, t.index, r, t.rounds[-1] if r else None)
                     for t in batch]
        run = build_batch_run(per_image, session=session, explicit=explicit, style_dirs=style_dirs, notify=notify)
        result = execute(run, hook, notify)
        if result.stopped:
            raise LoopStopped(r, trajectories)
        captions = describer.describe(result.images)
        for trajectory, own, image, caption in zip(batch, per_image, result.pil(), captions):
            done = _save(trajectory, r, own, image, caption, explicit, style_dirs, describer, telephone,
                         steps_done=result.steps_done, batch_of=len(batch))
            trajectory.rounds.append(done)
            write_summary(trajectory)
            if on_round is not None:
                on_round(trajectory, done)


def _save(trajectory: Trajectory, r: int, settings: Settings, image: Any, caption: str, explicit: frozenset[str],
          style_dirs: Sequence[str], describer: Describer, telephone: TelephoneSettings, *, steps_done: int,
          batch_of: int) -> Round:
    from ..output import save_images
    from ..presets import apply_style

    made = _Made(settings, apply_style(settings, explicit=explicit, extra_dirs=tuple(style_dirs)), [settings.seed],
                 explicit)
    # overwrite: the name is this round's own; a file there can only be the same round saved by a
    # twin task that raced this one (rounds that exist are never run again).
    path, = save_images(made, [image], trajectory.folder, stems=[round_stem(r)], overwrite=True, steps_done=steps_done,
                        kind="telephone", start_prompt=trajectory.start_prompt, trajectory=trajectory.index, round=r,
                        generated_from=settings.prompt, caption=caption, describer=describer.about,
                        telephone=specs.to_dict(telephone), batch_of=batch_of)
    return Round(r, settings.seed, settings.prompt, caption, path)


__all__ = ["run_trajectory", "run_trajectories", "round_settings", "round_seed", "describer_for", "LoopStopped"]
