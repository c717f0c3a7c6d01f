"""Does the guidance steer? Paired prompts through the real loop, judged by something that is not CLIP.

Each task is a pair of prompts that differ in one attribute (colour, shape, position). Both prompts
run on the *same* seeds, so a seed that happens to start red cannot make "red" look good; the
judge (:mod:`clipguide.demo.judge`: pixel statistics for colours, the outline of the figure for
shape and position) then says what each image shows. A run succeeds when the judge reads the
attribute its prompt asked for.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from ..presets import demo_settings as demo_preset
from ..settings import Settings
from .shapes import Scene, caption, render_batch, to_tensor

if TYPE_CHECKING:
    from ..perceptor import ClipModel


@dataclass(frozen=True)
class Task:
    """Two scenes that differ in one field; each option's prompt is its scene's caption."""

    name: str
    attribute: str  # the judge's key
    scene_field: str  # the Scene field the two scenes differ in
    caption_style: str  # shapes.caption style: the words a user would type
    scenes: tuple[Scene, ...]  # the clean picture each prompt describes (drawn small and large)

    @property
    def options(self) -> tuple[tuple[str, str], ...]:
        """(expected judge value, prompt) per scene."""
        return tuple((getattr(s, self.scene_field), caption(s, self.caption_style)) for s in self.scenes)


def _pair(scene_field: str, values: tuple[str, str], **scene: str) -> tuple[Scene, Scene]:
    """The two clean scenes of a task: the same small centred shape with `scene_field` set to each value."""
    return tuple(Scene(**{"size": "small", "position": "centre", **scene, scene_field: v}) for v in values)


# Prompts use the shapes world's own caption phrasing ("a red circle on a blue background").
TASKS: dict[str, Task] = {
    "colour": Task("colour", "shape_colour", "colour", "short",
                   _pair("colour", ("red", "blue"), shape="circle", background="white")),
    "background": Task("background", "background", "background", "short",
                       _pair("background", ("red", "blue"), shape="square", colour="white")),
    "shape": Task("shape", "shape", "shape", "short",
                  _pair("shape", ("circle", "square"), colour="yellow", background="black")),
    # "left vs right": the side the shape is on, whatever its height (the judge's nine positions
    # also separate "top left" from "left"; the benchmark reports that stricter reading as well)
    "position": Task("position", "side", "position", "placed",
                     _pair("position", ("left", "right"), shape="circle", colour="yellow", background="black")),
}


@dataclass
class TaskResult:
    task: str
    hits: int  # runs whose image shows what their prompt asked for
    runs: int
    paired_hits: int  # seeds where both prompts of the pair were right
    seeds: int
    judged: list[tuple[str, str, int]]  # (asked for, judge said, seed)
    verdicts: list[dict] = field(default_factory=list)  # the judge's whole answer, same order

    @property
    def rate(self) -> float:
        return self.hits / self.runs if self.runs else 0.0

    @property
    def paired_rate(self) -> float:
        return self.paired_hits / self.seeds if self.seeds else 0.0


def demo_settings(**overrides) -> Settings:
    """The CLI's ``--demo`` settings, so the measurement is of what users get."""
    return Settings(prompt="", device="cpu", **{**demo_preset(), **overrides})


def measure(tasks: Sequence[str] = tuple(TASKS), n_seeds: int = 8, first_seed: int = 0, *,
            base: Settings | None = None, session=None, judge=None,
            progress: Callable[[str], None] | None = None) -> dict[str, TaskResult]:
    """Run every option of every task on seeds first_seed… (one batch per prompt) and judge the images."""
    from .. import api
    from .judge import Judge

    base = base or demo_settings()
    session = session or api.Session(base.device, offline=True, progress=False)
    judge = judge or Judge()
    seeds = list(range(first_seed, first_seed + n_seeds))
    results = {}
    for name in tasks:
        task = TASKS[name]
        correct: dict[int, int] = {s: 0 for s in seeds}
        judged, verdicts = [], []
        for expected, prompt in task.options:
            result = api.generate(base.replace(prompt=prompt, seed=seeds[0], seeds=len(seeds)), session=session)
            for seed, verdict in zip(result.seeds, judge.predict(result.images)):
                judged.append((expected, verdict[task.attribute], seed))
                verdicts.append(verdict)
                correct[seed] += verdict[task.attribute] == expected
            if progress:
                progress(f"{name}: {prompt!r} done")
        hits = sum(1 for e, said, _ in judged if e == said)
        paired = sum(1 for s in seeds if correct[s] == len(task.options))
        results[name] = TaskResult(name, hits, len(judged), paired, len(seeds), judged, verdicts)
    return results


def clean_margins(task: Task, clip: ClipModel) -> list[float]:
    """Per option of ``task``: how much nearer (cosine) a CLIP model puts the clean pictures its
    prompt describes to that prompt than to the other prompt of the pair.

    The precondition of steering: at or below zero the CLIP cannot tell the pair apart even on
    clean pictures, so no loop can steer that attribute with it.
    """
    return pair_margins(clip, [prompt for _, prompt in task.options], task.scenes)


def pair_margins(clip: ClipModel, prompts: Sequence[str], scenes: Sequence[Scene]) -> list[float]:
    """Per scene k (drawn small and large, averaged): cosine to ``prompts[k]`` minus the best of the others."""
    import torch

    from ..perceptor import resize_for

    texts = clip.embed_texts(list(prompts))
    margins = []
    for k, scene in enumerate(scenes):
        pictures = [replace(scene, size=size) for size in ("small", "large")]
        images = to_tensor(render_batch(pictures)).to(clip.mean.device)
        with torch.inference_mode():
            similarity = clip.embed_images(resize_for(clip, images)) @ texts.T  # (2 sizes, prompts)
        others = torch.cat([similarity[:, :k], similarity[:, k + 1:]], dim=1)
        margins.append(float((similarity[:, k] - others.max(dim=1).values).mean()))
    return margins


def format_table(results: dict[str, TaskResult]) -> str:
    lines = ["| task | success | paired (both right) |", "|---|---|---|"]
    for r in results.values():
        lines.append(f"| {r.task} | {r.hits}/{r.runs} = {r.rate:.0%} | {r.paired_hits}/{r.seeds} = {r.paired_rate:.0%} |")
    return "\n".join(lines)
