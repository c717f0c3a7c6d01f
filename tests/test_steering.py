"""The guidance really steers: the demo models, the real loop, and a judge that is not CLIP.

Paired prompts on the same seeds; the judge reads pixels. The benchmark
(`python benchmarks/steering.py`) reports every task on many seeds; this test asserts a safe floor
for what the demo models reliably do (benchmark, 32 seeds, the demo's 240 steps: shape and background
colour 98%; position 88% (128 runs) from the codebook-mean start at lr 0.1; shape 81% (128 runs)
from the same start with the wide demo CLIP beside the demo CLIP). The judge's shape and side agree
with blind eye labels on 87% and 95% of held-out generated pictures (benchmarks/judge_check.py,
docs/demo-models-history.md, run 20).
"""

import json
import sys

import pytest

from clipguide.demo import VQGAN_PATH
from clipguide.demo.steering import TASKS, clean_margins, demo_settings, measure, pair_margins

pytestmark = pytest.mark.skipif(not VQGAN_PATH.is_file(), reason="demo models not built")


def test_background_colour_follows_the_prompt():
    # a quarter of the demo's steps for speed: grounds turn early (benchmark at 60 steps: 95%)
    result = measure(["background"], n_seeds=4, first_seed=0, base=demo_settings(steps=60))["background"]
    assert result.runs == 8
    assert result.hits >= 7, result.judged  # red vs blue, same seeds


@pytest.mark.slow  # 7-15 minutes on the 2-core machines: `pytest -m slow` runs it
def test_shape_colour_follows_the_prompt():
    # the demo's own 240 steps: 7/8 on these seeds here (at 60 steps 5/8); the judge names one of 7
    # colours, so chance is about 1 in 7
    result = measure(["colour"], n_seeds=4, first_seed=0)["colour"]
    assert result.hits >= 6, result.judged


@pytest.mark.slow  # 7-15 minutes on the 2-core machines: `pytest -m slow` runs it
def test_position_follows_the_prompt_from_the_mean_start():
    # random codes leave the layout to the seed; around the codebook mean the prompt places the shape
    # (the README's setting: small steps, so the shape grows where the prompt says before it settles)
    base = demo_settings(init="mean", lr=0.1, steps=270)
    result = measure(["position"], n_seeds=4, first_seed=0, base=base)["position"]
    # left vs right on the same seeds: 7/8 here (seeds 4-7: 7/8 too; benchmark: 88% over 128 runs);
    # the judge's side has three values (left, centre, right), so chance is a third
    assert result.hits >= 6, result.judged


@pytest.mark.slow  # 7-15 minutes on the 2-core machines: `pytest -m slow` runs it
def test_shape_follows_the_prompt_with_the_wide_clip_beside_the_demo_clip():
    # the README's shape setting: the position setting guided by both demo CLIPs (run 24). The
    # wide CLIP tells a circle from a square; the demo CLIP alone cannot (benchmark: 53%, chance)
    base = demo_settings(clip=("demo", "demo-wide"), init="mean", lr=0.1, steps=270)
    result = measure(["shape"], n_seeds=4, first_seed=0, base=base)["shape"]
    # circle vs square on the same seeds: 8/8 here (benchmark: 81% over 128 runs); chance is a half
    assert result.hits >= 6, result.judged


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


def test_wide_clip_tells_a_circle_from_a_square_on_clean_pictures():
    from clipguide import api

    demo, wide = api.Session("cpu", offline=True, progress=False).perceptor(["demo", "demo-wide"]).models
    assert max(abs(m) for m in clean_margins(TASKS["shape"], demo)) < 0.05  # measured -0.011 / +0.015
    for name in TASKS:
        assert min(clean_margins(TASKS[name], wide)) > 0.1, name  # measured 0.18-0.42; shape 0.18 / 0.25


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


