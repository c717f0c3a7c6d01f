"""Saving results safely: file names, atomic writes, PNGs with settings, progress videos.

Only the front ends (CLI, web UI, compare reports) call this module; the engine never does I/O.

Guarantees, because a long run must never end in a lost or half-written file:

* Every file is written to a hidden temporary file in the *same* folder (``.NAME.RANDOM.tmp``),
  flushed and fsynced, then moved into place in one step. On any exception, Ctrl-C included,
  the temporary file is removed and no partial file is left. (Only a hard kill, e.g. SIGKILL or
  a power cut, can leave a ``.*.tmp`` file behind; the real name is never half-written.)
* Unless ``overwrite=True``, an existing file is never replaced, even when another process
  creates it while we write: the move is done with ``os.link`` (which fails if the name exists)
  and then the temporary name is unlinked. On file systems without hard links we fall back to
  an existence check followed by ``os.rename``; that rename refuses to replace a file on
  Windows, but on such POSIX file systems a file created in the instant between check and
  rename could be replaced.
* Disk full and permission problems become one-line :class:`~clipguide.errors.UserError`\\ s.
"""

from __future__ import annotations

import errno
import io
import json
import os
import re
import secrets
import subprocess
import tempfile
import unicodedata
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from PIL import Image, ImageOps, UnidentifiedImageError
from PIL.PngImagePlugin import PngInfo

from .errors import UserError

if TYPE_CHECKING:  # torch is only needed by to_pil; keep reading metadata cheap
    import torch

__all__ = [
    "OutputExistsError",
    "VideoWriter",
    "atomic_write",
    "atomic_write_bytes",
    "atomic_write_text",
    "ensure_out_dir",
    "load_image",
    "png_metadata",
    "read_png_metadata",
    "save_png",
    "slugify",
    "to_pil",
    "unique_path",
]


class OutputExistsError(UserError, FileExistsError):
    """The target file exists and ``overwrite`` was not asked for.

    Both a :class:`UserError` (the front ends print it) and a :class:`FileExistsError` (code
    that picks names, like :func:`save_png`, catches it and tries the next name).
    """


# --------------------------------------------------------------------------------------------
# Names

# Windows refuses these as a file's base name whatever the extension ("con.png" included).
_RESERVED = {"con", "prn", "aux", "nul"} | {f"{p}{i}" for p in ("com", "lpt") for i in range(10)}
_NUMBER = r"-?(?:\d+(?:\.\d*)?|\.\d+)"
# The ":weight" or ":weight:stop" tail of one "|"-separated prompt (see clipguide.prompts).
_WEIGHT_TAIL = re.compile(rf"\s*:\s*({_NUMBER})(?:\s*:\s*{_NUMBER})?\s*$")


def slugify(prompt: str, max_len: int = 60) -> str:
    """A short, file-system-safe name made from the words of ``prompt``.

    The result uses only ``a-z``, ``0-9`` and single inner hyphens, so it has no path
    separators, no leading dot and no characters any common file system rejects. Accented
    letters are transliterated through Unicode NFKD ("café" → "cafe"); other non-ASCII text is
    dropped. Prompt weights (``text:1.5:0.1``) are dropped, and so are negatively weighted
    parts, which say what the image is *not*. Long slugs are cut at a word boundary where
    possible. Empty results become ``"image"``; Windows' reserved names (``con``, ``com1``, …)
    get ``-image`` appended. The result is never empty and never longer than ``max_len``.
    """
    if max_len < 1:
        raise ValueError(f"max_len must be at least 1, got {max_len}")
    kept = []
    for piece in prompt.split("|"):
        match = _WEIGHT_TAIL.search(piece)
        if match is None:
            kept.append(piece)
        elif float(match.group(1)) >= 0:
            kept.append(piece[: match.start()])
    text = unicodedata.normalize("NFKD", " ".join(kept)).encode("ascii", "ignore").decode("ascii")
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    if len(slug) > max_len:
        cut = slug[:max_len]
        if slug[max_len] != "-" and "-" in cut:
            cut = cut.rsplit("-", 1)[0]  # don't end on half a word
        slug = cut.strip("-")
    if slug in _RESERVED:
        slug = f"{slug}-image" if len(slug) + 6 <= max_len else ""
    return slug or "image"[:max_len]


