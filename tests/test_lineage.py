"""Settings from the VQGAN+CLIP notebooks mean here what they mean there.

The reference formulas below are written from the lineage's description (not from anyone's code):
the prompt loss compares the *signed* distance with the stop, the cutout sizes run from
min(width, height, CLIP input size) to min(width, height), and init_weight pulls the latent.
"""

from __future__ import annotations

import math

import pytest
import torch

from clipguide import api
from clipguide.cutouts import Cutouts, cut_range
from clipguide.losses.prompt import spherical_distance_loss
from clipguide.settings import Settings
from tiny_models import write_tiny_vqgan_safetensors


def lineage_loss(embeds: torch.Tensor, target: torch.Tensor, weight: float, stop: float) -> torch.Tensor:
    """One prompt's loss for one image, the lineage's way: d = 2·arcsin(‖a−b‖/2)² per cutout, s = sign(w)·d;
    the value is |w|·mean(s), and the gradient is that of |w|·mean(max(s, stop))."""
    d = 2 * torch.arcsin((embeds - target).norm(dim=-1) / 2).pow(2)
    s = math.copysign(1.0, weight) * d
    through = torch.maximum(s, torch.tensor(stop))  # what the gradient sees
    return abs(weight) * (through + (s - through).detach()).mean()


def unit(*shape: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.nn.functional.normalize(torch.randn(*shape, generator=g), dim=-1)


@pytest.mark.parametrize("weight, stop", [(1.0, -math.inf), (1.0, 1.0), (2.0, 1.3), (-1.0, -math.inf),
                                          (-1.0, -1.2), (-0.5, -0.8), (-1.0, 0.8), (1.5, 3.0)])
def test_prompt_loss_values_and_gradients_follow_the_signed_stop(weight, stop):
    embeds = unit(2, 16, 8, seed=1).requires_grad_(True)  # 2 images, 16 cutouts each
    target = unit(8, seed=2)
    ours = spherical_distance_loss(embeds, target[None], torch.tensor([weight]), torch.tensor([stop]))
    ours.sum().backward()
    grad_ours = embeds.grad.clone()
    embeds.grad = None
    reference = torch.stack([lineage_loss(embeds[k], target, weight, stop) for k in range(2)])
    reference.sum().backward()
    assert torch.allclose(ours, reference.detach(), atol=1e-6)
    assert torch.allclose(grad_ours, embeds.grad, atol=1e-6)


def test_a_negative_weight_stops_pushing_once_far_enough():
    """fog:-1:-1.2 pushes while the distance is below 1.2 and not beyond; fog:-1:0.8 (a stop above any
    signed distance of a negative weight) never pushes at all, instead of pushing only where it is close."""
    target = unit(8, seed=3)
    near = torch.nn.functional.normalize(target + 0.2 * unit(8, seed=4), dim=-1)  # d ≈ small
    far = -target  # d = 2·(π/2)² ≈ 4.93
    for point, stop, expect_grad in [(near, -1.2, True), (far, -1.2, False), (near, 0.8, False)]:
        embeds = point.expand(1, 4, 8).clone().requires_grad_(True)
        spherical_distance_loss(embeds, target[None], torch.tensor([-1.0]), torch.tensor([stop])).sum().backward()
        assert (embeds.grad.abs().sum() > 0) == expect_grad, (stop, expect_grad)


@pytest.mark.parametrize("width, height, clip, cut_min, expected", [
    (256, 256, 224, None, (224, 256)),  # ViT-B/32 on the default size: every cutout 224-256 px
    (512, 384, 224, None, (224, 384)),
    (400, 300, 336, None, (300, 300)),  # the CLIP input is larger than the short side
    (64, 64, 64, None, (64, 64)),  # the demo models
    (64, 64, 64, 0.25, (16, 64)),  # a fraction of the short side (the demo preset's)
    (256, 256, 224, 40, (40, 256)),  # pixels
    (256, 128, 224, 300, (128, 128)),  # never larger than the short side
])
def test_cutout_sizes_run_from_the_lineage_minimum_to_the_short_side(width, height, clip, cut_min, expected):
    assert cut_range(width, height, clip, cut_min) == expected
    cutouts = Cutouts(64, cut_pow=1.0, augments=(), cut_min=cut_min)
    boxes = cutouts.boxes(width, height, torch.Generator().manual_seed(0), clip)
    sides = boxes[:, 2] - boxes[:, 0]
    assert torch.equal(sides, boxes[:, 3] - boxes[:, 1])  # squares
    assert expected[0] <= sides.min() and sides.max() <= expected[1]
    assert (boxes[:, 0] >= 0).all() and (boxes[:, 2] <= width).all() and (boxes[:, 3] <= height).all()


@pytest.mark.parametrize("method", ["crops", "original", "pooling"])
def test_every_cut_method_makes_cutn_views_per_image_at_the_clip_size(method):
    images = torch.rand(2, 3, 48, 40, generator=torch.Generator().manual_seed(5))
    rngs = [torch.Generator().manual_seed(s) for s in (0, 1)]
    views = Cutouts(6, augments=(), cut_min=0.25, method=method)(images, 24, rngs)
    assert views.shape == (12, 3, 24, 24) and torch.isfinite(views).all()
    if method == "pooling":  # the whole image, the same view cutn times (only augments vary them)
        expected = (torch.nn.functional.adaptive_avg_pool2d(images, 24)
                    + torch.nn.functional.adaptive_max_pool2d(images, 24)) / 2
        assert torch.allclose(views[:6], expected[0].expand(6, -1, -1, -1))
    else:  # crops of the image: different views
        assert not torch.allclose(views[0], views[1])


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, tiny_clip_dir):
    vqgan = write_tiny_vqgan_safetensors(tmp_path_factory.mktemp("vq") / "tiny.safetensors")
    return Settings(prompt="a red circle", generator=str(vqgan), clip=(str(tiny_clip_dir),), size=(32, 32),
                    steps=8, cutn=4, device="cpu", precision="fp32", augments=(), lr=0.3)


