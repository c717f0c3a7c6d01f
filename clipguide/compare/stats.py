"""The statistics of a comparison: point values and paired bootstrap intervals over seeds."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .. import metrics

METRIC_NAMES = ("vendi", "vendi_ratio", "pairwise_distance", "clip_score", "style_shift")


@dataclass(frozen=True)
class Estimate:
    """A point estimate and its bootstrap interval."""

    value: float
    low: float
    high: float

    def to_dict(self) -> dict[str, float]:
        return {"value": self.value, "low": self.low, "high": self.high}



def resampled(emb: torch.Tensor, text: torch.Tensor, idx: torch.Tensor) -> dict[str, tuple[float, np.ndarray]]:
    """Point value and bootstrap samples of the within-style metrics of one set of images.

    ``idx`` is (n_boot, n) resample indices; the resamples are computed a chunk at a time,
    vectorised (a Python loop over 1000 resamples of 22 styles would take minutes).
    """
    n = emb.shape[0]
    kernel = (emb @ emb.T).double()
    a, b = torch.triu_indices(n, n, offset=1)

    def chunk_stats(rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        vendi = metrics.vendi_from_kernels(kernel[rows[:, :, None], rows[:, None, :]])
        # Pairs of a resample that are the same original image are left out: their distance is
        # 0 by construction and would bias the resampled mean pairwise distance low.
        ia, ib = rows[:, a], rows[:, b]
        keep = ia != ib
        dist = torch.where(keep, 1.0 - kernel[ia, ib], torch.zeros((), dtype=torch.float64))
        count = keep.sum(dim=1)
        pairwise = dist.sum(dim=1) / count.clamp_min(1)
        pairwise[count == 0] = float("nan")
        return vendi, pairwise

    both = torch.cat([torch.arange(n)[None], idx])
    step = max(1, 2_000_000 // (n * n))  # bounds memory at ~16 MB per (chunk, n, n) tensor
    parts = [chunk_stats(both[k:k + step]) for k in range(0, both.shape[0], step)]
    vendi = torch.cat([p[0] for p in parts])
    pairwise = torch.cat([p[1] for p in parts])
    clip = metrics.clip_score(emb, text).double()[both].mean(dim=1)
    return {
        "vendi": (float(vendi[0]), vendi[1:].numpy()),
        "pairwise_distance": (float(pairwise[0]), pairwise[1:].numpy()),
        "clip_score": (float(clip[0]), clip[1:].numpy()),
    }


def with_relative(own: dict[str, tuple[float, np.ndarray]], ref: dict[str, tuple[float, np.ndarray]],
                   emb: torch.Tensor, ref_emb: torch.Tensor, idx: torch.Tensor) -> dict[str, tuple[float, np.ndarray]]:
    """Add the paired metrics against ``none``: Vendi ratio and style shift, from the same resamples."""
    out = dict(own)
    out["vendi_ratio"] = (own["vendi"][0] / ref["vendi"][0], own["vendi"][1] / ref["vendi"][1])
    # A resample's centroid is a weighted mean: weights = how often each image was drawn.
    n = emb.shape[0]
    weights = torch.zeros(idx.shape[0], n, dtype=torch.float64).scatter_add_(
        1, idx, torch.ones(idx.shape, dtype=torch.float64)) / n
    a, b = weights @ emb.double(), weights @ ref_emb.double()
    shift = 1.0 - torch.nn.functional.cosine_similarity(a, b, dim=-1, eps=1e-12)
    out["style_shift"] = (metrics.style_shift(emb, ref_emb), shift.numpy())
    return out


def estimate(point: float, samples: np.ndarray, metric: str, level: float) -> Estimate:
    low, high = metrics.percentile_interval(point, samples, level=level, recenter=metric in ("vendi", "vendi_ratio"))
    return Estimate(float(point), low, high)


