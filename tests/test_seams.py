"""The engine's seams: loss terms as objects, schedules, the build/run split, a hook that steers."""

from __future__ import annotations

import pytest
import torch

from clipguide import api, engine
from clipguide.errors import UserError
from clipguide.losses import LossTerm, State
from clipguide.registry import LOSSES
from clipguide.schedules import Constant, Keyframes, linear_decay, parse_schedule
from clipguide.settings import Settings
from tiny_models import write_tiny_vqgan_safetensors


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, tiny_clip_dir):
    vqgan = write_tiny_vqgan_safetensors(tmp_path_factory.mktemp("vq") / "tiny.safetensors")
    return Settings(prompt="a red circle", generator=str(vqgan), clip=(str(tiny_clip_dir),), size=(32, 32),
                    steps=6, cutn=4, device="cpu", precision="fp32", augments=())


@pytest.fixture(scope="module")
def session():
    return api.Session("cpu")


class Brightness(LossTerm):
    """A trivial term: the mean pixel value of each image (a positive weight darkens)."""

    name = "brightness"

    def __call__(self, state: State) -> torch.Tensor:
        return state.images.mean(dim=(1, 2, 3))


@pytest.fixture
def brightness():
    LOSSES.register("brightness", Brightness)  # the one registry line a new term needs
    yield
    LOSSES.unregister("brightness")


def test_a_new_loss_term_is_one_class_and_one_registry_line(tiny, session, brightness):
    from clipguide.presets import demo_settings

    demo = Settings(prompt="a white circle on a yellow background", steps=30, cutn=8, seeds=2, precision="fp32",
                    device="cpu").replace(**{**demo_settings(), "steps": 30, "cutn": 8})
    plain = api.generate(demo, session=session)
    darker = api.generate(demo.replace(losses=("brightness:5",)), session=session)
    assert (darker.images.mean(dim=(1, 2, 3)) < plain.images.mean(dim=(1, 2, 3)) - 0.05).all()
    seen = []
    api.generate(tiny.replace(steps=2, losses=("brightness",)), lambda s: seen.append(s.terms), session=session)
    assert set(seen[0]) == {"prior", "prompt", "brightness"} and len(seen[0]["brightness"]) == 1


def test_an_unknown_loss_names_the_registered_ones(tiny, brightness):
    with pytest.raises(UserError, match="unknown loss 'brightnes'.*did you mean 'brightness'"):
        tiny.replace(losses=("brightnes:1",))
    with pytest.raises(UserError, match="weight of loss 'brightness'"):
        tiny.replace(losses=("brightness:heavy",))


def test_a_term_weight_follows_its_schedule(tiny, session, brightness):
    weights_seen = []

    class Spy(Brightness):
        name = "spy"

        def __call__(self, state):
            weights_seen.append((state.i, self.weight(state.i)))
            return super().__call__(state)

    LOSSES.register("spy", Spy)
    try:
        api.generate(tiny.replace(losses=("spy:0:1.0, 4:0",)), session=session)
    finally:
        LOSSES.unregister("spy")
    # 0 at step 4 and after: the engine skips the term there
    assert weights_seen == [(0, 1.0), (1, 0.75), (2, 0.5), (3, 0.25)]


def test_schedules_parse_numbers_and_keyframes():
    assert parse_schedule("0.5", what="x") == Constant(0.5)
    keys = parse_schedule("0:(1.0), 60:(1.05)", what="zoom")
    assert isinstance(keys, Keyframes) and keys(30) == pytest.approx(1.025) and keys(99) == 1.05 and keys(0) == 1.0
    for bad in ("0:1, 0:2", "10:1, 5:2", "a:1", "0:1,", "1.5x"):
        with pytest.raises(UserError, match="zoom"):
            parse_schedule(bad, what="zoom")
    decay = linear_decay(10)
    assert [decay(i) for i in (0, 5, 10, 20)] == [1.0, 0.5, 0.0, 0.0]


