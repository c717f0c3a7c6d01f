"""Diversity and alignment metrics against values worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from clipguide import metrics


def at_angle(theta: float) -> torch.Tensor:
    return torch.tensor([[1.0, 0.0, 0.0], [math.cos(theta), math.sin(theta), 0.0]], dtype=torch.float64)


def test_vendi_of_identical_embeddings_is_one():
    emb = torch.tensor([[0.3, -1.2, 2.0]]).repeat(7, 1)
    assert metrics.vendi_score(emb) == pytest.approx(1.0, abs=1e-9)


@pytest.mark.parametrize("n", [1, 2, 5, 16])
def test_vendi_of_orthogonal_embeddings_is_n(n):
    emb = torch.eye(n) * torch.arange(1, n + 1)[:, None]  # lengths differ: normalised inside
    assert metrics.vendi_score(emb) == pytest.approx(n, rel=1e-9)


@pytest.mark.parametrize("theta", [0.0, 0.3, math.pi / 3, math.pi / 2, 2.0])
def test_vendi_of_two_embeddings_matches_closed_form(theta):
    # K = [[1, c], [c, 1]]; K/2 has eigenvalues (1 ± c)/2.
    c = math.cos(theta)
    lams = [(1 + c) / 2, (1 - c) / 2]
    expected = math.exp(-sum(lam * math.log(lam) for lam in lams if lam > 0))
    assert metrics.vendi_score(at_angle(theta)) == pytest.approx(expected, rel=1e-9)


def test_vendi_accepts_numpy_and_two_copies_of_two_directions():
    # Two pairs of duplicates of orthogonal vectors: K/4 has eigenvalues 1/2, 1/2, 0, 0 → Vendi 2.
    emb = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 2.0], [0.0, 3.0]])
    assert metrics.vendi_score(emb) == pytest.approx(2.0, rel=1e-9)


def test_mean_pairwise_distance_of_a_known_set():
    # Angles 0°, 90°, 180° in a plane: distances 1 − cos are 1, 2, 1 → mean 4/3.
    emb = torch.tensor([[1.0, 0.0], [0.0, 5.0], [-2.0, 0.0]])
    assert metrics.mean_pairwise_distance(emb) == pytest.approx(4 / 3)
    assert metrics.mean_pairwise_distance(at_angle(math.pi / 3)) == pytest.approx(0.5)
    with pytest.raises(ValueError):
        metrics.mean_pairwise_distance(emb[:1])


def test_clip_score_is_100_cos_clamped_at_zero():
    images = torch.tensor([[1.0, 0.0], [1.0, 1.0], [-1.0, 0.0], [0.0, 3.0]])
    text = torch.tensor([2.0, 0.0])
    expected = torch.tensor([100.0, 100 / math.sqrt(2), 0.0, 0.0], dtype=torch.float64)
    torch.testing.assert_close(metrics.clip_score(images, text), expected)
    torch.testing.assert_close(metrics.clip_score(images, text[None]), expected)
    per_image = metrics.clip_score(images[:2], torch.tensor([[0.0, 1.0], [1.0, 1.0]]))
    torch.testing.assert_close(per_image, torch.tensor([0.0, 100.0], dtype=torch.float64))
    with pytest.raises(ValueError):
        metrics.clip_score(images, torch.ones(2, 2))


def test_style_shift_compares_centroid_directions():
    ref = torch.tensor([[1.0, 0.0], [0.0, 1.0]])        # centroid along (1, 1)
    assert metrics.style_shift(ref, ref) == pytest.approx(0.0, abs=1e-12)
    same_centre = torch.tensor([[1.0, 1.0], [2.0, 2.0]])  # narrower, same direction
    assert metrics.style_shift(same_centre, ref) == pytest.approx(0.0, abs=1e-12)
    moved = torch.tensor([[1.0, 0.0], [1.0, 0.0]])        # centroid along (1, 0): 45° away
    assert metrics.style_shift(moved, ref) == pytest.approx(1 - math.cos(math.pi / 4))
    opposite = -ref
    assert metrics.style_shift(opposite, ref) == pytest.approx(2.0)


def test_bootstrap_of_a_mean_contains_the_estimate_and_is_deterministic():
    values = torch.tensor([0.1, 0.4, 0.35, 0.8, 0.2, 0.55, 0.6, 0.3])
    low, high = metrics.bootstrap_ci(values, n_boot=500, seed=3)
    assert low < float(values.mean()) < high
    assert (low, high) == metrics.bootstrap_ci(values, n_boot=500, seed=3)
    assert (low, high) != metrics.bootstrap_ci(values, n_boot=500, seed=4)
    narrow = metrics.bootstrap_ci(values, n_boot=500, seed=3, level=0.5)
    assert low <= narrow[0] <= narrow[1] <= high


def test_bootstrap_of_constant_values_is_a_point():
    assert metrics.bootstrap_ci([2.5] * 6, n_boot=50) == (2.5, 2.5)


def test_bootstrap_of_vendi_with_a_statistic_over_indices():
    gen = torch.Generator().manual_seed(0)
    emb = torch.randn(12, 8, generator=gen)
    kernel = metrics.cosine_kernel(emb)
    point = metrics.vendi_score(emb)

    def vendi(idx: torch.Tensor) -> float:
        return metrics.vendi_from_kernel(kernel[idx][:, idx])

    plain = metrics.bootstrap_ci(12, vendi, n_boot=300, seed=1)
    # Duplicates in a resample lower its Vendi, so the plain percentile interval sits low ...
    assert plain[1] < point
    # ... and the recentred one is centred on the full set's value.
    low, high = metrics.bootstrap_ci(12, vendi, n_boot=300, seed=1, recenter=True)
    assert low < point < high
    assert high - low == pytest.approx(plain[1] - plain[0])
    assert (low, high) == metrics.bootstrap_ci(12, vendi, n_boot=300, seed=1, recenter=True)


def test_bootstrap_indices_are_paired_by_seed():
    a = metrics.bootstrap_indices(10, 20, seed=7)
    assert a.shape == (20, 10) and int(a.min()) >= 0 and int(a.max()) < 10
    assert torch.equal(a, metrics.bootstrap_indices(10, 20, seed=7))


def test_percentile_interval_drops_non_finite_samples():
    assert metrics.percentile_interval(1.0, [1.0, float("nan"), 1.0]) == (1.0, 1.0)
    assert all(math.isnan(v) for v in metrics.percentile_interval(1.0, [float("nan")]))
