"""What a shared web UI lets people ask for: the operator's caps, uploads, and the model choices."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import UserError
from ..settings import Settings

#: CLIP models offered besides the shipped ones (open_clip NAME/PRETRAINED tags); the operator can replace them.
DEFAULT_CLIPS = ("ViT-B-32/openai", "ViT-B-16/openai", "RN50/openai", "ViT-L-14/openai")
#: Image formats an upload may have (checked by opening it with Pillow, not by its name).
UPLOAD_FORMATS = ("PNG", "JPEG", "WEBP", "GIF", "BMP", "TIFF")


@dataclass(frozen=True)
class Limits:
    """Operator caps for a shared server (lower than :data:`clipguide.settings.LIMITS`)."""

    max_size: int = 512  # pixels per side
    max_steps: int = 1000
    max_seeds: int = 4
    max_upload_mb: float = 10.0
    max_prompt_chars: int = 1000  # CLIP reads 77 tokens; a longer prompt is mostly cut anyway
    max_frames: int = 240  # animations
    max_rounds: int = 100  # telephone

    def check(self, settings: Settings) -> None:
        """Raise a one-line UserError naming the cap a request goes over."""
        if settings.size is not None and max(settings.size) > self.max_size:
            w, h = settings.size
            raise UserError(f"size {w}x{h} is over this server's limit of {self.max_size}px per side; "
                            "use a smaller size")
        if settings.steps > self.max_steps:
            raise UserError(f"{settings.steps} steps is over this server's limit of {self.max_steps}; use fewer steps")
        if settings.seeds > self.max_seeds:
            raise UserError(f"{settings.seeds} seeds is over this server's limit of {self.max_seeds}; use fewer seeds")
        self.check_prompt(settings.prompt)
        self.check_prompt(settings.negative, what="the negative prompt")

    def check_prompt(self, text: str, what: str = "the prompt") -> None:
        if len(text) > self.max_prompt_chars:
            raise UserError(f"{what} is {len(text)} characters, over this server's limit of "
                            f"{self.max_prompt_chars}; shorten it")

    def check_count(self, value: float, cap: int, what: str) -> None:
        if value > cap:
            raise UserError(f"{int(value)} {what} is over this server's limit of {cap}; use fewer {what}")


def default_generators() -> dict[str, str]:
    """Label → generator spec: every generator the manifest knows (the demo among them) and the drawers."""
    from ..registry import GENERATORS
    from ..weights import load_manifest

    drawers = [n for n in GENERATORS if not GENERATORS.info.get(n, {}).get("weights", True)]
    return {**{name: name for name in load_manifest()}, **{name: name for name in drawers}}


def default_clips() -> dict[str, str]:
    """Label → CLIP spec: the manifest's CLIPs (the shipped demo ones) plus a few open_clip models."""
    from ..perceptor import clip_names

    return {**{spec: spec for spec in clip_names()}, **{name: name for name in DEFAULT_CLIPS}}


def check_upload(path: str | None, limits: Limits, what: str) -> str | None:
    """Accept an uploaded file only if Gradio stored it, it is small enough and it is an image."""
    if not path:
        return None
    from gradio.utils import get_upload_folder
    from PIL import Image, UnidentifiedImageError

    file = Path(path).resolve()
    if not file.is_relative_to(Path(get_upload_folder()).resolve()) or not file.is_file():
        raise UserError(f"{what} must be a file uploaded through this page, not a path on the server")
    megabytes = file.stat().st_size / 2**20
    if megabytes > limits.max_upload_mb:
        raise UserError(f"{what} is {megabytes:.1f} MB, over this server's limit of {limits.max_upload_mb:g} MB; "
                        "upload a smaller image")
    try:
        with Image.open(file) as im:
            kind = im.format
            im.verify()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        raise UserError(f"{what} is not an image Pillow can read: upload a PNG, JPEG or WebP file") from None
    if kind not in UPLOAD_FORMATS:
        raise UserError(f"{what} is a {kind} image: upload a PNG, JPEG or WebP file")
    return str(file)
