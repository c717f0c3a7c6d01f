"""Colours as users write them, and the named palettes: ``"#1b1b3a,#f2a541"``, ``"pico-8"``, ``"white"``.

Used by the palette and edge loss terms and by the pixel drawer's palette snapping; the settings
check every colour here, before any model loads. No torch: colours are plain (r, g, b) floats in
[0, 1], and the terms turn them into tensors themselves.
"""

from __future__ import annotations

import re

from .errors import UserError, unknown

RGB = tuple[float, float, float]

#: Colour names a user may write instead of a hex code (edge colour, palette entries).
COLOUR_NAMES: dict[str, str] = {
    "black": "#000000", "white": "#ffffff", "grey": "#808080", "gray": "#808080", "red": "#ff0000",
    "green": "#00a000", "blue": "#0000ff", "yellow": "#ffff00", "cyan": "#00ffff", "magenta": "#ff00ff",
    "orange": "#ff8000", "purple": "#800080", "pink": "#ff80c0", "brown": "#804000",
}

#: Named palettes: well-known fixed palettes of pixel-art hardware and a few plain ones.
PALETTES: dict[str, tuple[str, ...]] = {
    # PICO-8 fantasy console (16 colours)
    "pico-8": ("#000000", "#1d2b53", "#7e2553", "#008751", "#ab5236", "#5f574f", "#c2c3c7", "#fff1e8",
               "#ff004d", "#ffa300", "#ffec27", "#00e436", "#29adff", "#83769c", "#ff77a8", "#ffccaa"),
    # the original Game Boy's four greens
    "gameboy": ("#0f380f", "#306230", "#8bac0f", "#9bbc0f"),
    # CGA palette 1, high intensity
    "cga": ("#000000", "#55ffff", "#ff55ff", "#ffffff"),
    "black-white": ("#000000", "#ffffff"),
    "grayscale": ("#000000", "#555555", "#aaaaaa", "#ffffff"),
    "sepia": ("#2b1d0e", "#704214", "#a0785a", "#e0c9a6", "#f5ecd9"),
}

_HEX = re.compile(r"^#?([0-9a-fA-F]{3}|[0-9a-fA-F]{6})$")


def parse_colour(text: str, *, what: str = "colour") -> RGB:
    """``"#f2a541"``, ``"f2a541"``, ``"#fa4"`` or a name from :data:`COLOUR_NAMES` → (r, g, b) in [0, 1]."""
    spec = str(text).strip()
    spec = COLOUR_NAMES.get(spec.lower(), spec)
    match = _HEX.match(spec)
    if match is None:
        raise UserError(f"{what} {text!r} is not a colour: write a hex code like '#f2a541' or a name "
                        f"({', '.join(sorted(COLOUR_NAMES))})")
    digits = match[1] if len(match[1]) == 6 else "".join(c * 2 for c in match[1])
    return tuple(int(digits[i:i + 2], 16) / 255 for i in (0, 2, 4))  # type: ignore[return-value]


def parse_palette(text: str) -> list[RGB]:
    """A named palette or comma-separated colours → at least two distinct (r, g, b) colours."""
    spec = str(text).strip()
    if not spec:
        raise UserError("the palette is empty: give colours like '#1b1b3a,#f2a541' or a name "
                        f"({', '.join(PALETTES)}) with --palette")
    key = spec.lower().replace("_", "-").replace(" ", "-")
    if key in PALETTES:
        entries: tuple[str, ...] = PALETTES[key]
    elif "," in spec or spec.startswith("#") or _HEX.match(spec) or spec.lower() in COLOUR_NAMES:
        entries = tuple(part for part in (p.strip() for p in spec.split(",")) if part)
    else:
        raise unknown("palette", spec, PALETTES)
    colours = [parse_colour(entry, what="palette colour") for entry in entries]
    if len(set(colours)) < 2:
        raise UserError(f"palette {text!r} has only one colour: a palette needs at least two, "
                        "e.g. '#1b1b3a,#f2a541' (--palette)")
    return colours


__all__ = ["parse_colour", "parse_palette", "PALETTES", "COLOUR_NAMES", "RGB"]
