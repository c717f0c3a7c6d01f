"""Does the guidance steer? Paired prompts through the real loop, judged by something that is not CLIP.

Each task is a pair of prompts that differ in one attribute (colour, shape, position). Both prompts
run on the *same* seeds, so a seed that happens to start red cannot make "red" look good; the
judge (:mod:`clipguide.demo.judge`: pixel statistics for colours, a separately trained CNN for
shape and position) then says what each image shows. A run succeeds when the judge reads the
attribute its prompt asked for.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from ..settings import DEMO_SETTINGS, Settings
from .shapes import Scene, render_batch, to_tensor

if TYPE_CHECKING:
    from ..perceptor import ClipModel


@dataclass(frozen=True)
class Task:
    name: str
    attribute: str  # the judge's key
    options: tuple[tuple[str, str], ...]  # (expected judge value, prompt)
    # the clean shapes-world picture each option's prompt describes (drawn small and large)
    scenes: tuple[Scene, ...]


# Prompts use the shapes world's own caption phrasing ("a red circle on a blue background").
TASKS: dict[str, Task] = {
    "colour": Task("colour", "shape_colour", (
        ("red", "a red circle on a white background"),
        ("blue", "a blue circle on a white background"),
    ), (Scene("circle", "red", "small", "centre", "white"), Scene("circle", "blue", "small", "centre", "white"))),
    "background": Task("background", "background", (
        ("red", "a white square on a red background"),
        ("blue", "a white square on a blue background"),
    ), (Scene("square", "white", "small", "centre", "red"), Scene("square", "white", "small", "centre", "blue"))),
    "shape": Task("shape", "shape", (
        ("circle", "a yellow circle on a black background"),
        ("square", "a yellow square on a black background"),
    ), (Scene("circle", "yellow", "small", "centre", "black"), Scene("square", "yellow", "small", "centre", "black"))),
    # "left vs right": the side the shape is on, whatever its height (the judge's nine positions
    # also separate "top left" from "left"; the benchmark reports that stricter reading as well)
    "position": Task("position", "side", (
        ("left", "a yellow circle on the left on a black background"),
        ("right", "a yellow circle on the right on a black background"),
    ), (Scene("circle", "yellow", "small", "left", "black"), Scene("circle", "yellow", "small", "right", "black"))),
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
    return Settings(prompt="", device="cpu", **{**DEMO_SETTINGS, **overrides})


def measure(tasks: Sequence[str] = tuple(TASKS), n_seeds: int = 8, first_seed: int = 0, *,
            base: Settings | None = None, session=None, judge=None,
            progress: Callable[[str], None] | None = None) -> dict[str, TaskResult]:
    """Run every option of every task on seeds first_seed… (one batch per prompt) and judge the images."""
    from .. import api
    from .judge import Judge

    base = base or demo_settings()
    session = session or api.Session(base.device, offline=True, progress=False)
    judge = judge or Judge.load()
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
    prompt describes (small and large) to that prompt than to the other prompt of the pair, averaged.

    The precondition of steering: at or below zero the CLIP cannot tell the pair apart even on
    clean pictures, so no loop can steer that attribute with it.
    """
    import torch

    from ..perceptor import resize_for

    texts = clip.embed_texts([prompt for _, prompt in task.options])
    margins = []
    for k, scene in enumerate(task.scenes):
        pictures = [replace(scene, size=size) for size in ("small", "large")]
        images = to_tensor(render_batch(pictures)).to(clip.mean.device)
        with torch.inference_mode():
            similarity = clip.embed_images(resize_for(clip, images)) @ texts.T  # (2 sizes, options)
        others = torch.cat([similarity[:, :k], similarity[:, k + 1:]], dim=1)
        margins.append(float((similarity[:, k] - others.max(dim=1).values).mean()))
    return margins


def format_table(results: dict[str, TaskResult]) -> str:
    lines = ["| task | success | paired (both right) |", "|---|---|---|"]
    for r in results.values():
        lines.append(f"| {r.task} | {r.hits}/{r.runs} = {r.rate:.0%} | {r.paired_hits}/{r.seeds} = {r.paired_rate:.0%} |")
    return "\n".join(lines)
