"""The animation's own knobs, declared once like :class:`clipguide.settings.Settings`.

The run's settings (prompt, models, size, seeds, ``steps`` …) stay in ``Settings``; these say how
the frames are made: how many, how many steps each, and what moves between them. Motion values are
numbers or keyframes by frame (``"0:1.0, 60:1.05"``, :func:`clipguide.schedules.parse_schedule`).

This module has no torch and does no I/O.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

from .. import specs
from ..errors import UserError
from ..registry import ANIMATION_MODES
from ..schedules import Schedule, parse_schedule
from ..specs import setting

#: Caps (raised with --no-limits): frames made, and frames read from a source video.
LIMITS = {"frames": 10_000}
#: Frames when neither --frames nor a source video says how many.
DEFAULT_FRAMES = 60
#: Frames per second of the video when neither --fps nor a source video says.
DEFAULT_FPS = 12.0
#: Fields that only shape the written video, not the frames: a run that differs only in these goes on
#: from the frames already made.
OUTPUT_ONLY = ("frames", "fps", "gif")


@dataclass(frozen=True)
class AnimationSettings:
    """How the frames of an animation are made. Same settings + same seed → the same frames."""

    frames: int | None = setting(None, f"Frames to make (default: the source video's count with --video-init, "
                                 f"else {DEFAULT_FRAMES}).", low=1, ui="animate")
    steps_per_frame: int = setting(20, "Steps of every frame after the first (the first is a still of --steps "
                                   "steps).", low=1, ui="animate", label="Steps per frame")
    mode: str = setting("2d", "How a frame follows the last: '2d' (zoom, rotate, move the picture) or 'video' "
                        "(style the frames of --video-init; chosen by itself when that is given).",
                        choices=ANIMATION_MODES)
    zoom: float | str = setting(1.0, "2d: scale per frame (>1 zooms in), a number or keyframes by frame "
                                "'0:1.0, 60:1.05'.", low=0, low_open=True, schedule=True, ui="animate")
    angle: float | str = setting(0.0, "2d: rotation per frame in degrees, counter-clockwise (number or keyframes).",
                                 schedule=True, ui="animate", label="Angle (degrees per frame)")
    translate_x: float | str = setting(0.0, "2d: move right by this many pixels per frame (number or keyframes).",
                                       schedule=True, ui="animate", label="Translate x (pixels per frame)")
    translate_y: float | str = setting(0.0, "2d: move down by this many pixels per frame (number or keyframes).",
                                       schedule=True, ui="animate", label="Translate y (pixels per frame)")
    video_init: str | None = setting(None, "A video file (or a folder of frames) to style: every output frame "
                                     "starts from the previous one, pulled toward this video's frame.")
    video_weight: float = setting(5.0, "video: how strongly each frame is pulled toward its source frame (pixel "
                                  "MSE weight).", low=0)
    smooth: float = setting(0.0, "video: exponential moving average of the latents across frames, against flicker "
                            "(0 off, 0.5 half of the last average).", low=0, high=1, high_open=True)
    fps: float | None = setting(None, f"Frames per second of the video (default: the source's, else "
                                f"{DEFAULT_FPS:g}).", low=0, low_open=True, high=1000, ui="animate")
    gif: bool = setting(False, "Also write a GIF beside the MP4.")

    def replace(self, **changes: Any) -> AnimationSettings:
        return from_dict({**to_dict(self), **changes})

    def motion(self) -> dict[str, Schedule]:
        """The 2d motion by name as schedules of the frame index."""
        return {name: parse_schedule(getattr(self, name), what=name)
                for name in ("zoom", "angle", "translate_x", "translate_y")}


FIELD_NAMES = specs.names(AnimationSettings)


def to_dict(anim: AnimationSettings) -> dict[str, Any]:
    return specs.to_dict(anim)


def from_dict(values: dict[str, Any], *, where: str = "animation settings") -> AnimationSettings:
    """Validated settings from plain values; ``--video-init`` without a mode chooses the video mode."""
    values = dict(values)
    if values.get("video_init") and "mode" not in values:
        values["mode"] = "video"
    anim = specs.from_dict(AnimationSettings, values, where=where)
    validate(anim)
    return anim


def validate(anim: AnimationSettings) -> None:
    """A one-line UserError for combinations no animation could use (ranges are checked by specs)."""
    specs.check(anim)
    anim.motion()  # keyframes that do not parse
    if anim.mode == "video" and not anim.video_init:
        raise UserError("mode video needs a source: give --video-init FILE.mp4 (or a folder of frames)")
    if anim.video_init and anim.mode != "video":
        raise UserError(f"--video-init styles a video, which mode {anim.mode!r} does not do: leave out --mode "
                        "(or --mode video)")
    if anim.smooth and anim.mode != "video":
        raise UserError("smooth averages the latents of frames that line up, which only a styled video's do: "
                        "leave out --smooth, or use it with --video-init")


def frame_limits(no_limits: bool) -> dict[str, int] | None:
    """The ``limits`` of :func:`check_limits` for a front end's ``--no-limits`` (None: the default caps)."""
    return {"frames": sys.maxsize} if no_limits else None


def check_limits(frames: int, limits: dict[str, int] | None = None) -> None:
    """Refuse more frames than the cap (the CLI unless --no-limits; the web UI with the operator's)."""
    cap = {**LIMITS, **(limits or {})}["frames"]
    if frames > cap:
        raise UserError(f"frames={frames} is over the limit of {cap}; make fewer (--frames), or --no-limits")


__all__ = ["AnimationSettings", "from_dict", "to_dict", "validate", "check_limits", "LIMITS", "DEFAULT_FRAMES",
           "DEFAULT_FPS", "OUTPUT_ONLY", "FIELD_NAMES"]
