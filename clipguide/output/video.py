"""Progress and animation videos: MP4 through the ffmpeg that imageio-ffmpeg bundles, or GIF."""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path
from typing import Any, BinaryIO

from PIL import Image

from ..errors import UserError
from .files import OutputExistsError, _create_temp, _fsync_dir, _no_space, _not_writable, _publish, _remove_quietly, \
    _user_error, atomic_write

class VideoWriter:
    """Collect frames and write them as an ``.mp4`` or ``.gif`` when closed.

    Use as a context manager::

        with VideoWriter(out / "progress.mp4", fps=15) as video:
            for step in ...:
                video.append(frame)        # PIL images, all the same size

    Leaving the block normally writes the file; leaving it with an exception (Ctrl-C
    included) writes nothing and removes every temporary file. :meth:`close` returns the path
    written (``None`` if no frame was appended).

    * ``.mp4``: H.264 (libx264, yuv420p, crf 18, ``+faststart`` so browsers can stream it),
      encoded by the ffmpeg binary that imageio-ffmpeg bundles, fed frame by frame, so memory
      does not grow with the number of frames. The encoder writes to a hidden temporary file
      that is moved into place only if ffmpeg exits successfully. We run ffmpeg ourselves
      rather than through imageio's FFMPEG plugin because that plugin does not check ffmpeg's
      exit status: a failed encode leaves an unplayable file and raises nothing.
      yuv420p needs even sizes, so an odd width or height is **padded** by repeating the last
      column or row once (nothing is cropped or rescaled): a 255x255 run gives a 256x256 video.
    * ``.gif``: written by Pillow at the end; frames are kept in memory as 256-colour palette
      images (one byte per pixel). GIF timing is stored in 1/100 s, so the frame delay is
      ``1000/fps`` ms rounded to 10 ms. Pillow merges identical consecutive frames into one
      longer frame, so the playback time is right but the frame count can be smaller.

    Any other suffix raises :class:`UserError`. Without ``overwrite`` an existing file is
    never replaced (:class:`OutputExistsError`, checked when opening and again when closing).
    """

    _SUFFIXES = (".mp4", ".gif")

    def __init__(self, path: Path, fps: int = 15, *, overwrite: bool = False) -> None:
        self.path = Path(path)
        self.fps = fps
        self.overwrite = overwrite
        self.kind = self.path.suffix.lower()
        if self.kind not in self._SUFFIXES:
            raise UserError(
                f"cannot write video {self.path}: unknown type {self.path.suffix or '(no suffix)'}; "
                "use a name ending in .mp4 or .gif"
            )
        if not (isinstance(fps, (int, float)) and 0 < fps <= 1000):
            raise UserError(f"video fps must be a positive number up to 1000, got {fps!r}")
        if not overwrite and os.path.lexists(self.path):
            raise OutputExistsError(
                f"refusing to replace {self.path}: it already exists; choose another name or remove it"
            )
        self.frames = 0
        self._size: tuple[int, int] | None = None
        self._gif: list[Image.Image] = []
        self._proc: subprocess.Popen[bytes] | None = None
        self._tmp: Path | None = None
        self._log: BinaryIO | None = None
        self._closed = False
        self._result: Path | None = None

    def __enter__(self) -> "VideoWriter":
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def __del__(self) -> None:  # forgotten writer: don't leave ffmpeg or a temp file behind
        try:
            if not self._closed:
                self.abort()
        except Exception:
            pass

    def append(self, frame: Image.Image) -> None:
        """Add one frame; every frame must have the size of the first."""
        if self._closed:
            raise ValueError("this VideoWriter is already closed")
        rgb = frame if frame.mode == "RGB" else frame.convert("RGB")
        if self._size is None:
            self._size = rgb.size
        elif rgb.size != self._size:
            raise ValueError(f"video frame size {rgb.size} differs from the first frame's {self._size}")
        if self.kind == ".gif":
            self._gif.append(rgb.convert("P", palette=Image.Palette.ADAPTIVE, colors=256))
        else:
            self._send_mp4(rgb)
        self.frames += 1

    def close(self) -> Path | None:
        """Finish the file and move it into place; returns its path (None without frames)."""
        if self._closed:
            return self._result
        self._closed = True
        if self.frames == 0:
            self._cleanup()
            return None
        try:
            if self.kind == ".gif":
                self._write_gif()
            else:
                self._finish_mp4()
        except BaseException:
            self._cleanup()
            raise
        self._cleanup()
        self._result = self.path
        return self.path

    def abort(self) -> None:
        """Stop without writing anything; removes temporary files. Safe to call twice."""
        self._closed = True
        self._cleanup()

    # -- GIF

    def _write_gif(self) -> None:
        first, *rest = self._gif
        duration = max(10, round(1000 / self.fps))

        def write(f: BinaryIO) -> None:
            first.save(f, format="GIF", save_all=True, append_images=rest, duration=duration, loop=0)

        atomic_write(self.path, write, overwrite=self.overwrite)

    # -- MP4

    def _send_mp4(self, rgb: Image.Image) -> None:
        width, height = rgb.size
        even = (width + width % 2, height + height % 2)
        if even != rgb.size:
            rgb = _pad_edge(rgb, even)
        if self._proc is None:
            self._start_ffmpeg(even)
        assert self._proc is not None and self._proc.stdin is not None
        try:
            self._proc.stdin.write(rgb.tobytes())
        except BaseException as exc:
            failure = self._ffmpeg_failure(exc) if isinstance(exc, OSError) else None
            self.abort()
            if failure is not None:
                raise failure from exc
            raise

    def _start_ffmpeg(self, size: tuple[int, int]) -> None:
        import imageio_ffmpeg  # only video needs it

        try:
            fd, self._tmp = _create_temp(self.path.with_suffix(".mp4"))
            os.close(fd)  # reserved the name; ffmpeg (-y) writes into it
        except FileNotFoundError:
            raise UserError(
                f"cannot write to folder {self.path.parent}: it does not exist; choose an existing output folder (--out)"
            ) from None
        except OSError as exc:
            friendly = _user_error(exc, self.path)
            if friendly is not None:
                raise friendly from exc
            raise
        self._log = tempfile.TemporaryFile()  # ffmpeg's stderr, read back only on failure
        cmd = [
            imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y",
            "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{size[0]}x{size[1]}",
            "-framerate", str(self.fps), "-i", "pipe:0", "-an",
            "-c:v", "libx264", "-pix_fmt", "yuv420p", "-crf", "18",
            "-movflags", "+faststart", "-f", "mp4", str(self._tmp),
        ]  # fmt: skip
        # Own process group/session: a Ctrl-C in the terminal reaches us, not ffmpeg, so we
        # decide whether the video is finished or discarded.
        if os.name == "nt":
            extra: dict[str, Any] = {"creationflags": subprocess.CREATE_NEW_PROCESS_GROUP}
        else:
            extra = {"start_new_session": True}
        try:
            self._proc = subprocess.Popen(
                cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=self._log, **extra
            )
        except BaseException:
            self.abort()
            raise

    def _finish_mp4(self) -> None:
        assert self._proc is not None and self._proc.stdin is not None and self._tmp is not None
        try:
            self._proc.stdin.close()
        except OSError:
            pass  # ffmpeg already gone; its exit status tells why
        returncode = self._proc.wait()
        if returncode != 0:
            raise self._ffmpeg_failure(None)
        tmp = self._tmp
        try:
            with open(tmp, "rb+") as f:  # ffmpeg does not fsync; do it before publishing
                os.fsync(f.fileno())
            _publish(tmp, self.path, self.overwrite)  # moves or removes the temporary file
        except OSError as exc:
            friendly = _user_error(exc, self.path)
            if friendly is not None:
                raise friendly from exc
            raise
        self._tmp = None
        _fsync_dir(self.path.parent)

    def _ffmpeg_failure(self, exc: OSError | None) -> Exception:
        """The error for a failed encode: a UserError for disk full/permissions, else RuntimeError."""
        if self._proc is not None:
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        log = ""
        if self._log is not None:
            self._log.seek(0)
            log = self._log.read().decode("utf-8", "replace")
        if "No space left on device" in log:
            return _no_space(self.path)
        if "Permission denied" in log:
            return _not_writable(self.path.parent)
        last = log.strip().splitlines()[-1] if log.strip() else str(exc or "no message")
        code = self._proc.returncode if self._proc is not None else None
        return RuntimeError(f"ffmpeg could not write {self.path} (exit status {code}): {last}")

    def _cleanup(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            if proc.poll() is None:
                proc.kill()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
            if proc.stdin is not None:
                try:
                    proc.stdin.close()
                except OSError:
                    pass
        if self._log is not None:
            self._log.close()
            self._log = None
        _remove_quietly(self._tmp)
        self._tmp = None
        self._gif = []


def _pad_edge(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    """``image`` enlarged to ``size`` by repeating its last column/row (no visible border)."""
    import numpy as np

    a = np.asarray(image)
    pad_h, pad_w = size[1] - a.shape[0], size[0] - a.shape[1]
    return Image.fromarray(np.pad(a, ((0, pad_h), (0, pad_w), (0, 0)), mode="edge"))
