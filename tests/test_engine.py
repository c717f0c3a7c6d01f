"""The loop through the real API with tiny models of the real architectures."""

import pytest
import torch

from clipguide import api
from clipguide.errors import NonFiniteLossError, UserError
from clipguide.settings import Settings
from tiny_models import write_tiny_vqgan_safetensors


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, tiny_clip_dir):
    folder = tmp_path_factory.mktemp("tiny_vqgan")
    vqgan = write_tiny_vqgan_safetensors(folder / "tiny.safetensors")
    return Settings(prompt="a red circle", generator=str(vqgan), clip=(str(tiny_clip_dir),), size=(32, 32),
                    steps=4, cutn=4, device="cpu")


@pytest.fixture(scope="module")
def session():
    return api.Session("cpu")


def test_loss_falls(tiny, session):
    losses = []
    api.generate(tiny.replace(steps=30, augments=(), lr=0.2), lambda s: losses.append(s.loss), session=session)
    assert len(losses) == 30
    assert sum(losses[-5:]) / 5 < sum(losses[:5]) / 5


def test_same_seed_same_pixels_and_different_seed_differs(tiny, session):
    a = api.generate(tiny, session=session).images
    b = api.generate(tiny, session=session).images
    c = api.generate(tiny.replace(seed=1), session=session).images
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert a.shape == (1, 3, 32, 32) and a.min() >= 0 and a.max() <= 1


def test_batch_of_seeds_equals_single_runs(tiny, session):
    batch = api.generate(tiny.replace(seed=5, seeds=3), session=session)
    assert batch.seeds == [5, 6, 7]
    for k in range(3):
        single = api.generate(tiny.replace(seed=5 + k), session=session)
        assert torch.allclose(batch.images[k], single.images[0], atol=2e-3), k
        assert batch.losses[k] == pytest.approx(single.losses[0], rel=1e-3, abs=1e-4)


def test_callback_can_stop_and_sees_images(tiny, session):
    seen = []

    def callback(step):
        seen.append(step.image().shape)
        return step.i == 2

    result = api.generate(tiny.replace(steps=10), callback, session=session)
    assert result.stopped and result.steps_done == 2
    assert seen == [(1, 3, 32, 32)] * 2


def test_ctrl_c_returns_latest_images(tiny, session):
    def callback(step):
        if step.i == 3:
            raise KeyboardInterrupt

    result = api.generate(tiny.replace(steps=10), callback, session=session)
    assert result.stopped and result.steps_done == 3 and torch.isfinite(result.images).all()


def test_nan_loss_recovers_by_lowering_lr(tiny, session, monkeypatch):
    generator = session.generator(tiny.generator, tiny)
    real_decode = generator.decode
    calls = {"n": 0}

    def flaky(latent):
        calls["n"] += 1
        out = real_decode(latent)
        return out * float("nan") if calls["n"] == 2 else out

    monkeypatch.setattr(generator, "decode", flaky)
    notices = []
    result = api.generate(tiny, session=session, notify=notices.append)
    assert result.steps_done == tiny.steps and torch.isfinite(result.images).all()
    assert any("lowering the lr" in n for n in notices)


def test_persistent_nan_stops_with_clear_error(tiny, session, monkeypatch):
    generator = session.generator(tiny.generator, tiny)
    real_decode = generator.decode
    monkeypatch.setattr(generator, "decode", lambda latent: real_decode(latent) * float("nan"))
    with pytest.raises(NonFiniteLossError, match="NaN"):
        api.generate(tiny, session=session)


def test_negative_and_image_prompts_and_multiple_clips(tiny, session, tmp_path, tiny_clip_dir):
    from PIL import Image

    Image.new("RGB", (20, 20), (255, 0, 0)).save(tmp_path / "red.png")
    result = api.generate(tiny.replace(prompt="a circle | a square:-0.5", negative="blurry",
                                       image_prompts=(f"{tmp_path / 'red.png'}:0.5",),
                                       clip=(str(tiny_clip_dir), str(tiny_clip_dir))), session=session)
    assert torch.isfinite(result.images).all()


def test_init_image_starts_near_it(tiny, session, tmp_path):
    from PIL import Image

    Image.new("RGB", (32, 32), (250, 250, 250)).save(tmp_path / "white.png")
    result = api.generate(tiny.replace(init_image=str(tmp_path / "white.png"), steps=1, lr=1e-4), session=session)
    assert result.images.shape == (1, 3, 32, 32)


def test_mean_start_is_reproducible_and_differs_from_random(tiny, session):
    mean_start = api.generate(tiny.replace(init="mean", seed=3, steps=2), session=session)
    again = api.generate(tiny.replace(init="mean", seed=3, steps=2), session=session)
    random = api.generate(tiny.replace(seed=3, steps=2), session=session)
    assert torch.equal(mean_start.images, again.images) and not torch.equal(mean_start.images, random.images)
    assert mean_start.settings.init == "mean"
    with pytest.raises(UserError, match="unknown init 'centre'"):
        api.generate(tiny.replace(init="centre"), session=session)


def test_size_is_rounded_with_a_notice(tiny, session):
    notices = []
    result = api.generate(tiny.replace(size=(31, 33), steps=1), session=session, notify=notices.append)
    assert result.images.shape[-2:] == (32, 32)
    assert any("multiple" in n for n in notices)


@pytest.mark.parametrize("prompt", ["", "   ", " | "])
def test_empty_prompt_is_a_user_error(tiny, session, prompt):
    with pytest.raises(UserError, match="prompt is empty"):
        api.generate(tiny.replace(prompt=prompt), session=session)
