"""Images in and out: tensors to 8-bit pictures, PNGs with text chunks, reading image files."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from PIL import Image, ImageOps, UnidentifiedImageError
from PIL.PngImagePlugin import PngInfo

from ..errors import UserError
from .files import OutputExistsError, atomic_write_bytes
from .names import unique_path

if TYPE_CHECKING:  # torch is only needed by to_pil; keep reading metadata cheap
    import torch

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


def png_bytes(image: Image.Image, metadata: Mapping[str, str]) -> bytes:
    """The PNG file of ``image`` with ``metadata`` as text chunks. The bytes depend only on the
    pixels and the metadata (no timestamps, keys sorted): the same run saved twice is identical."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", pnginfo=_png_info(metadata), compress_level=6)
    return buffer.getvalue()


def save_png(image: Image.Image, out_dir: Path, stem: str, metadata: dict[str, str]) -> Path:
    """Save ``image`` as ``out_dir/stem.png`` (or ``stem-N.png``) with ``metadata`` as text chunks.

    The write is atomic and never replaces an existing file: if another process takes the
    chosen name meanwhile, the next free name is used. Returns the path written.
    """
    data = png_bytes(image, metadata)
    for _ in range(1000):
        path = unique_path(out_dir, stem, ".png")
        try:
            return atomic_write_bytes(path, data)
        except OutputExistsError:
            continue  # lost a race for that name; take the next one
    raise UserError(f"cannot find a free file name for {stem}.png in {out_dir}: choose another output folder (--out)")


def write_png(image: Image.Image, path: Path, metadata: Mapping[str, str], *, overwrite: bool = False) -> Path:
    """Save ``image`` at exactly ``path`` (atomically; an existing file only replaced with ``overwrite``)."""
    return atomic_write_bytes(Path(path), png_bytes(image, metadata), overwrite=overwrite)


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

