"""A procedural "shapes world": the training data of clipguide's offline demo models.

No pretrained CLIP or VQGAN can be downloaded on development machines, so the demo models are
trained on images of one shape (circle, square, triangle, star) of a named colour and size at a
named position on a plain or two-colour gradient background, each with a caption.

Everything here is deterministic from a seed, does no I/O and renders at any size. Shapes are
drawn from signed distance fields with analytic anti-aliasing (coverage = clamp(0.5 - d/px)),
which gives the same soft edges as supersampling at a fraction of the cost.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Iterable

import numpy as np

# Named colours (sRGB 0-255). Kept far apart so that pixel statistics can name them reliably.
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (225, 30, 35),
    "green": (35, 165, 55),
    "blue": (35, 70, 215),
    "yellow": (250, 220, 40),
    "orange": (250, 135, 20),
    "purple": (125, 40, 165),
    "white": (245, 245, 245),
    "black": (20, 20, 20),
}

# Two-colour vertical gradients (top colour, bottom colour), named like a user would ask for them.
GRADIENTS: dict[str, tuple[str, str]] = {
    "sunset sky": ("purple", "orange"),
    "day sky": ("blue", "white"),
    "night sky": ("black", "blue"),
}

SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "star")
SIZES: dict[str, float] = {"small": 0.13, "large": 0.22}  # "radius" as a fraction of the image side

# Position name -> shape centre (x, y) as fractions of the image side (y grows downward).
POSITIONS: dict[str, tuple[float, float]] = {
    "centre": (0.5, 0.5),
    "left": (0.27, 0.5),
    "right": (0.73, 0.5),
    "top": (0.5, 0.27),
    "bottom": (0.5, 0.73),
    "top left": (0.27, 0.27),
    "top right": (0.73, 0.27),
    "bottom left": (0.27, 0.73),
    "bottom right": (0.73, 0.73),
}

BACKGROUNDS: tuple[str, ...] = tuple(COLOURS) + tuple(GRADIENTS)

# Position phrases (the first is the canonical one used in evaluation prompts).
_POSITION_PHRASES: dict[str, tuple[str, ...]] = {
    "centre": ("in the centre", "in the center", "in the middle"),
    "left": ("on the left",),
    "right": ("on the right",),
    "top": ("at the top",),
    "bottom": ("at the bottom",),
    "top left": ("in the top left", "in the top left corner"),
    "top right": ("in the top right", "in the top right corner"),
    "bottom left": ("in the bottom left", "in the bottom left corner"),
    "bottom right": ("in the bottom right", "in the bottom right corner"),
}

# Caption style -> the scene fields it mentions. A caption is true of every scene that agrees
# on those fields; training uses this to avoid treating true captions as negatives.
STYLE_FIELDS: dict[str, tuple[str, ...]] = {
    "full": ("size", "colour", "shape", "position", "background"),
    "placed": ("colour", "shape", "position", "background"),
    "short": ("colour", "shape", "background"),
    "sized": ("size", "colour", "shape", "background"),
    "position": ("colour", "shape", "position"),
    "shape": ("colour", "shape"),
    "background": ("background",),
}
STYLES: tuple[str, ...] = tuple(STYLE_FIELDS)

# How often each style is drawn for training captions (full captions dominate, short ones
# are common enough that prompts such as "a red circle on a blue background" are in-distribution).
STYLE_WEIGHTS: dict[str, float] = {
    "full": 0.35, "placed": 0.2, "short": 0.15, "sized": 0.05,
    "position": 0.1, "shape": 0.1, "background": 0.05,
}


@dataclass(frozen=True)
class Scene:
    """One image of the shapes world. `jitter` nudges centre/size/rotation so no two look alike."""

    shape: str
    colour: str
    size: str
    position: str
    background: str
    dx: float = 0.0  # centre offset, fraction of the side
    dy: float = 0.0
    scale: float = 1.0  # multiplies the size's radius
    angle: float = 0.0  # rotation in degrees

    def to_dict(self) -> dict:
        return asdict(self)


def _background_colours(background: str) -> tuple[str, ...]:
    return GRADIENTS[background] if background in GRADIENTS else (background,)


def allowed_colours(background: str) -> tuple[str, ...]:
    """Shape colours that stay visible on `background` (never one of its own colours)."""
    taken = set(_background_colours(background))
    return tuple(c for c in COLOURS if c not in taken)


def sample_scene(rng: np.random.Generator, gradient_p: float = 0.25) -> Scene:
    """Draw a random scene: gradients with probability `gradient_p`, else a plain colour."""
    if rng.random() < gradient_p:
        background = str(rng.choice(list(GRADIENTS)))
    else:
        background = str(rng.choice(list(COLOURS)))
    return Scene(
        shape=str(rng.choice(SHAPES)),
        colour=str(rng.choice(allowed_colours(background))),
        size=str(rng.choice(list(SIZES))),
        position=str(rng.choice(list(POSITIONS))),
        background=background,
        dx=float(rng.uniform(-0.03, 0.03)),
        dy=float(rng.uniform(-0.03, 0.03)),
        scale=float(rng.uniform(0.9, 1.1)),
        angle=float(rng.uniform(-12.0, 12.0)),
    )


def vary(scene: Scene, field: str, rng: np.random.Generator) -> Scene:
    """The same scene with `field` changed to a different valid value (a "hard negative")."""
    if field == "shape":
        return replace(scene, shape=str(rng.choice([s for s in SHAPES if s != scene.shape])))
    if field == "position":
        return replace(scene, position=str(rng.choice([p for p in POSITIONS if p != scene.position])))
    if field == "size":
        return replace(scene, size="small" if scene.size == "large" else "large")
    if field == "colour":
        choices = [c for c in allowed_colours(scene.background) if c != scene.colour]
        return replace(scene, colour=str(rng.choice(choices)))
    if field == "background":
        choices = [b for b in BACKGROUNDS if b != scene.background and scene.colour not in _background_colours(b)]
        return replace(scene, background=str(rng.choice(choices)))
    raise ValueError(f"unknown scene field {field!r}")


# --------------------------------------------------------------------------- rendering

def _polygon_sdf(px: np.ndarray, py: np.ndarray, verts: np.ndarray) -> np.ndarray:
    """Signed distance to a closed polygon (negative inside), vectorised over pixels."""
    d = np.full(px.shape, np.inf)
    inside = np.zeros(px.shape, dtype=bool)
    n = len(verts)
    for i in range(n):
        ax, ay = verts[i]
        bx, by = verts[(i + 1) % n]
        ex, ey = bx - ax, by - ay
        wx, wy = px - ax, py - ay
        t = np.clip((wx * ex + wy * ey) / (ex * ex + ey * ey), 0.0, 1.0)
        d = np.minimum(d, np.hypot(wx - ex * t, wy - ey * t))
        # even-odd crossing test for the inside flag
        crosses = ((ay > py) != (by > py)) & (px < ax + (py - ay) * ex / (ey + 1e-12))
        inside ^= crosses
    return np.where(inside, -d, d)


def _shape_vertices(shape: str, r: float, angle: float) -> np.ndarray:
    if shape == "square":
        r = r * 0.85  # same visual weight as the circle
        base = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]], dtype=float) * r
    elif shape == "triangle":
        a = np.deg2rad(np.array([-90.0, 30.0, 150.0]))  # pointing up
        base = np.stack([np.cos(a), np.sin(a)], 1) * r * 1.15
        base[:, 1] += r * 0.15  # centre the triangle's bounding box
    elif shape == "star":
        a = np.deg2rad(-90.0 + 36.0 * np.arange(10))
        rad = np.where(np.arange(10) % 2 == 0, 1.15 * r, 0.5 * r)
        base = np.stack([np.cos(a) * rad, np.sin(a) * rad], 1)
    else:
        raise ValueError(f"unknown shape {shape!r}")
    t = np.deg2rad(angle)
    rot = np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])
    return base @ rot.T


def shape_mask(scene: Scene, size: int | tuple[int, int] = 64) -> np.ndarray:
    """Anti-aliased coverage (H, W) in [0, 1] of the scene's shape."""
    w, h = (size, size) if isinstance(size, int) else size
    side = min(w, h)
    cx0, cy0 = POSITIONS[scene.position]
    cx, cy = (cx0 + scene.dx) * w, (cy0 + scene.dy) * h
    r = SIZES[scene.size] * scene.scale * side
    ys, xs = np.mgrid[0:h, 0:w].astype(float) + 0.5
    if scene.shape == "circle":
        d = np.hypot(xs - cx, ys - cy) - r
    else:
        v = _shape_vertices(scene.shape, r, scene.angle)
        d = _polygon_sdf(xs - cx, ys - cy, v)
    return np.clip(0.5 - d, 0.0, 1.0)


