"""Saving what a run made: the one function every front end (CLI, web UI, compare, notebook,
animation, telephone) calls, so every PNG carries the same settings record."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from PIL import Image

from .files import ensure_out_dir
from .images import save_png, write_png
from .names import slugify
from .record import png_chunks


def default_stem(settings: Any, seed: int) -> str:
    """``<slug of the prompt's first part>-<seed>``: what a file of this image is called by default."""
    from ..prompts import split_story

    return f"{slugify(split_story(settings.prompt)[0].text)}-{seed}"


def save_images(owner: Any, images: Sequence[Image.Image], out_dir: str | Path, *, stems: Sequence[str] | None = None,
                overwrite: bool = False, steps_done: int | None = None, only: Sequence[int] | None = None,
                **source: Any) -> list[Path]:
    """Save ``images`` (image k made with seed ``owner.seeds[k]``) as PNGs with their settings records.

    ``owner`` is a :class:`~clipguide.engine.Run` or :class:`~clipguide.api.Result`. Without ``stems``
    each file is ``<slug>-<seed>.png``, or the next free ``-N`` name: nothing is ever replaced.
    With ``overwrite`` the stems are used exactly and an earlier file of that name is replaced
    atomically (a resumable folder such as compare's). ``only``: save just these images (indices).
    ``source`` goes into the record.
    """
    folder = ensure_out_dir(Path(out_dir))
    stems = list(stems) if stems is not None else [default_stem(owner.settings, s) for s in owner.seeds]
    paths = []
    for k, image in enumerate(images):
        if only is not None and k not in only:
            continue
        chunks = png_chunks(owner, k, steps_done=steps_done, **source)
        if overwrite:
            paths.append(write_png(image, folder / f"{stems[k]}.png", chunks, overwrite=True))
        else:
            paths.append(save_png(image, folder, stems[k], chunks))
    return paths


def save_result(result: Any, out_dir: str | Path, *, stems: Sequence[str] | None = None, overwrite: bool = False,
                only: Sequence[int] | None = None, **source: Any) -> list[Path]:
    """:func:`save_images` of a :class:`~clipguide.api.Result`'s final images."""
    return save_images(result, result.pil(), out_dir, stems=stems, overwrite=overwrite,
                       steps_done=result.steps_done, only=only, **source)


__all__ = ["save_images", "save_result", "default_stem"]
