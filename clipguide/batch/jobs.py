"""The kinds of job a ``clipguide batch`` file lists: one task each (in-process or on a Ray worker).

A job writes only its own folder, through clipguide's atomic files, and is done when its files are
there: a retried or re-run job ends with the same files. A new kind is a class here (or in its own
module) with ``from_values`` and the task methods, plus a line in ``registry.JOBS``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from .. import specs
from ..animation.settings import AnimationSettings, frame_limits
from ..errors import UserError
from ..settings import Settings, check_limits, from_dict, to_dict

#: Settings that do not change what a job makes: a job may be resumed with other values.
NOT_HASHED = ("device", "threads", "offline")


def _digest(*parts: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


@dataclass
class Job:
    """What every kind has: a name (its folder in ``--out``), settings, and the task interface."""

    kind = "job"
    #: the keys of a job of this kind besides the image settings
    own_keys: ClassVar[tuple[str, ...]] = ()
    name: str
    folder: Path
    settings: Settings
    explicit: frozenset[str]
    style_dirs: tuple[str, ...]
    options: dict[str, Any] = field(default_factory=dict)  # the kind's own values (animation settings)
    no_limits: bool = False  # --no-limits: past the safety caps (sizes, steps, frames)

    @property
    def label(self) -> str:
        return self.name

    @property
    def device(self) -> str:
        return self.settings.device

    @property
    def offline(self) -> bool:
        return self.settings.offline

    def digest(self) -> str:
        """What the job makes, as a short hash (batch.json keeps it; a changed job is refused)."""
        image = {k: v for k, v in to_dict(self.settings).items() if k not in NOT_HASHED}
        return _digest({"kind": self.kind}, image, self.options)

    def check_limits(self) -> None:
        """The safety caps of what the job makes, before anything runs (unless ``no_limits``)."""
        if not self.no_limits:
            check_limits(self.settings)

    def finished(self) -> bool:
        raise NotImplementedError

    def run(self, session: Any, hook: Any) -> int:
        raise NotImplementedError


class GenerateJob(Job):
    """Stills: ``seeds`` images of one prompt, ``<prompt>-<seed>.png`` in the job's folder."""

    kind = "generate"

    @classmethod
    def from_values(cls, name: str, folder: Path, image: dict[str, Any], own: dict[str, Any], *,
                    explicit: frozenset[str], style_dirs: tuple[str, ...]) -> GenerateJob:
        return cls(name, folder, from_dict(image, where=f"job {name!r}"), explicit, style_dirs)

    def files(self) -> list[Path]:
        from ..output import default_stem

        return [self.folder / f"{default_stem(self.settings, s)}.png" for s in self.settings.seed_list()]

    def finished(self) -> bool:
        return all(f.is_file() for f in self.files())

    def run(self, session: Any, hook: Any) -> int:
        from ..api import generate
        from ..output import save_result

        result = generate(self.settings, hook, explicit=self.explicit, session=session, style_dirs=self.style_dirs)
        if result.stopped:
            raise UserError(f"job {self.name!r} stopped before its last step; run the batch again to make it")
        files = self.files()
        save_result(result, self.folder, stems=[f.stem for f in files], overwrite=True, kind="batch", job=self.name)
        return len(files)


class AnimateJob(Job):
    """An animation (any ``clipguide animate`` setting): frames and videos in the job's folder."""

    kind = "animate"
    own_keys = ("translate", *specs.names(AnimationSettings))

    @classmethod
    def from_values(cls, name: str, folder: Path, image: dict[str, Any], own: dict[str, Any], *,
                    explicit: frozenset[str], style_dirs: tuple[str, ...]) -> AnimateJob:
        from ..animation.settings import from_dict as animation_from

        own = dict(own)
        translate = own.pop("translate", None)  # the CLI's shorthand: translate = [x, y]
        if translate is not None:
            if not isinstance(translate, list) or len(translate) != 2:
                raise UserError(f"job {name!r}: translate = [X, Y] takes two values (pixels per frame)")
            own = {"translate_x": translate[0], "translate_y": translate[1], **own}
        animation_from(own, where=f"job {name!r}")  # checked now, before anything runs
        return cls(name, folder, from_dict(image, where=f"job {name!r}"), explicit, style_dirs, own)

    def frame_limits(self) -> dict[str, int] | None:
        return frame_limits(self.no_limits)

    def check_limits(self) -> None:
        from ..animation.settings import check_limits as check_frames

        super().check_limits()
        frames = self.animation().frames
        if frames:  # a source video's count is checked when it is read
            check_frames(frames, self.frame_limits())

    def animation(self) -> Any:
        from ..animation.settings import from_dict as animation_from

        return animation_from(self.options, where=f"job {self.name!r}")

    def finished(self) -> bool:
        """Every seed's last frame is there (the job's folder holds only its own animation). A video-styling
        job without ``frames`` counts its source's frames when it runs: it is run again (it makes nothing new)."""
        from ..animation.settings import DEFAULT_FRAMES
        from ..animation.store import FrameFolder
        from ..output import default_stem

        anim = self.animation()
        frames = anim.frames or (None if anim.mode == "video" else DEFAULT_FRAMES)
        return frames is not None and all(
            FrameFolder(self.folder, default_stem(self.settings, s)).frame_path(frames - 1).is_file()
            for s in self.settings.seed_list())

    def run(self, session: Any, hook: Any) -> int:
        from ..animation.loop import animate

        result = animate(self.settings, self.animation(), self.folder, explicit=self.explicit, session=session,
                         style_dirs=self.style_dirs, hook=hook, limits=self.frame_limits())
        if result.stopped:
            raise UserError(f"job {self.name!r} stopped after {result.done} frames; run the batch again to go on")
        return (result.done - result.first) * len(result.seeds)


__all__ = ["Job", "GenerateJob", "AnimateJob", "NOT_HASHED"]