def unique_path(directory: Path, stem: str, suffix: str) -> Path:
    """``directory/stem.suffix``, or ``stem-1.suffix``, ``stem-2.suffix``, … if that is taken.

    Never returns the name of an existing file (a dangling symlink counts as taken). Another
    process may still take the name before we write it; :func:`atomic_write` refuses to
    replace it then, and :func:`save_png` simply asks for the next name.
    """
    if not stem or stem in (".", "..") or any(c in stem for c in ("/", "\\", "\0")):
        raise ValueError(f"not a plain file name stem: {stem!r}")
    if suffix and not suffix.startswith("."):
        suffix = "." + suffix
    directory = Path(directory)
    candidate = directory / f"{stem}{suffix}"
    n = 1
    while os.path.lexists(candidate):
        candidate = directory / f"{stem}-{n}{suffix}"
        n += 1
    return candidate


# --------------------------------------------------------------------------------------------
# Atomic writes

_NO_SPACE = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}
_NO_PERMISSION = {errno.EACCES, errno.EPERM, errno.EROFS}


def _user_error(exc: BaseException, path: Path) -> UserError | None:
    """The one-line UserError for an OSError a user can fix, or None for anything else."""
    if not isinstance(exc, OSError) or isinstance(exc, FileExistsError):
        return None
    if exc.errno in _NO_SPACE:
        return _no_space(path)
    if exc.errno in _NO_PERMISSION:
        return _not_writable(path.parent)
    return None


def _no_space(path: Path) -> UserError:
    return UserError(
        f"no space left on the device while saving {path}: free some space or choose another --out"
    )


def _not_writable(folder: Path) -> UserError:
    return UserError(f"cannot write to folder {folder}: choose a writable --out")


def _create_temp(path: Path) -> tuple[int, Path]:
    """Create and open a new hidden temporary file beside ``path``; never reuses a name.

    ``os.open`` with mode 0o666 lets the umask decide the final permissions, so a saved file
    gets the same permissions as any other new file (``mkstemp`` would make it private).
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        tmp = path.with_name(f".{path.name[:100]}.{secrets.token_hex(6)}.tmp")
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "could not find a free temporary name", str(path))


def _remove_quietly(path: Path | None) -> None:
    if path is not None:
        try:
            os.unlink(path)
        except OSError:
            pass


def _fsync_dir(directory: Path) -> None:
    """Make the rename itself durable (POSIX); harmless where folders cannot be opened."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _publish(tmp: Path, path: Path, overwrite: bool) -> None:
    """Move the finished temporary file to ``path`` in one step (see the module docstring)."""
    if overwrite:
        os.replace(tmp, path)
        return
    try:
        os.link(tmp, path)  # atomic, and fails with EEXIST when the name is taken
    except FileExistsError:
        raise OutputExistsError(
            f"refusing to replace {path}: it already exists; choose another name or remove it"
        ) from None
    except (OSError, AttributeError, NotImplementedError):
        # No hard links here (FAT, some network and FUSE file systems): check, then rename.
        if os.path.lexists(path):
            raise OutputExistsError(
                f"refusing to replace {path}: it already exists; choose another name or remove it"
            ) from None
        os.rename(tmp, path)
        return
    os.unlink(tmp)


def atomic_write(path: Path, write: Callable[[BinaryIO], None], *, overwrite: bool = False) -> Path:
    """Create ``path`` with the bytes ``write(file)`` writes, all or nothing.

    ``write`` gets a binary file open on a temporary file in the same folder; afterwards the
    data is flushed, fsynced and moved into place. If ``write`` (or anything else) raises,
    KeyboardInterrupt included, the temporary file is removed and ``path`` is untouched.
    Without ``overwrite`` an existing ``path`` is never replaced (:class:`OutputExistsError`),
    even if it appears while writing. A full disk or an unwritable folder raises a one-line
    :class:`UserError`; other errors propagate unchanged. Returns ``path``.
    """
    path = Path(path)
    if not overwrite and os.path.lexists(path):  # fail before doing the work
        raise OutputExistsError(
            f"refusing to replace {path}: it already exists; choose another name or remove it"
        )
    tmp: Path | None = None
    try:
        try:
            fd, tmp = _create_temp(path)
        except FileNotFoundError:
            raise UserError(
                f"cannot write to folder {path.parent}: it does not exist; choose an existing --out"
            ) from None
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        _publish(tmp, path, overwrite)
    except BaseException as exc:
        _remove_quietly(tmp)
        friendly = _user_error(exc, path)
        if friendly is not None:
            raise friendly from exc
        raise
    _fsync_dir(path.parent)
    return path


def atomic_write_bytes(path: Path, data: bytes, *, overwrite: bool = False) -> Path:
    """:func:`atomic_write` of ``data``."""
    return atomic_write(path, lambda f: f.write(data), overwrite=overwrite)


