"""What a telephone run or study makes, where its files go, and running it task by task.

A :class:`Plan` is start prompts × styles × trajectories (``seeds``). ``telephone.json`` in the
output folder records it; running the same command again checks that it matches and goes on where
the folder stops (more rounds, prompts' trajectories or seeds than before are fine: they are
added). One :class:`Task` is one trajectory, run by :func:`run_task` (a Ray task on another
machine can run one as well: it needs the plan and the task, and writes only its own folder).

Layout: a single start prompt in a single style puts trajectories straight in the folder
(``OUT/t0/round-000.png``); a study nests them: ``OUT/<style>/p001-<prompt>/t0/round-000.png``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import specs
from ..errors import UserError
from ..output import atomic_write_text, read_folder_record, slugify
from ..settings import Settings
from .loop import describer_for, run_trajectories
from .settings import SEED_STRIDE, TelephoneSettings
from .trajectory import Trajectory, load_trajectory

FORMAT = "clipguide-telephone"
VERSION = 1
#: Settings that do not change what a round makes (or that the plan may grow in), left out of the check.
NOT_CHECKED = ("device", "threads", "offline", "save_every", "style", "seeds", "prompt")
TELEPHONE_NOT_CHECKED = ("rounds", "eval_clip", "settle_distance")


@dataclass(frozen=True)
class Task:
    style: str
    prompt_index: int
    trajectory: int


@dataclass
class Plan:
    out_dir: Path
    prompts: list[str]
    styles: list[str]
    settings: Settings  # the image settings (seeds = trajectories per start prompt); style per task
    telephone: TelephoneSettings
    explicit: frozenset[str] = frozenset()
    style_dirs: tuple[str, ...] = ()

    @property
    def single(self) -> bool:
        return len(self.prompts) == 1 and len(self.styles) == 1

    @property
    def trajectories(self) -> range:
        return range(self.settings.seeds)

    def folder(self, style: str, prompt_index: int) -> Path:
        if self.single:
            return self.out_dir
        return self.out_dir / slugify(style) / f"p{prompt_index + 1:03d}-{slugify(self.prompts[prompt_index], 40)}"

    def settings_for(self, style: str) -> Settings:
        return self.settings.replace(style=style, seeds=1)

    def tasks(self) -> list[Task]:
        return [Task(style, p, j) for style in self.styles for p in range(len(self.prompts)) for j in self.trajectories]

    def load(self, task: Task) -> Trajectory:
        return load_trajectory(self.folder(task.style, task.prompt_index), self.prompts[task.prompt_index],
                               task.trajectory)


def make_plan(prompts: Sequence[str], styles: Sequence[str], settings: Settings, telephone: TelephoneSettings,
              out_dir: Path, *, explicit: frozenset[str] = frozenset(), style_dirs: Sequence[str] = (),
              must_exist: bool = False) -> Plan:
    """Check a plan before anything is made: its prompts and styles, and that ``out_dir`` holds
    nothing else (or this plan's own earlier files). :func:`record_plan` writes it down."""
    from ..build import story_prompts
    from ..presets import apply_style

    if not prompts:
        raise UserError("the telephone needs a start prompt: clipguide telephone \"a lighthouse in a storm\"")
    if settings.seeds >= SEED_STRIDE:
        raise UserError(f"seeds={settings.seeds}: a start prompt can have at most {SEED_STRIDE - 1} trajectories")
    for prompt in prompts:  # style and prompt mistakes are found before any model loads
        for style in styles:
            story_prompts(apply_style(settings.replace(prompt=prompt, style=style), explicit=explicit,
                                      extra_dirs=tuple(style_dirs)))
    plan = Plan(Path(out_dir), list(prompts), list(styles), settings, telephone, frozenset(explicit), tuple(style_dirs))
    path = plan.out_dir / "telephone.json"
    if path.exists():
        old = read_folder_record(path, FORMAT, "telephone")
        if old.get("hash") != _digest(plan):
            raise UserError(f"{plan.out_dir} holds a telephone run made differently "
                            f"({_difference(old, _checked(plan))}); choose a new --out or delete the folder")
    elif must_exist:
        raise UserError(f"{plan.out_dir} holds no telephone run (no telephone.json): check --out")
    elif plan.out_dir.is_dir() and any(plan.out_dir.iterdir()):
        raise UserError(f"{plan.out_dir} is not empty and holds no telephone run: choose a new --out")
    return plan


def record_plan(plan: Plan) -> None:
    """Write ``telephone.json``: what the folder holds, checked by every later run into it."""
    from ..output import ensure_out_dir

    ensure_out_dir(plan.out_dir)
    record = {"format": FORMAT, "version": VERSION, "hash": _digest(plan), **_checked(plan),
              "seeds": plan.settings.seeds, "rounds": plan.telephone.rounds,
              "settings_all": specs.to_dict(plan.settings), "telephone_all": specs.to_dict(plan.telephone)}
    atomic_write_text(plan.out_dir / "telephone.json",
                      json.dumps(record, indent=2, sort_keys=True, ensure_ascii=False) + "\n", overwrite=True)


def _checked(plan: Plan) -> dict[str, Any]:
    image = {k: v for k, v in specs.to_dict(plan.settings).items() if k not in NOT_CHECKED}
    loop = {k: v for k, v in specs.to_dict(plan.telephone).items() if k not in TELEPHONE_NOT_CHECKED}
    return {"prompts": plan.prompts, "styles": plan.styles, "settings": image, "telephone": loop,
            "explicit": sorted(plan.explicit)}


def _digest(plan: Plan) -> str:
    return hashlib.sha256(json.dumps(_checked(plan), sort_keys=True).encode()).hexdigest()[:16]


def _difference(old: dict[str, Any], new: dict[str, Any]) -> str:
    for key in ("prompts", "styles"):
        if old.get(key) != new[key]:
            return f"other {key}"
    changed = [k for part in ("settings", "telephone") for k in new[part]
               if (old.get(part) or {}).get(k) != new[part][k]]
    return ", ".join(changed[:6]) or "other settings"


def run_task(plan: Plan, task: Task, **kw: Any) -> Trajectory:
    """One trajectory of the plan, run or resumed to the plan's rounds (see :func:`run_trajectories`)."""
    return run_tasks(plan, [task], **kw)[0]


def run_tasks(plan: Plan, tasks: Sequence[Task], **kw: Any) -> list[Trajectory]:
    """Tasks of one style and start prompt, together in one batch."""
    style, p = tasks[0].style, tasks[0].prompt_index
    if any((t.style, t.prompt_index) != (style, p) for t in tasks):
        raise ValueError("tasks run in one batch share a style and a start prompt")
    kw.setdefault("explicit", plan.explicit)
    kw.setdefault("style_dirs", plan.style_dirs)
    return run_trajectories(plan.prompts[p], [t.trajectory for t in tasks], plan.settings_for(style), plan.telephone,
                            plan.folder(style, p), **kw)


@dataclass
class TrajectoryTask:
    """One trajectory of a study as a task for :mod:`clipguide.scale`: run alone, so its files are the
    in-process study's whichever worker runs it; a retried one goes on from its saved rounds."""

    plan: Plan
    task: Task

    @property
    def label(self) -> str:
        return f"{self.task.style}/p{self.task.prompt_index + 1}/t{self.task.trajectory}"

    @property
    def device(self) -> str:
        return self.plan.settings.device

    @property
    def offline(self) -> bool:
        return self.plan.settings.offline

    def unfinished(self) -> bool:
        return len(self.plan.load(self.task).rounds) < self.plan.telephone.rounds

    def run(self, session: Any, hook: Any) -> int:
        before = len(self.plan.load(self.task).rounds)
        return len(run_task(self.plan, self.task, session=session, hook=hook).rounds) - before


def make_describers(plan: Plan, session: Any) -> dict[str, Any]:
    """The describer of every style (built before anything is generated: a describer that cannot be
    loaded is an error before the first round, not after it)."""
    return {style: describer_for(plan.settings_for(style), plan.telephone, session, plan.style_dirs, plan.explicit)
            for style in plan.styles}


def run_plan(plan: Plan, *, session: Any, together: bool, progress: Callable[[str], None] | None = None,
             describers: dict[str, Any] | None = None, **kw: Any) -> None:
    """Every task of the plan. ``together``: a start prompt's trajectories share one batch (the
    single command's ``--seeds N``); otherwise each runs alone, so its files are the same however
    the study is split across machines. ``describers``: one per style (:func:`make_describers`)."""
    say = progress or (lambda _m: None)
    groups: list[list[Task]] = []
    for task in plan.tasks():
        if together and groups and (groups[-1][0].style, groups[-1][0].prompt_index) == (task.style, task.prompt_index):
            groups[-1].append(task)
        else:
            groups.append([task])
    describers = dict(describers or {})
    for n, group in enumerate(groups, 1):
        first = group[0]
        if all(len(plan.load(t).rounds) >= plan.telephone.rounds for t in group):
            continue
        if first.style not in describers:  # one per style: a style may change the settings it reads
            describers[first.style] = describer_for(plan.settings_for(first.style), plan.telephone, session,
                                                    plan.style_dirs, plan.explicit)
        label = "" if plan.single else (f"[{n}/{len(groups)}] style {first.style}, prompt {first.prompt_index + 1}"
                                        + ("" if together else f", trajectory {first.trajectory}"))
        if label:
            say(label)
        run_tasks(plan, group, session=session, describer=describers[first.style], **kw)


__all__ = ["Plan", "Task", "TrajectoryTask", "make_plan", "record_plan", "make_describers", "run_task", "run_tasks", "run_plan", "FORMAT"]