def _drift(result, start) -> float:
    return float((result.latent["z"].detach() - start).pow(2).mean())


def test_init_weight_latent_mode_is_the_notebooks_pull_toward_the_start(tiny):
    session = api.Session("cpu")
    start = api.build_run(tiny, session=session).latent["z"].detach().clone()
    free = api.generate(tiny, session=session)
    held = api.generate(tiny.replace(init_weight=50.0, init_weight_mode="latent"), session=session)
    assert _drift(held, start) < 0.5 * _drift(free, start)
    run = api.build_run(tiny.replace(init_weight=4.0, init_weight_mode="latent"), session=session)
    term = run.term("init")
    assert [term.weight(i) for i in (0, 7)] == [4.0, 4.0]  # constant, as in the notebook
    state = type("S", (), {"latent": {"z": start + 1.0}})()
    assert term(state).tolist() == pytest.approx([0.5])  # 0.5 · MSE of a shift by 1


def test_init_weight_zero_mode_is_nerdyrodents_fading_pull_toward_zero(tiny):
    run = api.build_run(tiny.replace(init_weight=3.0, init_weight_mode="zero"), session=api.Session("cpu"))
    term = run.term("init")
    assert [term.weight(i) for i in (0, 1, 4)] == pytest.approx([3.0, 1.0, 3.0 / 9])
    state = type("S", (), {"latent": {"z": torch.full((1, 2, 3, 3), 2.0)}})()
    assert term(state).tolist() == pytest.approx([2.0])  # 0.5 · mean(2²)


def test_pixel_mode_without_an_init_image_says_it_does_nothing(tiny):
    notices = []
    run = api.build_run(tiny.replace(init_weight=1.0), session=api.Session("cpu"), notify=notices.append)
    assert run.term("init") is None and any("there is none" in n for n in notices)