def background_image(background: str, size: int | tuple[int, int] = 64) -> np.ndarray:
    """Float (H, W, 3) background in 0-255: a plain colour or a top-to-bottom gradient."""
    w, h = (size, size) if isinstance(size, int) else size
    cols = _background_colours(background)
    top = np.array(COLOURS[cols[0]], dtype=float)
    bottom = np.array(COLOURS[cols[-1]], dtype=float)
    t = (np.arange(h, dtype=float) + 0.5) / h
    rows = top[None] * (1 - t[:, None]) + bottom[None] * t[:, None]
    return np.broadcast_to(rows[:, None, :], (h, w, 3)).copy()


def render(scene: Scene, size: int | tuple[int, int] = 64) -> np.ndarray:
    """Render `scene` to a uint8 (H, W, 3) array. `size` is an int or (width, height)."""
    bg = background_image(scene.background, size)
    m = shape_mask(scene, size)[..., None]
    fg = np.array(COLOURS[scene.colour], dtype=float)
    return np.clip(np.rint(bg * (1 - m) + fg * m), 0, 255).astype(np.uint8)


# --------------------------------------------------------------------------- captions

def _a(word: str) -> str:
    """The indefinite article for `word` ("an orange circle", "a red circle")."""
    return "an" if word[0] in "aeiou" else "a"