def test_judge_check_counts_agreement_with_the_eye_labels(monkeypatch, capsys):
    """benchmarks/judge_check.py: the judge against blind eye labels of generated pictures."""
    from conftest import load_script

    check = load_script("benchmarks/judge_check.py")
    images, pictures = check.load_pictures()
    assert images.shape == (len(pictures), 64, 64, 3) and len(pictures) >= 128
    for p in pictures:
        _, eye_values = check.TASKS[p["task"]]
        assert p["eye"] in eye_values and p["asked"] in eye_values[:-1] and p["split"] in check.SPLITS, p
    clear = {(t, split): [p for p in pictures if p["task"] == t and p["split"] == split and p["eye"] != "unclear"]
             for t in check.TASKS for split in check.SPLITS}
    assert all(clear.values())  # both tasks have clear pictures in both splits

    class Echo:  # a judge that reads every picture exactly as the eye did ("unclear": a star, the centre)
        def predict(self, x):
            assert x.shape[1:] == (3, 64, 64)
            return [{"shape": p["eye"] if p["task"] == "shape" and p["eye"] != "unclear" else "star",
                     "side": p["eye"] if p["task"] == "position" and p["eye"] != "unclear" else "centre"}
                    for p in pictures[:len(x)]]

    for task, result in check.check(Echo()).items():
        for split in check.SPLITS:
            n = len(clear[(task, split)])
            assert result.agreement(split) == (n, n)

    class Square:  # the old CNN's shape failure, exaggerated: everything is a square on the left
        def predict(self, x):
            return [{"shape": "square", "side": "left"} for _ in range(len(x))]

    results = check.check(Square())
    for split in check.SPLITS:
        assert results["shape"].agreement(split)[0] == sum(p["eye"] == "square" for p in clear[("shape", split)])
        assert results["position"].agreement(split)[0] == sum(p["eye"] == "left" for p in clear[("position", split)])
    report = check.format_report(results["shape"])
    assert "Held-out pictures:" in report and "Development pictures:" in report
    for clip, start in {(p["clip"], p["start"]) for p in pictures if p["task"] == "shape"}:
        assert f"| {clip} | {start} | " in report

    monkeypatch.setattr(check, "Judge", Echo)
    assert check.main([]) == 0
    out = capsys.readouterr().out
    n = len(clear[("shape", "held-out")])
    assert out.startswith(f"judge check, shape: the judge agrees with the eye labels on {n}/{n} = 100% of the held-out")
    assert "judge check, position: " in out


def test_shipped_judge_reads_held_out_pictures_as_the_eye_does():
    """The judge's outline reading on pictures labelled after it was fixed (run 20: shape 80+%, side 95%)."""
    from conftest import load_script

    from clipguide.demo.judge import Judge

    check = load_script("benchmarks/judge_check.py")
    results = check.check(Judge(), split="held-out")
    agree, clear = results["shape"].agreement()
    assert agree >= 0.75 * clear, results["shape"].pictures
    agree, clear = results["position"].agreement()
    assert agree >= 0.85 * clear, results["position"].pictures


def test_judge_check_refuses_a_sheet_that_does_not_match_its_labels(tmp_path):
    import shutil

    from conftest import load_script
    from PIL import Image

    from clipguide.errors import UserError

    check = load_script("benchmarks/judge_check.py")
    shutil.copy(check.CHECK_DIR / "labels.json", tmp_path / "labels.json")
    Image.new("RGB", (64, 64)).save(tmp_path / "pictures.png")
    with pytest.raises(UserError, match="rebuild one from the other"):
        check.load_pictures(tmp_path)


def test_benchmark_says_how_far_to_trust_its_shape_rate(monkeypatch, capsys):
    from conftest import load_script

    bench = load_script("benchmarks/steering.py")
    checked = []

    def check_judge(judge):  # the real check reads all 320 pictures; its own tests are above
        checked.append(judge)
        picture = {"eye": "circle", "judge": "circle", "split": "held-out"}
        result = sys.modules["judge_check"].CheckResult  # the module the benchmark imported
        return {task: result(task, [picture]) for task in ("shape", "position")}

    monkeypatch.setattr(bench, "check_judge", check_judge)
    assert bench.main(["--seeds", "1", "--tasks", "shape,position", "--steps", "1"]) == 0
    out = capsys.readouterr().out
    assert "judge check, shape: the judge agrees with the eye labels on 1/1 = 100% of the held-out" in out
    assert "judge check, position: " in out and len(checked) == 1
    assert bench.main(["--seeds", "1", "--tasks", "colour", "--steps", "1"]) == 0
    assert "judge check" not in capsys.readouterr().out  # colours are read from pixel statistics
