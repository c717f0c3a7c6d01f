"""The guidance really steers: the demo models, the real loop, and a judge that is not CLIP.

Paired prompts on the same seeds; the judge reads pixels. The benchmark
(`python benchmarks/steering.py`) reports every task on many seeds; this test asserts a safe floor
for what the demo models reliably do (benchmark, 32 seeds: background colour 98%, shape colour 88%;
shape and position do not steer yet, see weights/demo/MODEL_CARD.md).
"""

import pytest

from clipguide.demo import VQGAN_PATH
from clipguide.demo.steering import TASKS, measure

pytestmark = pytest.mark.skipif(not VQGAN_PATH.is_file(), reason="demo models not built")


def test_background_colour_follows_the_prompt():
    result = measure(["background"], n_seeds=4, first_seed=0)["background"]
    assert result.runs == 8
    assert result.hits >= 7, result.judged  # red vs blue, same seeds


def test_shape_colour_follows_the_prompt():
    result = measure(["colour"], n_seeds=4, first_seed=0)["colour"]
    # 5/8 on these seeds here; the judge names one of 7 colours, so chance is about 1 in 7
    assert result.hits >= 4, result.judged


def test_tasks_are_paired_prompts_that_differ_in_one_attribute():
    for task in TASKS.values():
        (a, prompt_a), (b, prompt_b) = task.options
        assert a != b and prompt_a.replace(a, b, 1) == prompt_b
