"""The telephone study's numbers, from embeddings and captions (numpy/scipy; no I/O, no models).

* **Motifs** (:func:`find_motifs`): the images are clustered by average-linkage agglomerative
  clustering on cosine distance; the number of clusters is the k in 2…min(n−1, 30) with the
  highest mean silhouette (ties: the smaller k). When every pair of images is closer than the
  settle distance the set is one motif (silhouettes cannot say "one"); two images farther apart
  than it are two.
* **Settling** (:func:`caption_settles`, :func:`embedding_settles`): a trajectory's captions have
  settled at round r when from r on they repeat with a period p ≤ 4 (p = 1: a fixed point, p > 1:
  a cycle), seen for at least max(3, 2p) rounds; its images have settled at round r when every
  round after r moved less than the settle distance from the round before, for at least 3 rounds.
  Trajectories that never settle within the rounds run are counted as not settled, not dropped.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

MAX_MOTIFS = 30
MAX_PERIOD = 4
MIN_SETTLED_ROUNDS = 3


@dataclass(frozen=True)
class Motifs:
    count: int
    labels: tuple[int, ...]  # motif of each image, 0 = the largest motif
    method: str
    silhouette: float | None = None
    silhouettes: dict[int, float] = field(default_factory=dict)  # k → mean silhouette, every k tried


def cosine_distances(emb: np.ndarray) -> np.ndarray:
    x = np.asarray(emb, dtype=np.float64)
    x = x / np.clip(np.linalg.norm(x, axis=1, keepdims=True), 1e-12, None)
    dist = np.clip(1.0 - x @ x.T, 0.0, 2.0)
    np.fill_diagonal(dist, 0.0)
    return dist


def silhouette(dist: np.ndarray, labels: Sequence[int]) -> float:
    """Mean silhouette of a clustering (Rousseeuw 1987) from a distance matrix; 0 for singletons."""
    labels = np.asarray(labels)
    names, index = np.unique(labels, return_inverse=True)
    if len(names) < 2:
        raise ValueError("a silhouette needs at least two clusters")
    member = np.eye(len(names))[index]  # (n, k) one-hot
    sizes = member.sum(axis=0)
    totals = dist @ member  # (n, k): summed distance of each image to each cluster
    own = sizes[index]
    a = totals[np.arange(len(labels)), index] / np.maximum(own - 1, 1)
    others = np.where(member.astype(bool), np.inf, totals / sizes)
    b = others.min(axis=1)
    s = np.where(own > 1, (b - a) / np.maximum(np.maximum(a, b), 1e-12), 0.0)
    return float(s.mean())


def find_motifs(emb: np.ndarray, same: float, max_motifs: int = MAX_MOTIFS) -> Motifs:
    """How many distinct motifs the images form (see the module docstring for the rule)."""
    from scipy.cluster.hierarchy import fcluster, linkage
    from scipy.spatial.distance import squareform

    n = len(emb)
    dist = cosine_distances(emb)
    if n == 1 or dist.max() < same:
        return Motifs(1, (0,) * n, f"every pair closer than the settle distance {same:g}")
    if n < 3:
        return Motifs(2, (0, 1), f"two images farther apart than the settle distance {same:g}")
    tree = linkage(squareform(dist, checks=False), method="average")
    curve: dict[int, float] = {}
    best: tuple[float, int, np.ndarray] | None = None
    for k in range(2, min(n - 1, max_motifs) + 1):
        labels = fcluster(tree, k, criterion="maxclust")
        found = len(np.unique(labels))
        if found < 2 or found in curve:
            continue
        curve[found] = silhouette(dist, labels)
        if best is None or curve[found] > best[0]:
            best = (curve[found], found, labels)
    if best is None:  # cannot happen with n ≥ 3 distinct images; kept for safety
        return Motifs(n, tuple(range(n)), "every image its own motif")
    score, count, labels = best
    return Motifs(count, _by_size(labels), "the highest mean silhouette over the cuts of an average-linkage tree (cosine distance)", score, curve)


def _by_size(labels: np.ndarray) -> tuple[int, ...]:
    names, counts = np.unique(labels, return_counts=True)
    order = {name: rank for rank, name in enumerate(names[np.argsort(-counts, kind="stable")])}
    return tuple(int(order[label]) for label in labels)


def caption_settles(captions: Sequence[str], max_period: int = MAX_PERIOD) -> tuple[int | None, int | None]:
    """(first round of the repeating tail, its period), or (None, None) if the captions never settle."""
    n = len(captions)
    for start in range(n):
        tail = captions[start:]
        for period in range(1, max_period + 1):
            if len(tail) >= max(MIN_SETTLED_ROUNDS, 2 * period) and all(
                    tail[i] == tail[i - period] for i in range(period, len(tail))):
                return start, period
    return None, None


def step_distances(emb: np.ndarray) -> np.ndarray:
    """Cosine distance of each round's image from the round before: (rounds − 1,)."""
    x = np.asarray(emb, dtype=np.float64)
    x = x / np.clip(np.linalg.norm(x, axis=1, keepdims=True), 1e-12, None)
    return 1.0 - (x[1:] * x[:-1]).sum(axis=1)


def embedding_settles(emb: np.ndarray, same: float) -> int | None:
    """The first round from which every step moves less than ``same`` (for ≥ 3 rounds), or None."""
    steps = step_distances(emb)
    start = len(steps)
    while start > 0 and steps[start - 1] < same:
        start -= 1
    return start if len(emb) - start >= MIN_SETTLED_ROUNDS else None


__all__ = ["Motifs", "find_motifs", "silhouette", "cosine_distances", "caption_settles", "embedding_settles",
           "step_distances", "MAX_MOTIFS", "MAX_PERIOD"]
