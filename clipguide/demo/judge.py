"""A judge that is not CLIP: says what a (generated) shapes-world image shows.

Steering tests must not ask the guiding CLIP whether it got what it wanted, so colours are read
from pixel statistics and shape + position come from a small CNN trained separately (different
architecture, different seed, colour-blind augmentation) by scripts/train_demo.py.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from clipguide.demo import JUDGE_PATH
from clipguide.demo.shapes import COLOURS, GRADIENTS, POSITIONS, SHAPES
from clipguide.errors import UserError

_NAMES = list(COLOURS)
_RGB = np.array([COLOURS[n] for n in _NAMES], dtype=float)
FG_THRESHOLD = 60.0  # RGB distance (0-255) from the local background that counts as "shape"
GRADIENT_THRESHOLD = 80.0  # top vs bottom background difference that counts as a gradient


class JudgeNet(nn.Module):
    """A plain strided CNN (64x64 input). The flattened 4x4 map keeps where things are, which the
    position head needs; a global pool would throw that away."""

    def __init__(self) -> None:
        super().__init__()
        chans = [3, 24, 48, 64, 64]
        layers: list[nn.Module] = []
        for a, b in zip(chans[:-1], chans[1:]):
            layers += [nn.Conv2d(a, b, 3, stride=2, padding=1), nn.BatchNorm2d(b), nn.ReLU()]
        self.features = nn.Sequential(*layers)
        self.hidden = nn.Sequential(nn.Flatten(), nn.Linear(64 * 4 * 4, 128), nn.ReLU())
        self.shape_head = nn.Linear(128, len(SHAPES))
        self.position_head = nn.Linear(128, len(POSITIONS))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.hidden(self.features(x))
        return self.shape_head(h), self.position_head(h)


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
    """Shape and position from `JudgeNet`, colours from pixel statistics."""

    def __init__(self, net: JudgeNet, device: str | torch.device = "cpu") -> None:
        self.net = net.to(device).eval()
        self.device = torch.device(device)

    @classmethod
    def load(cls, device: str | torch.device = "cpu", path: str | Path | None = None) -> "Judge":
        """Load the shipped judge (weights/demo/judge.safetensors) or the file at `path`."""
        from ..checkpoints import read_safetensors

        path = Path(path) if path is not None else JUDGE_PATH
        if not path.is_file():
            raise UserError(f"demo judge weights not found at {path}; run scripts/train_demo.py --part judge")
        tensors, _ = read_safetensors(path)  # a corrupt file is a one-line UserError there
        net = JudgeNet()
        if set(tensors) != set(net.state_dict()):
            raise UserError(f"{path} holds no demo judge (its tensors are not JudgeNet's); "
                            "give a judge.safetensors written by scripts/train_demo.py --part judge")
        net.load_state_dict({k: v.float() for k, v in tensors.items()})
        return cls(net, device)

    @torch.no_grad()
    def predict(self, images: torch.Tensor) -> list[dict]:
        """`images` (B, 3, H, W) in [0, 1] -> one dict per image with keys shape, shape_colour,
        position (one of the nine), side (left / centre / right), background, and shape_p /
        position_p (the CNN's probabilities of its answers)."""
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"expected images of shape (B, 3, H, W), got {tuple(images.shape)}")
        x = images.detach().float().clamp(0, 1).to(self.device)
        if x.shape[-2:] != (64, 64):
            x = F.interpolate(x, size=(64, 64), mode="bilinear", antialias=True, align_corners=False)
        ls, lp = self.net(x)
        ps, pp = ls.softmax(-1).cpu(), lp.softmax(-1).cpu()
        pixels = (x.permute(0, 2, 3, 1).cpu().numpy() * 255.0).astype(float)
        out = []
        for i in range(x.shape[0]):
            s, p = int(ps[i].argmax()), int(pp[i].argmax())
            background = background_name(pixels[i])
            out.append({
                "shape": SHAPES[s],
                "shape_colour": shape_colour_name(pixels[i], background),
                "position": list(POSITIONS)[p],
                "side": side_of(list(POSITIONS)[p]),
                "background": background,
                "shape_p": float(ps[i, s]),
                "position_p": float(pp[i, p]),
            })
        return out
