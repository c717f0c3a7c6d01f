"""Safe file names: a slug from a prompt, and the next free name in a folder."""

from __future__ import annotations

import os
import re
import unicodedata
from pathlib import Path

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

