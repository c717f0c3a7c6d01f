"""The guidance really steers: the demo models, the real loop, and a judge that is not CLIP.

Paired prompts on the same seeds; the judge reads pixels. The benchmark
(`python benchmarks/steering.py`) reports every task on many seeds; this test asserts a safe floor
for what the demo models reliably do (benchmark, 32 seeds, the demo's 240 steps: shape and background
colour 98%; position 91% from the codebook-mean start; shape does not steer yet, see
weights/demo/MODEL_CARD.md).
"""

import json

import pytest

from clipguide.demo import VQGAN_PATH
from clipguide.demo.steering import TASKS, clean_margins, demo_settings, measure, pair_margins

pytestmark = pytest.mark.skipif(not VQGAN_PATH.is_file(), reason="demo models not built")


def test_background_colour_follows_the_prompt():
    # a quarter of the demo's steps for speed: grounds turn early (benchmark at 60 steps: 95%)
    result = measure(["background"], n_seeds=4, first_seed=0, base=demo_settings(steps=60))["background"]
    assert result.runs == 8
    assert result.hits >= 7, result.judged  # red vs blue, same seeds


def test_shape_colour_follows_the_prompt():
    # the demo's own 240 steps: 7/8 on these seeds here (at 60 steps 5/8); the judge names one of 7
    # colours, so chance is about 1 in 7
    result = measure(["colour"], n_seeds=4, first_seed=0)["colour"]
    assert result.hits >= 6, result.judged


def test_position_follows_the_prompt_from_the_mean_start():
    # random codes leave the layout to the seed; around the codebook mean the prompt places the shape
    base = demo_settings(init="mean", lr=0.3, steps=90)
    result = measure(["position"], n_seeds=8, first_seed=0, base=base)["position"]
    # left vs right on the same seeds: 11/16 here (benchmark, 16 seeds: 91%); the judge's side has
    # three values (left, centre, right), and from random codes the same seeds score 2/16
    assert result.hits >= 9, result.judged


def test_tasks_are_paired_prompts_that_differ_in_one_attribute():
    for task in TASKS.values():
        (a, prompt_a), (b, prompt_b) = task.options
        assert a != b and prompt_a.replace(a, b, 1) == prompt_b


def test_shipped_clip_tells_each_steered_pair_apart_on_clean_pictures():
    from clipguide import api

    clip = api.Session("cpu", offline=True, progress=False).perceptor(["demo"]).models[0]
    for name in ("colour", "background", "position"):
        margins = clean_margins(TASKS[name], clip)
        assert min(margins) > 0.1, (name, margins)  # measured 0.20-0.29
        # the same pictures under each other's prompts: the margins turn negative
        task = TASKS[name]
        prompts = [prompt for _, prompt in task.options]
        assert max(pair_margins(clip, prompts, task.scenes[::-1])) < -0.1, name


def test_benchmark_measures_a_chosen_clip_and_refuses_a_missing_one(tmp_path, capsys):
    from conftest import load_script

    bench = load_script("benchmarks/steering.py")
    out = tmp_path / "verdicts.json"
    assert bench.main(["--seeds", "1", "--tasks", "background", "--steps", "2", "--clip", "demo",
                       "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "| background | " in printed and "CLIP demo:" in printed
    assert "demo: background: red +" in printed  # the CLIP's margin on clean pictures, before the run
    assert json.loads(out.read_text())["background"]["runs"] == 2
    before = out.read_bytes()
    for taken in (out, tmp_path / "missing" / "v.json"):  # refused before the run, not after it
        with pytest.raises(SystemExit):
            bench.main(["--seeds", "1", "--tasks", "background", "--json", str(taken)])
        assert "--json" in capsys.readouterr().err
    assert out.read_bytes() == before
    assert bench.main(["--seeds", "1", "--tasks", "background", "--clip", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err
    with pytest.raises(SystemExit):
        bench.main(["--tasks", "colour,size"])
    assert "unknown task 'size'" in capsys.readouterr().err
