"""The FFT drawer: an image parametrised by its Fourier spectrum, with natural-image statistics built in.

No checkpoint: a picture needs only a CLIP model. This is the approach of Lucid's feature
visualisation and of aphantasia: optimising pixels directly gives CLIP's gradients free rein over
the finest detail and the picture turns to high-frequency noise, so instead the optimiser works on
coefficients that are already scaled the way natural images are.

Choices, and why:

* **1/f spectrum scaling.** The latent is the image's real 2-D spectrum (``rfft2``, orthonormal),
  one complex coefficient per frequency and colour channel; each coefficient is multiplied by
  ``1 / max(f, 1/N)^decay`` (f in cycles per pixel, N the longer side) before the inverse
  transform. Photographs have amplitude spectra close to 1/f, so an equal step on every
  coefficient moves broad shapes and colour fields much more than fine texture: the picture stays
  painterly and smooth. The scale is divided by its RMS over the spectrum, so a step of a given
  size changes pixels by about the same amount at 64 and at 512 pixels. The mean colour (the DC
  coefficient) is the exception: scaled so that a unit step moves every pixel by one unit. With its
  1/f value it moved several times slower than local blobs, and the picture's border stayed near
  the grey start while its middle took the prompt's colours.
* **Decorrelated colour.** The three channels are not R, G, B but brightness, warm–cool (red
  against blue) and green–magenta, the principal colour axes of natural images, mixed into RGB by
  a fixed orthogonal matrix with spreads 1 : 0.3 : 0.15 (photographs vary far more in brightness
  than in hue). Equal steps then change brightness most and hue least, which keeps colour noise down.
* **Sigmoid output.** The mixed channels are logits; the sigmoid keeps the picture in [0, 1]
  with a gradient everywhere (a clamp would stop pixels at black or white).
* **Start.** ``random``: faint noise around mid-grey, drawn from each image's own generator; the
  prompt, not the start, decides the picture. ``mean`` is the same grey with fainter noise.
* **Learning rate 0.05** (Adam): at 0.15 (the demo preset's) the demo pictures steered as well but
  were busier; 0.02 left them washed out after 240 steps (docs/drawers.md).
* ``encode`` inverts ``decode`` exactly (logit, unmix, forward FFT, unscale), up to clamping
  black and white just inside (0, 1), so ``--init-image`` starts from the image itself.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from ..errors import UserError
from .base import GeneratorKind, Latent

#: Spread of the starting spectrum (``random``, ``mean``), in units of the RMS-normalised scale.
RANDOM_START_STD = 0.05
MEAN_START_STD = 0.01
#: Spread of the three colour axes (brightness, warm–cool, green–magenta) relative to brightness.
COLOUR_SPREADS = (1.0, 0.3, 0.15)
#: Init images are clamped this far inside (0, 1) before taking logits.
_EPS = 1e-3


def colour_matrix() -> torch.Tensor:
    """(3, 3) matrix taking (brightness, warm–cool, green–magenta) logits to RGB logits.

    Its columns are orthonormal colour axes scaled by :data:`COLOUR_SPREADS`: brightness
    (1, 1, 1), red against blue (1, 0, -1), green against magenta (-1, 2, -1).
    """
    axes = torch.tensor([[1.0, 1.0, 1.0], [1.0, 0.0, -1.0], [-1.0, 2.0, -1.0]])
    axes = axes / axes.norm(dim=1, keepdim=True)
    return axes.T * torch.tensor(COLOUR_SPREADS)


def spectrum_scale(height: int, width: int, decay: float) -> torch.Tensor:
    """(H, W//2+1) factor of every rfft2 coefficient: 1/max(f, 1/N)^decay, divided by its RMS."""
    fy = torch.fft.fftfreq(height)[:, None]
    fx = torch.fft.rfftfreq(width)[None, :]
    f = torch.sqrt(fx ** 2 + fy ** 2).clamp(min=1.0 / max(height, width))
    scale = f.pow(-decay)
    scale = scale / scale.pow(2).mean().sqrt()
    scale[0, 0] = math.sqrt(height * width)  # the mean colour: a unit step moves every pixel by one unit
    return scale


@dataclass(frozen=True)
class Options:
    """The FFT drawer's options: Settings fields of the same names (defaults and help live there)."""

    fft_decay: float


class FFTDrawer:
    """An image as a 1/f-scaled spectrum in decorrelated colour, as a Generator."""

    default_lr = 0.05
    #: rfft2 keeps W//2+1 columns, which stands for two widths; even widths make it one.
    size_multiple = 2
    fixed_size: tuple[int, int] | None = None

    def __init__(self, decay: float = 1.0, *, device: torch.device | str = "cpu") -> None:
        self.decay = float(decay)
        self.device = torch.device(device)
        self.mix = colour_matrix().to(self.device)
        self._scales: dict[tuple[int, int], torch.Tensor] = {}

    def scale(self, height: int, width: int) -> torch.Tensor:
        key = (height, width)
        if key not in self._scales:
            self._scales[key] = spectrum_scale(height, width, self.decay).to(self.device)
        return self._scales[key]

    # ------------------------------------------------------------------ Generator protocol
    def init_latent(self, size: tuple[int, int], rngs: Sequence[torch.Generator], start: str = "random") -> Latent:
        w, h = int(size[0]), int(size[1])
        if w < 2 or h < 2 or w % 2:
            raise UserError(f"size {w}x{h}: the FFT drawer needs an even width of at least 2 (--size)")
        std = {"random": RANDOM_START_STD, "mean": MEAN_START_STD}.get(start)
        if std is None:
            raise UserError(f"unknown init {start!r}: use 'random' or 'mean'")
        shape = (3, h, w // 2 + 1, 2)
        rows = [std * torch.randn(shape, generator=g, device=g.device) for g in rngs]
        return {"spectrum": torch.stack(rows).to(self.device).detach().clone()}

    def encode(self, images: torch.Tensor) -> Latent:
        h, w = images.shape[-2:]
        if w % 2:
            raise UserError(f"size {w}x{h}: the FFT drawer needs an even width (--size)")
        logits = torch.logit(images.float().to(self.device).clamp(_EPS, 1 - _EPS))
        channels = torch.einsum("ij,bjhw->bihw", torch.linalg.inv(self.mix), logits)
        spectrum = torch.fft.rfft2(channels, norm="ortho") / self.scale(h, w)
        return {"spectrum": torch.view_as_real(spectrum).contiguous().detach().clone()}

    def decode(self, latent: Latent) -> torch.Tensor:
        spectrum = latent["spectrum"].float()
        h, w = spectrum.shape[-3], 2 * (spectrum.shape[-2] - 1)  # widths are even (size_multiple)
        coefficients = torch.view_as_complex(spectrum.contiguous()) * self.scale(h, w)
        channels = torch.fft.irfft2(coefficients, s=(h, w), norm="ortho")
        logits = torch.einsum("ij,bjhw->bihw", self.mix, channels)
        return torch.sigmoid(logits)

    def project_(self, latent: Latent) -> None:
        pass

    def regularizer(self, latent: Latent) -> torch.Tensor:
        spectrum = latent["spectrum"]
        return spectrum.new_zeros(spectrum.shape[0])

    def output(self, latent: Latent) -> torch.Tensor:
        with torch.no_grad():
            return self.decode(latent)



def _build(device: Any, options: Options) -> FFTDrawer:
    return FFTDrawer(options.fft_decay, device=device)


KIND = GeneratorKind("fft", options=Options, build=_build)

__all__ = ["FFTDrawer", "Options", "KIND", "colour_matrix", "spectrum_scale"]