def _background_phrase(background: str, rng: np.random.Generator | None) -> str:
    if background in GRADIENTS:
        # "on a sunset sky" and "on a sunset sky background" both occur
        if rng is not None and rng.random() < 0.5:
            return f"a {background}"
        return f"a {background} background"
    return f"{_a(background)} {background} background"


def caption(scene: Scene, style: str = "full", rng: np.random.Generator | None = None) -> str:
    """Caption `scene` in `style` (see STYLE_FIELDS). With an `rng`, phrasing varies a little;
    without one the canonical phrasing is used (what evaluation prompts use)."""
    if style not in STYLE_FIELDS:
        raise ValueError(f"unknown caption style {style!r}; choose from {', '.join(STYLES)}")
    fields = STYLE_FIELDS[style]
    if fields == ("background",):
        return _background_phrase(scene.background, rng)
    words = [scene.size] if "size" in fields else []
    words += [scene.colour, scene.shape]
    words.insert(0, _a(words[0]))
    if "position" in fields:
        phrases = _POSITION_PHRASES[scene.position]
        words.append(phrases[int(rng.integers(len(phrases)))] if rng is not None else phrases[0])
    if "background" in fields:
        words += ["on", _background_phrase(scene.background, rng)]
    return " ".join(words)


def random_style(rng: np.random.Generator) -> str:
    p = np.array([STYLE_WEIGHTS[s] for s in STYLES])
    return STYLES[int(rng.choice(len(STYLES), p=p / p.sum()))]


def compatible(scene: Scene, style: str, described: Scene) -> bool:
    """True when a `style` caption of `described` is also a true caption of `scene`."""
    return all(getattr(scene, f) == getattr(described, f) for f in STYLE_FIELDS[style])


# --------------------------------------------------------------------------- batches

def make_scenes(seed: int, n: int) -> list[Scene]:
    rng = np.random.default_rng(seed)
    return [sample_scene(rng) for _ in range(n)]


def render_batch(scenes: Iterable[Scene], size: int | tuple[int, int] = 64) -> np.ndarray:
    """uint8 (N, H, W, 3) images of `scenes`."""
    return np.stack([render(s, size) for s in scenes])


def make_batch(seed: int, n: int, size: int | tuple[int, int] = 64,
               style: str | None = "full") -> tuple[np.ndarray, list[str], list[Scene]]:
    """`n` random scenes from `seed`: (uint8 images (N, H, W, 3), captions, scenes).
    `style=None` draws a random caption style per image with varied phrasing."""
    rng = np.random.default_rng(seed)
    scenes = [sample_scene(rng) for _ in range(n)]
    if style is None:
        caps = [caption(s, random_style(rng), rng) for s in scenes]
    else:
        caps = [caption(s, style) for s in scenes]
    return render_batch(scenes, size), caps, scenes


def to_tensor(images: np.ndarray):
    """uint8 (N, H, W, 3) -> float torch tensor (N, 3, H, W) in [0, 1]."""
    import torch

    return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float().div(255.0)