def atomic_write_text(path: Path, text: str, overwrite: bool = False) -> Path:
    """:func:`atomic_write` of ``text`` as UTF-8 (line endings written as given)."""
    return atomic_write_bytes(path, text.encode("utf-8"), overwrite=overwrite)


def ensure_out_dir(path: Path) -> Path:
    """Create the output folder (and its parents) if needed and check we can write in it.

    Writability is tested by creating and removing a small probe file, because permission
    bits alone do not tell (read-only mounts, ACLs, running as root). Returns the folder.
    """
    path = Path(path).expanduser()
    if path.exists() and not path.is_dir():
        raise UserError(f"cannot use {path} as the output folder: it is a file; choose another --out")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise UserError(
            f"cannot create output folder {path}: part of that path is a file; choose another --out"
        ) from None
    except OSError as exc:
        if exc.errno in _NO_PERMISSION:
            raise UserError(f"cannot create output folder {path}: choose a writable --out") from exc
        if exc.errno in _NO_SPACE:
            raise UserError(f"cannot create output folder {path}: no space left on the device") from exc
        raise
    probe: Path | None = None
    try:
        fd, probe = _create_temp(path / "clipguide-write-test")
        os.close(fd)
    except OSError as exc:
        if exc.errno in _NO_SPACE:
            raise UserError(
                f"no space left on the device holding {path}: free some space or choose another --out"
            ) from exc
        raise _not_writable(path) from exc
    finally:
        _remove_quietly(probe)
    return path


# --------------------------------------------------------------------------------------------
# Images and PNG metadata


def to_pil(image: "torch.Tensor") -> list[Image.Image]:
    """Turn a (B,3,H,W) or (3,H,W) float tensor in [0, 1] into 8-bit RGB images.

    Values are clamped to [0, 1] and *rounded* to the nearest of 256 levels (truncating
    would darken every image by half a level). NaN or Inf raise ``ValueError``: saving them
    would silently produce a black image from a run that diverged.
    """
    import torch

    if not isinstance(image, torch.Tensor):
        raise TypeError(f"expected a torch.Tensor, got {type(image).__name__}")
    x = image.detach()
    if x.ndim == 3:
        x = x.unsqueeze(0)
    if x.ndim != 4 or x.shape[1] != 3:
        raise ValueError(f"expected an image tensor of shape (B,3,H,W) or (3,H,W), got {tuple(image.shape)}")
    if not x.is_floating_point():
        raise ValueError(f"expected a float image tensor with values in [0, 1], got {x.dtype}")
    x = x.to(device="cpu", dtype=torch.float32)
    bad = int((~torch.isfinite(x)).sum())
    if bad:
        raise ValueError(
            f"image contains {bad} NaN/Inf values; refusing to save it "
            "(the run diverged: try a lower learning rate)"
        )
    u8 = x.clamp(0.0, 1.0).mul(255.0).round().to(torch.uint8).permute(0, 2, 3, 1).contiguous().numpy()
    return [Image.fromarray(a) for a in u8]


def png_metadata(settings: Mapping[str, Any], *, version: str, prompt: str, seed: int) -> dict[str, str]:
    """The text chunks clipguide writes into each PNG.

    ``"clipguide"`` holds the settings as JSON (sorted keys, so identical settings give
    identical bytes) and ``"clipguide:version"`` the version that made the image; ``"prompt"``,
    ``"seed"`` and ``"Software"`` are for people and other tools.
    """
    return {
        "clipguide": json.dumps(dict(settings), sort_keys=True, ensure_ascii=False, default=str),
        "clipguide:version": version,
        "prompt": prompt,
        "seed": str(seed),
        "Software": f"clipguide {version}",
    }


def _png_info(metadata: Mapping[str, str]) -> PngInfo:
    info = PngInfo()
    for key in sorted(metadata):  # sorted: equal dicts give equal bytes whatever their order
        value = metadata[key]
        if not isinstance(key, str) or not isinstance(value, str):
            raise TypeError(f"PNG metadata keys and values must be str, got {key!r}: {type(value).__name__}")
        try:
            encoded = key.encode("latin-1")
        except UnicodeEncodeError:
            raise ValueError(f"PNG metadata key {key!r} must be Latin-1 text") from None
        if not 1 <= len(encoded) <= 79 or "\0" in key:
            raise ValueError(f"PNG metadata key {key!r} must be 1-79 characters without NUL")
        # Pillow writes Latin-1 values as tEXt and anything else as UTF-8 iTXt.
        info.add_text(key, value)
    return info


