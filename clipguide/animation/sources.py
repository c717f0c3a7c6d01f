"""Reading the frames of a source video (through the ffmpeg imageio-ffmpeg bundles) or of a folder
of images, one at a time, at the animation's size. Every way a source can be unusable (missing,
empty, not decodable) is a one-line UserError raised when it is opened, before anything is written.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import UserError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")


def _natural(path: Path) -> list:
    """Sort key that puts frame2.png before frame10.png."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", path.name)]


class SourceFrames:
    """The frames of ``path`` (a video file or a folder of images): ``len()``, ``fps``, ``size``, ``get(i)``.

    ``cap``: refuse a source with more frames than this unless ``wanted`` (the frames asked for) is
    given, in which case only the first ``wanted`` frames are read and the source must have them.
    """

    def __init__(self, path: str | Path, *, cap: int, wanted: int | None = None) -> None:
        self.path = Path(path).expanduser()
        self.fps: float | None = None
        self._files: list[Path] = []
        self._reader: Iterator[bytes] | None = None
        self._position = 0
        if not self.path.exists():
            raise UserError(f"video {self.path} does not exist: check the path (--video-init)")
        if self.path.is_dir():
            self._files = sorted((p for p in self.path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES
                                  and not p.name.startswith(".")), key=_natural)
            if not self._files:
                raise UserError(f"folder {self.path} has no image files ({', '.join(IMAGE_SUFFIXES)}): give a "
                                "video file or a folder of frames (--video-init)")
            from ..output import load_image

            self.size = load_image(self._files[0]).size
            self.count = len(self._files)
        else:
            self.size, self.fps, estimate = self._probe()
            if wanted is None and estimate is not None and estimate > cap * 1.1:
                self.count = estimate  # plainly over the cap: no need to decode it all to count
            else:
                self.count = self._count()
        if wanted is None and self.count > cap:
            raise UserError(f"video {self.path} has {self.count} frames, over the limit of {cap}: style its first "
                            f"frames only (--frames N), or --no-limits")
        if wanted is not None and wanted > self.count:
            raise UserError(f"frames={wanted} but video {self.path} has only {self.count}: ask for at most "
                            f"{self.count} (--frames)")

    def __len__(self) -> int:
        return self.count

    # ------------------------------------------------------------------ video files
    def _fail(self, detail: str) -> UserError:
        return UserError(f"cannot read video {self.path}: {detail}; give a video file ffmpeg can decode (mp4, webm, "
                         "mov, gif) or a folder of frames (--video-init)")

    def _open(self) -> tuple[Iterator[bytes], dict]:
        import imageio_ffmpeg

        reader = imageio_ffmpeg.read_frames(str(self.path))
        try:
            meta = next(reader)
        except (RuntimeError, OSError, StopIteration) as exc:
            reader.close()
            lines = str(exc).strip().splitlines()
            raise self._fail(lines[-1] if lines else "ffmpeg could not open it") from None
        return reader, meta

    def _probe(self) -> tuple[tuple[int, int], float | None, int | None]:
        reader, meta = self._open()
        reader.close()
        size = tuple(int(v) for v in meta.get("size") or (0, 0))
        if min(size) <= 0:
            raise self._fail("it has no video stream")
        fps = float(meta.get("fps") or 0) or None
        duration = float(meta.get("duration") or 0)
        return size, fps, round(fps * duration) if fps and duration else None

    def _count(self) -> int:
        import imageio_ffmpeg

        try:
            count, _ = imageio_ffmpeg.count_frames_and_secs(str(self.path))
        except (RuntimeError, OSError) as exc:
            raise self._fail(str(exc).strip().splitlines()[-1] if str(exc).strip() else "ffmpeg failed") from None
        if not count:
            raise self._fail("it has no frames")
        return int(count)

    # ------------------------------------------------------------------ frames
    def get(self, index: int, size: tuple[int, int]) -> Image.Image:
        """Frame ``index`` (0-based) as RGB at ``size`` = (width, height); read in order, so going on from
        the last frame asked for costs one decode."""
        if not 0 <= index < self.count:
            raise IndexError(f"frame {index} of a source with {self.count}")
        if self._files:
            from ..output import load_image

            return load_image(self._files[index], size)
        if self._reader is None or index < self._position:
            self.close()
            self._reader, _ = self._open()
            self._position = 0
        width, height = self.size
        while True:
            try:
                data = next(self._reader)
            except StopIteration:
                raise self._fail(f"it ended after {self._position} frames, not {self.count}") from None
            self._position += 1
            if self._position > index:
                break
        frame = Image.fromarray(np.frombuffer(data, dtype=np.uint8).reshape(height, width, 3).copy())
        return frame if frame.size == tuple(size) else frame.resize(tuple(size), Image.Resampling.LANCZOS)

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()  # imageio-ffmpeg stops its ffmpeg when the generator closes
            self._reader = None


__all__ = ["SourceFrames", "IMAGE_SUFFIXES"]