def test_the_init_image_term_decays_over_the_run(tiny, session, tmp_path):
    from PIL import Image

    Image.new("RGB", (32, 32), (250, 250, 250)).save(tmp_path / "white.png")
    run = api.build_run(tiny.replace(init_image=str(tmp_path / "white.png"), init_weight=2.0, steps=10),
                        session=session)
    init = run.term("init")
    assert [init.weight(i) for i in (0, 5, 9, 10)] == pytest.approx([2.0, 1.0, 0.2, 0.0])


def test_the_hook_can_replace_the_latent_and_stays_deterministic(tiny, session):
    """A hook that moves the latent mid-run (as an animation's image transform does) gives the same
    pixels every time, and image k of a batch is the single run of its seed."""

    def shift(step):
        if step.i == 3:
            step.replace_latent({k: torch.roll(v, 1, dims=-1) for k, v in step.latent.items()})

    a = api.generate(tiny.replace(seeds=2), shift, session=session)
    b = api.generate(tiny.replace(seeds=2), shift, session=session)
    plain = api.generate(tiny.replace(seeds=2), session=session)
    assert torch.equal(a.images, b.images) and not torch.equal(a.images, plain.images)
    single = api.generate(tiny.replace(seed=1), shift, session=session)
    assert torch.allclose(a.images[1], single.images[0], atol=2e-3)


def test_the_hook_can_retarget_the_prompt(tiny, session):
    from clipguide.targets import TargetSchedule

    other = api.build_run(tiny.replace(prompt="a blue square"), session=session).term("prompt").targets

    def retarget(step):
        if step.i == 2:
            step.replace_targets(other)

    run = api.build_run(tiny, session=session)
    assert isinstance(run.term("prompt").targets, TargetSchedule)
    moved = api.execute(run, retarget)
    direct = api.generate(tiny.replace(prompt="a blue square"), session=session)
    plain = api.generate(tiny, session=session)
    assert not torch.equal(moved.images, plain.images) and not torch.equal(moved.images, direct.images)


def test_a_stop_from_the_hook_returns_what_was_made(tiny, session):
    result = api.generate(tiny.replace(steps=10), lambda step: step.stop() if step.i == 4 else None,
                          session=session)
    assert result.stopped and result.steps_done == 4


def test_build_and_run_are_separate_and_a_run_can_go_on(tiny, session):
    """The same built run executed twice continues (its schedules keep counting with first_step)."""
    run = api.build_run(tiny.replace(steps=3), session=session)
    assert [t.name for t in run.terms] == ["prior", "prompt"] and run.size == (32, 32) and run.seeds == [0]
    first = engine.run(run)
    run.first_step += run.steps
    second = engine.run(run)
    assert first.steps_done == second.steps_done == 3
    whole = api.generate(tiny, session=session)  # 6 steps in one go; the optimiser state restarts between
    assert whole.images.shape == (1, 3, 32, 32)


def test_a_prompt_longer_than_the_context_gets_a_notice_saying_where_it_was_cut(tiny, session):
    notices = []
    long_prompt = "a red circle " + "with many more words " * 6
    api.generate(tiny.replace(prompt=long_prompt, steps=1), session=session, notify=notices.append)
    cut = [n for n in notices if "longer than CLIP model" in n]
    assert len(cut) == 1 and "was cut after '…" in cut[0]
    notices.clear()
    api.generate(tiny.replace(steps=1), session=session, notify=notices.append)
    assert not any("longer than" in n for n in notices)


def test_generator_options_are_part_of_the_model_cache_key(tiny, session):
    from clipguide.generators import resolve

    assert resolve(tiny.generator, tiny) == ("vqgan", None)
    same = session.generator(tiny.generator, tiny.replace(truncation=0.5))
    assert same is session.generator(tiny.generator, tiny)  # a VQGAN has no options: one model