def save_png(image: Image.Image, out_dir: Path, stem: str, metadata: dict[str, str]) -> Path:
    """Save ``image`` as ``out_dir/stem.png`` (or ``stem-N.png``) with ``metadata`` as text chunks.

    The bytes depend only on the pixels and the metadata (no timestamps, keys sorted), so the
    same run saved twice gives identical files. The write is atomic and never replaces an
    existing file: if another process takes the chosen name meanwhile, the next free name is
    used. Returns the path written.
    """
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", pnginfo=_png_info(metadata), compress_level=6)
    data = buffer.getvalue()
    for _ in range(1000):
        path = unique_path(out_dir, stem, ".png")
        try:
            return atomic_write_bytes(path, data)
        except OutputExistsError:
            continue  # lost a race for that name; take the next one
    raise UserError(f"cannot find a free file name for {stem}.png in {out_dir}: choose another --out")


def read_png_metadata(path: Path) -> dict[str, str]:
    """All text chunks (tEXt, zTXt, iTXt) of a PNG, e.g. one written by :func:`save_png`.

    A missing, unreadable or non-PNG file raises a one-line :class:`UserError`. A PNG without
    text chunks gives ``{}``; callers that need clipguide's keys check for them.
    """
    path = Path(path).expanduser()

    def fail(reason: str) -> UserError:
        return UserError(f"{path} is not a PNG made by clipguide: {reason}")

    with _open_image(path, fail) as im:
        if im.format != "PNG":
            raise fail(f"it is a {im.format} image")
        return {str(k): str(v) for k, v in im.text.items()}  # .text also reads chunks after the pixels


def load_image(path: str | Path, size: tuple[int, int] | None = None) -> Image.Image:
    """Open an image file as RGB, optionally resized to ``size`` = (width, height).

    The EXIF orientation is applied (phone photos are otherwise sideways) and transparent
    areas are composited onto white. ``size`` resizes exactly (Lanczos), without keeping the
    aspect ratio, as init and image prompts are used in the VQGAN+CLIP lineage. Any problem
    with the file, including images larger than Pillow's ``Image.MAX_IMAGE_PIXELS``
    (decompression-bomb guard), raises a one-line :class:`UserError` naming the path.
    """
    if size is not None and (len(size) != 2 or any(int(s) != s or s < 1 for s in size)):
        raise ValueError(f"size must be (width, height) in positive pixels, got {size!r}")
    path = Path(path).expanduser()

    def fail(reason: str) -> UserError:
        return UserError(f"cannot read image {path}: {reason}")

    with _open_image(path, fail) as im:
        limit = Image.MAX_IMAGE_PIXELS
        width, height = im.size
        if limit is not None and width * height > limit:
            raise fail(f"{width}x{height} pixels is more than the safety limit of {limit} "
                       "(a possible decompression bomb); use a smaller image")
        im = ImageOps.exif_transpose(im)
        im.load()
        rgb = _flatten_to_rgb(im)
    if size is not None and rgb.size != tuple(size):
        rgb = rgb.resize((int(size[0]), int(size[1])), Image.Resampling.LANCZOS)
    return rgb


@contextmanager
def _open_image(path: Path, fail: Callable[[str], UserError]) -> Iterator[Image.Image]:
    """``Image.open(path)``, with every way opening or reading it can fail (in the ``with`` body
    too) turned into one line from ``fail(reason)``."""
    if not path.exists():
        raise fail("no such file; check the path")
    if path.is_dir():
        raise fail("it is a folder, not an image file")
    try:
        with Image.open(path) as im:
            yield im
    except UserError:
        raise
    except Image.DecompressionBombError:
        raise fail(f"it has more pixels than the safety limit of {Image.MAX_IMAGE_PIXELS} "
                   "(a possible decompression bomb); use a smaller image") from None
    except UnidentifiedImageError:
        raise fail("not an image file (Pillow cannot identify its format)") from None
    except PermissionError:
        raise fail("permission denied") from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise fail(f"the file is damaged or truncated ({exc})") from None


def _flatten_to_rgb(im: Image.Image) -> Image.Image:
    """RGB, with any transparency composited onto white (plain convert would show black)."""
    if im.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in im.info:
        rgba = im.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return im.convert("RGB")


# --------------------------------------------------------------------------------------------
# Progress videos


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
                f"cannot write to folder {self.path.parent}: it does not exist; choose an existing --out"
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
