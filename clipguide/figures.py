"""Pictures of many pictures: labelled grids and strips, and matplotlib figures without pyplot.

Shared by the compare report, the telephone study and the animation previews.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

from PIL import Image, ImageDraw, ImageFont, ImageOps

#: Grid geometry: each image is scaled to GRID_TILE pixels wide.
GRID_TILE = 160
GRID_LABEL_WIDTH = 170
GRID_HEADER_HEIGHT = 22


def font(size: int = 14) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has no size argument
        return ImageFont.load_default()


def fit(draw: ImageDraw.ImageDraw, text: str, font: Any, width: int) -> str:
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength(text + "...", font=font) > width:
        text = text[:-1]
    return text + "..."


def make_grid(rows: Sequence[tuple[str, Sequence[Image.Image]]], seeds: Sequence[int], *,
              tile: int = GRID_TILE, headers: Sequence[str] | None = None) -> Image.Image:
    """One row per style, one column per seed, the style name left of each row.

    ``headers`` replaces the "seed N" column titles (a telephone strip's "round r"); an empty list
    leaves the titles out.

    Every image is scaled to ``tile`` pixels wide (small ones with nearest-neighbour, so their
    pixels stay visible); the grid is ``GRID_LABEL_WIDTH + cols·tile`` by
    ``GRID_HEADER_HEIGHT + rows·tile_h`` pixels, ``tile_h`` following the first image's aspect.
    """
    first = rows[0][1][0]
    tw = tile
    th = max(1, round(first.height * tw / first.width))
    cols = max(len(images) for _, images in rows)
    grid = Image.new("RGB", (GRID_LABEL_WIDTH + cols * tw, GRID_HEADER_HEIGHT + len(rows) * th), "white")
    draw = ImageDraw.Draw(grid)
    face = font()
    titles = [f"seed {seed}" for seed in seeds] if headers is None else list(headers)
    for c, title in enumerate(titles[:cols]):
        draw.text((GRID_LABEL_WIDTH + c * tw + 4, 4), fit(draw, title, face, tw - 8), fill="black", font=face)
    for r, (label, images) in enumerate(rows):
        y = GRID_HEADER_HEIGHT + r * th
        draw.text((6, y + th // 2 - 8), fit(draw, label, face, GRID_LABEL_WIDTH - 12), fill="black", font=face)
        for c, im in enumerate(images):
            smaller = im.width > tw or im.height > th
            resample = Image.Resampling.LANCZOS if smaller else Image.Resampling.NEAREST
            thumb = ImageOps.contain(im.convert("RGB"), (tw, th), method=resample)
            grid.paste(thumb, (GRID_LABEL_WIDTH + c * tw + (tw - thumb.width) // 2, y + (th - thumb.height) // 2))
    return grid




def new_figure(width: float = 7, height: float = 5):
    """A matplotlib Figure on the Agg canvas: no pyplot, so no global backend is set or changed (a
    notebook's inline backend stays as it is), and nothing is imported until a plot is made."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=120)
    FigureCanvasAgg(fig)
    return fig


def figure_png(fig) -> bytes:
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def png_of(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()
