"""Story mode ('a castle ^ a forest'): the parts steer in turn, and each part keeps the prompt syntax."""

from __future__ import annotations

import math

import pytest
import torch

from clipguide import api
from clipguide.demo import VQGAN_PATH
from clipguide.settings import Settings
from tiny_models import write_tiny_vqgan_safetensors

RED = "a white circle on a red background"
BLUE = "a white circle on a blue background"


@pytest.fixture(scope="module")
def session():
    return api.Session("cpu")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, tiny_clip_dir):
    vqgan = write_tiny_vqgan_safetensors(tmp_path_factory.mktemp("vq") / "tiny.safetensors")
    return Settings(prompt="a red circle", generator=str(vqgan), clip=(str(tiny_clip_dir),), size=(32, 32),
                    steps=12, cutn=2, device="cpu", precision="fp32", augments=())


def colour(images: torch.Tensor) -> tuple[list[float], list[float]]:
    """Per image: mean blue minus red, and mean red (pixels, not CLIP)."""
    return (images[:, 2] - images[:, 0]).mean(dim=(1, 2)).tolist(), images[:, 0].mean(dim=(1, 2)).tolist()


@pytest.mark.skipif(not VQGAN_PATH.is_file(), reason="demo models not built")
def test_story_mode_switches_what_is_steered(session):
    """From step 15 of 40 the second part steers: the picture ends bluer than the red prompt's alone on the
    same seeds, and redder the other way round. (The demo loop is sticky, so a shift, not a flip.)"""
    from clipguide.presets import demo_settings

    base = Settings(device="cpu", precision="fp32").replace(**{**demo_settings(), "steps": 40, "seeds": 2,
                                                                "change_every": 15})

    def run(prompt: str):
        return colour(api.generate(base.replace(prompt=prompt), session=session).images)

    (red_blue, red_r), (story_blue, story_r) = run(RED), run(f"{RED} ^ {BLUE}")
    for k in range(2):  # measured: blue - red moved by 0.45 and 0.21 toward blue
        assert story_blue[k] > red_blue[k] + 0.1 and story_r[k] < red_r[k], (red_blue, story_blue)
    (blue_blue, blue_r), (back_blue, back_r) = run(BLUE), run(f"{BLUE} ^ {RED}")
    for k in range(2):  # measured: 0.31 and 0.32 toward red
        assert back_blue[k] < blue_blue[k] - 0.1 and back_r[k] > blue_r[k], (blue_blue, back_blue)


def test_weights_stops_and_negatives_work_inside_each_part(tiny, session):
    run = api.build_run(tiny.replace(prompt="a castle:2 | fog:-0.5:-1.2 ^ a forest:1:0.3", negative="blur",
                                     change_every=5), session=session)
    schedule = run.term("prompt").targets
    assert schedule.starts == [0, 5]
    first, second = schedule(4)[0], schedule(5)[0]
    assert first.weights.tolist() == [2.0, -0.5, -1.0] and second.weights.tolist() == [1.0, -1.0]
    assert first.stops[1].item() == pytest.approx(-1.2) and math.isinf(first.stops[0].item())
    assert second.stops[0].item() == pytest.approx(0.3)
    # the negative is embedded like any prompt: the same target in both parts, not the parts' texts
    assert torch.allclose(first.embeds[2], second.embeds[1]) and not torch.allclose(first.embeds[0], second.embeds[0])


def test_a_blend_crossfades_the_parts_with_their_own_weights(tiny, session):
    run = api.build_run(tiny.replace(prompt="0:a castle:2 ^ 6:a forest | fog:-1", blend_steps=3), session=session)
    schedule = run.term("prompt").targets
    assert schedule.starts == [0, 6]
    assert schedule(5)[0].weights.tolist() == [2.0]
    mixed = schedule(6)[0]  # a quarter of the way: (1 - 1/4)·castle + 1/4·(forest, fog)
    assert mixed.weights.tolist() == pytest.approx([1.5, 0.25, -0.25])
    assert schedule(9)[0].weights.tolist() == [1.0, -1.0]  # blend over: the second part alone


def test_a_story_runs_end_to_end_and_again_reads_it(tiny, tmp_path, capsys):
    from clipguide.cli import main
    from clipguide.output import read_record

    prompt = "0:a red circle:2 | blur:-0.5 ^ 6:a blue square:1:0.2"
    flags = ["--generator", tiny.generator, "--clip", *tiny.clip, "--size", "32", "32", "--steps", "10", "--cutn", "2",
             "--device", "cpu", "--precision", "fp32", "--quiet", "--blend-steps", "2"]
    assert main([prompt, *flags, "--out", str(tmp_path)]) == 0
    first = tmp_path / "a-red-circle-0.png"
    record = read_record(first)
    assert record.settings["prompt"] == prompt and record.settings["blend_steps"] == 2
    assert main(["again", str(first), "--out", str(tmp_path), "--quiet"]) == 0
    assert (tmp_path / "a-red-circle-0-1.png").read_bytes() == first.read_bytes()
    capsys.readouterr()
