"""Animations: story videos, 2d zoom/rotate/pan videos, and styled source videos.

* :mod:`.settings` — :class:`AnimationSettings`, the animation's knobs (declared once);
* :mod:`.modes` — what an animation mode is (how a frame starts from the last); the modes:
  :mod:`.motion` (2d) and :mod:`.video` (styling a source video, read by :mod:`.sources`),
  registered in :data:`clipguide.registry.ANIMATION_MODES`;
* :mod:`.loop` — :func:`animate`, the frame loop over one built run; exact resume;
* :mod:`.store` — the frames on disk, finding an animation's frames again, its videos;
* :mod:`.cli` — ``clipguide animate`` and ``clipguide again`` on a frame.
"""

from __future__ import annotations

from .settings import AnimationSettings

__all__ = ["AnimationSettings", "animate", "Animation"]


def __getattr__(name: str):
    # The loop needs torch; the settings (and `clipguide animate --help`) do not.
    if name in ("animate", "Animation"):
        from . import loop

        return getattr(loop, name)
    raise AttributeError(name)
