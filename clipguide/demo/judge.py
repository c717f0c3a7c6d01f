"""A judge that is not CLIP: says what a (generated) shapes-world image shows.

Steering tests must not ask the guiding CLIP whether it got what it wanted, so everything is read
from pixels: colours from pixel statistics, shape and position from the outline of the figure
(:mod:`clipguide.demo.figure`: find the region that stands out, fit the world's shapes to it).
No learned weights: a CNN trained on clean renders read generated pictures no better than chance
(docs/demo-models-history.md, runs 19 and 20), and `benchmarks/judge_check.py` measures this reading
against pictures labelled by eye.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from clipguide.demo.figure import find_figure, name_shape, position_of
from clipguide.demo.shapes import COLOURS, GRADIENTS

_NAMES = list(COLOURS)
_RGB = np.array([COLOURS[n] for n in _NAMES], dtype=float)
FG_THRESHOLD = 60.0  # RGB distance (0-255) from the local background that counts as "shape"
GRADIENT_THRESHOLD = 80.0  # top vs bottom background difference that counts as a gradient


def nearest_colour_index(pixels: np.ndarray) -> np.ndarray:
    """Index into the named colours of the nearest one to each of `pixels` (N, 3)."""
    return ((pixels[:, None, :] - _RGB[None]) ** 2).sum(-1).argmin(1)


def nearest_colour(rgb: np.ndarray) -> str:
    """Name of the named colour closest to `rgb` (0-255)."""
    return _NAMES[int(nearest_colour_index(np.asarray(rgb, dtype=float).reshape(1, 3))[0])]


def _row_background(img: np.ndarray, band: int = 3) -> np.ndarray:
    """Per-row background estimate (H, 3): median of the two outer columns on each side over a
    window of rows. Medians shrug off a shape that touches the border in a few rows."""
    h = img.shape[0]
    edges = np.concatenate([img[:, :2], img[:, -2:]], axis=1)  # (H, 4, 3)
    out = np.empty((h, 3))
    for y in range(h):
        lo, hi = max(0, y - band), min(h, y + band + 1)
        out[y] = np.median(edges[lo:hi].reshape(-1, 3), axis=0)
    return out


def background_name(img: np.ndarray) -> str:
    """Plain colour or gradient name of the background of an (H, W, 3) 0-255 image."""
    h = img.shape[0]
    k = max(1, h // 8)
    ring = np.concatenate([img[:2].reshape(-1, 3), img[-2:].reshape(-1, 3),
                           img[:, :2].reshape(-1, 3), img[:, -2:].reshape(-1, 3)])
    top = np.median(np.concatenate([img[:2].reshape(-1, 3), img[:k, :2].reshape(-1, 3),
                                    img[:k, -2:].reshape(-1, 3)]), axis=0)
    bottom = np.median(np.concatenate([img[-2:].reshape(-1, 3), img[-k:, :2].reshape(-1, 3),
                                       img[-k:, -2:].reshape(-1, 3)]), axis=0)
    if np.linalg.norm(top - bottom) > GRADIENT_THRESHOLD:
        # the bands sit 1/16 of the way into the gradient; compare with the colours there
        def err(name: str) -> float:
            a, b = (np.array(COLOURS[c], dtype=float) for c in GRADIENTS[name])
            t = 1.0 / 16
            return float(np.linalg.norm(top - (a + t * (b - a))) + np.linalg.norm(bottom - (b + t * (a - b))))

        best = min(GRADIENTS, key=err)
        # a gradient nobody named is still better described by its nearest plain colour
        if err(best) < 2 * GRADIENT_THRESHOLD:
            return best
    return nearest_colour(np.median(ring, axis=0))


def shape_colour_name(img: np.ndarray, background: str | None = None) -> str:
    """The named colour most of the pixels that stand out from the local background have, or "none".

    Each pixel is named first and the names are counted: a per-channel median of a red shape and
    blue specks would be purple, a colour that is nowhere in the image. Pixels named like the
    background (`background`, default: read from the border) do not count: the shapes world never
    draws a shape in its background's colour, and on a mottled ground those pixels are ground."""
    bg = _row_background(img)
    dist = np.linalg.norm(img - bg[:, None, :], axis=-1)
    names = nearest_colour_index(img[dist > FG_THRESHOLD])
    background = background or background_name(img)
    ground = GRADIENTS.get(background, (background,))
    names = names[~np.isin(names, [_NAMES.index(c) for c in ground if c in _NAMES])]
    if len(names) < 0.01 * dist.size:
        return "none"
    return _NAMES[int(np.bincount(names, minlength=len(_NAMES)).argmax())]


def side_of(position: str) -> str:
    """The horizontal third of a named position: "top left" and "bottom left" are on the left."""
    return "left" if "left" in position else "right" if "right" in position else "centre"


class Judge:
    """Shape and position from the figure's outline, colours from pixel statistics."""

    SIZE = 64  # pictures are read at this size: the figure's thresholds were set there

    @torch.no_grad()
    def predict(self, images: torch.Tensor) -> list[dict]:
        """`images` (B, 3, H, W) in [0, 1] -> one dict per image with keys shape (one of the world's
        four, or "none" when nothing stands out), shape_fit (how well that shape covers the figure,
        IoU), shape_colour, position (one of the nine, or "none"), side (left / centre / right, or
        "none") and background."""
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"expected images of shape (B, 3, H, W), got {tuple(images.shape)}")
        x = images.detach().float().clamp(0, 1).cpu()
        if x.shape[-2:] != (self.SIZE, self.SIZE):
            x = F.interpolate(x, size=(self.SIZE, self.SIZE), mode="bilinear", antialias=True, align_corners=False)
        out = []
        for pixels in x.permute(0, 2, 3, 1).numpy() * 255.0:
            background = background_name(pixels)
            verdict = {"shape": "none", "shape_fit": 0.0, "position": "none", "side": "none"}
            if (figure := find_figure(pixels)) is not None:
                shape, fit = name_shape(figure.mask)
                position = position_of(*figure.centre)
                verdict = {"shape": shape, "shape_fit": fit, "position": position, "side": side_of(position)}
            out.append({**verdict, "shape_colour": shape_colour_name(pixels, background), "background": background})
        return out
