"""Diversity and alignment numbers for sets of image embeddings (pure torch, no I/O).

All functions take embeddings as ``(n, D)`` tensors or arrays and normalise them to unit length
themselves, so raw model outputs can be passed in. Computation is in float64 on the CPU: the
sets are small (tens of images) and the eigenvalues of a nearly singular kernel need the precision.

* :func:`vendi_score` — the "effective number of distinct images" (Friedman & Dieng's Vendi
  score with the cosine kernel), between 1 (all the same) and n (all orthogonal).
* :func:`mean_pairwise_distance` — mean cosine distance ``1 − cos`` over the pairs.
* :func:`clip_score` — ``100·max(cos, 0)`` of each image against a text.
* :func:`style_shift` — how far a set's centroid moved from a reference set's centroid.
* :func:`bootstrap_ci` — percentile bootstrap intervals over resampled images.

Vendi and pairwise distance depend on n, so compare them only between sets of the same size.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Union

import numpy as np
import torch

ArrayLike = Union[torch.Tensor, np.ndarray, Sequence[Sequence[float]]]


def _unit(emb: ArrayLike) -> torch.Tensor:
    x = torch.as_tensor(emb).detach().to("cpu", torch.float64)
    if x.ndim == 1:
        x = x[None]
    if x.ndim != 2 or x.shape[0] == 0:
        raise ValueError(f"expected embeddings of shape (n, D) with n >= 1, got {tuple(x.shape)}")
    return x / x.norm(dim=-1, keepdim=True).clamp_min(1e-12)


def cosine_kernel(emb: ArrayLike) -> torch.Tensor:
    """The (n, n) cosine-similarity matrix of the embeddings."""
    x = _unit(emb)
    return x @ x.T


def vendi_from_kernel(kernel: torch.Tensor) -> float:
    """Vendi score of a similarity matrix with ones on its diagonal: exp of the eigenvalue entropy of K/n."""
    return float(vendi_from_kernels(kernel[None])[0])


def vendi_from_kernels(kernels: torch.Tensor) -> torch.Tensor:
    """Batched :func:`vendi_from_kernel`: (..., n, n) similarity matrices → (...) Vendi scores."""
    n = kernels.shape[-1]
    return _exp_entropy(torch.linalg.eigvalsh(kernels.to(torch.float64) / n))


def _exp_entropy(eig: torch.Tensor) -> torch.Tensor:
    """exp(−Σ λ log λ) over the last dimension of eigenvalues (negative round-off dropped; 0·log 0 = 0)."""
    eig = eig.clamp_min(0.0)
    plogp = torch.where(eig > 0, eig * eig.clamp_min(1e-300).log(), torch.zeros_like(eig))
    return torch.exp(-plogp.sum(dim=-1))


def vendi_score(embeddings: ArrayLike) -> float:
    """exp(−Σ λᵢ log λᵢ), λ the eigenvalues of K/n, K the cosine similarities of the unit embeddings.

    1 when every embedding points the same way, n when they are mutually orthogonal. With more
    embeddings than dimensions the (D, D) matrix XᵀX/n is decomposed instead of the (n, n) kernel:
    the two share their non-zero eigenvalues, and a telephone study has hundreds of images per round.
    """
    x = _unit(embeddings)
    n, d = x.shape
    return _vendi_dual(x) if n > d else vendi_from_kernel(x @ x.T)


def _vendi_dual(x: torch.Tensor) -> float:
    return float(_exp_entropy(torch.linalg.eigvalsh(x.T @ x / x.shape[0])))


def mean_pairwise_distance(embeddings: ArrayLike) -> float:
    """Mean of ``1 − cos(eᵢ, eⱼ)`` over the pairs i < j (needs at least two embeddings)."""
    k = cosine_kernel(embeddings)
    n = k.shape[0]
    if n < 2:
        raise ValueError("mean pairwise distance needs at least two embeddings")
    i, j = torch.triu_indices(n, n, offset=1)
    return float((1.0 - k[i, j]).mean())


def clip_score(image_emb: ArrayLike, text_emb: ArrayLike) -> torch.Tensor:
    """``100·max(cos, 0)`` per image, shape (B,).

    ``text_emb`` is one text, (D,) or (1, D), scored against every image, or (B, D) with one
    text per image.
    """
    img = _unit(image_emb)
    txt = _unit(text_emb)
    if txt.shape[0] not in (1, img.shape[0]):
        raise ValueError(f"need one text or one per image, got {txt.shape[0]} texts for {img.shape[0]} images")
    cos = (img * txt).sum(dim=-1)
    return 100.0 * cos.clamp_min(0.0)


def centroid(embeddings: ArrayLike) -> torch.Tensor:
    """Mean of the unit embeddings (not renormalised; its length says how spread the set is)."""
    return _unit(embeddings).mean(dim=0)


def style_shift(embeddings: ArrayLike, reference: ArrayLike) -> float:
    """``1 − cos(centroid(embeddings), centroid(reference))``, the centroids being means of the
    unit embeddings.

    0 when the two sets are centred in the same direction; grows as the style pulls the images
    somewhere else (at most 2). Only the directions of the centroids count, not their lengths,
    so a style that merely narrows the set around the same centre has a shift near 0.
    """
    a, b = centroid(embeddings), centroid(reference)
    cos = (a @ b) / (a.norm() * b.norm()).clamp_min(1e-12)
    return float(1.0 - cos)


def bootstrap_indices(n: int, n_boot: int = 1000, seed: int = 0) -> torch.Tensor:
    """(n_boot, n) indices drawn with replacement. The same (n, n_boot, seed) gives the same
    draws, which is what makes intervals of two styles over the same seeds *paired*."""
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(0, n, (n_boot, n), generator=gen)


def bootstrap_ci(data: Sequence[float] | torch.Tensor | np.ndarray | int,
                 statistic: Callable[[torch.Tensor], float] | None = None, *,
                 n_boot: int = 1000, seed: int = 0, level: float = 0.95,
                 recenter: bool = False) -> tuple[float, float]:
    """Percentile bootstrap interval (low, high) at ``level``.

    Two ways to call it:

    * ``bootstrap_ci(values)`` — per-item numbers; the statistic is their mean.
    * ``bootstrap_ci(n, statistic)`` — ``statistic(idx)`` gets a LongTensor of n indices drawn
      with replacement and returns a number computed over those items (e.g. the Vendi score of
      the resampled images). A paired comparison of two sets over the same seeds computes both
      sets from the same ``idx`` inside one statistic (e.g. a Vendi ratio).

    See :func:`percentile_interval` for ``recenter``, which Vendi scores need.
    """
    if statistic is None:
        values = torch.as_tensor(data, dtype=torch.float64).reshape(-1)
        n = values.numel()

        def statistic(idx: torch.Tensor) -> float:
            return float(values[idx].mean())
    else:
        n = data if isinstance(data, int) else len(data)
    if n < 1:
        raise ValueError("bootstrap needs at least one item")
    point = float(statistic(torch.arange(n)))
    samples = np.array([float(statistic(idx)) for idx in bootstrap_indices(n, n_boot, seed)])
    return percentile_interval(point, samples, level=level, recenter=recenter)


def percentile_interval(point: float, samples: Sequence[float] | np.ndarray, *, level: float = 0.95,
                        recenter: bool = False) -> tuple[float, float]:
    """The ``level`` percentile interval of bootstrap ``samples`` (non-finite samples dropped).

    Resampling images with replacement puts duplicates in a resample, and a duplicate counts as
    one image for Vendi (the kernel sees it as identical), so a resample's Vendi is biased low
    (only ~63% of a resample's images are distinct on average). The plain percentile interval
    would then sit below the point estimate. ``recenter=True`` shifts the interval by the
    bootstrap bias (mean of the samples minus ``point``): it keeps the bootstrap's spread and
    shape but is centred where the full set's value is. Use it for Vendi scores and for ratios
    of Vendi scores: duplicates pull both toward 1, so even a paired ratio drifts toward 1.
    """
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")
    stats = np.asarray(samples, dtype=np.float64)
    stats = stats[np.isfinite(stats)]
    if stats.size == 0:
        return (float("nan"), float("nan"))
    alpha = (1.0 - level) / 2.0
    low, high = np.quantile(stats, [alpha, 1.0 - alpha])
    if recenter:
        bias = float(stats.mean()) - point
        low, high = low - bias, high - bias
    return (float(low), float(high))


__all__ = ["vendi_score", "vendi_from_kernel", "vendi_from_kernels", "cosine_kernel", "mean_pairwise_distance", "clip_score",
           "centroid", "style_shift", "bootstrap_indices", "bootstrap_ci",
           "percentile_interval"]
