"""`clipguide telephone` end to end on the shipped demo models (few steps, few rounds)."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from clipguide import api
from clipguide.cli import main
from clipguide.output import read_record

START = "a red circle on a blue background"
FAST = ["--demo", "--steps", "6", "--cutn", "4", "--precision", "fp32", "--device", "cpu", "--quiet"]
SINGLE = [START, *FAST, "--rounds", "3", "--seeds", "2"]


def run(argv, capsys):
    code = main(["telephone", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def folder_state(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def rounds_of(folder: Path, j: int) -> list[Path]:
    return sorted((folder / f"t{j}").glob("round-*.png"))


def pixels(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """One telephone run: 2 trajectories × 3 rounds in one batch."""
    out = tmp_path_factory.mktemp("telephone") / "ref"
    assert main(["telephone", *SINGLE, "--out", str(out)]) == 0
    return out


def test_the_report_lists_every_round_and_each_round_was_made_from_the_caption_before(made):
    report = json.loads((made / "report.json").read_text())
    assert [(t["trajectory"], len(t["rounds"])) for t in report["trajectories"]] == [(0, 3), (1, 3)]
    for t in report["trajectories"]:
        previous = START
        for r, entry in enumerate(t["rounds"]):
            record = read_record(made / entry["image"])
            assert entry["round"] == r and record.kind == "telephone"
            assert record.source["round"] == r and record.source["trajectory"] == t["trajectory"]
            # what this round was generated from (its settings' prompt) is the caption of the round before
            assert record.settings["prompt"] == record.source["generated_from"] == entry["prompt"] == previous
            assert record.source["caption"] == entry["caption"]
            assert record.settings["seed"] == t["trajectory"] + 10_000 * r  # a new seed every round
            previous = entry["caption"]
    captions = (made / "t0" / "captions.txt").read_text().splitlines()
    assert [line.split("\t")[1] for line in captions] == [r["caption"] for r in report["trajectories"][0]["rounds"]]
    strip = Image.open(made / "strip.png")
    assert strip.size[0] > 3 * 48 and strip.size[1] >= 2 * 48  # 3 rounds × 2 trajectories
    for name in ("report.md", "convergence.png", "motifs.png"):
        assert (made / name).is_file()
    assert len(report["conditions"]["none"]["per_round"]) == 3


def test_the_captions_come_from_the_shapes_world(made):
    from clipguide.telephone import vocabulary

    vocab = vocabulary.load(vocabulary.BUILTIN / "shapes")
    for path in rounds_of(made, 0) + rounds_of(made, 1):
        caption = read_record(path).source["caption"]
        assert any(caption.startswith(obj) for obj in vocab.slots["object"]), caption
        assert caption.endswith(" background"), caption


def test_the_same_command_gives_the_same_captions_and_images(made, tmp_path, capsys):
    code, _, _ = run([*SINGLE, "--out", str(tmp_path / "again")], capsys)
    assert code == 0
    for j in (0, 1):
        for a, b in zip(rounds_of(made, j), rounds_of(tmp_path / "again", j), strict=True):
            assert a.read_bytes() == b.read_bytes()  # same pixels, same record (captions included)


def test_an_interrupted_run_keeps_its_rounds_and_goes_on_to_the_same_result(made, tmp_path, capsys, monkeypatch):
    out = tmp_path / "resumed"
    calls = []
    real = api.execute

    def interrupted(run_, hook=None, notify=None):
        calls.append(1)
        if len(calls) == 2:  # round 1: stopped after 2 steps, as Ctrl-C does
            return real(run_, lambda step: step.i >= 2, notify)
        return real(run_, hook, notify)

    monkeypatch.setattr(api, "execute", interrupted)
    code, _, err = run([*SINGLE, "--out", str(out)], capsys)
    assert code == 130 and "interrupted in round 1" in err and "finished rounds are kept" in err
    assert [p.name for p in rounds_of(out, 0)] == ["round-000.png"]
    monkeypatch.setattr(api, "execute", real)
    code, _, _ = run([*SINGLE, "--out", str(out)], capsys)
    assert code == 0
    for j in (0, 1):
        for a, b in zip(rounds_of(made, j), rounds_of(out, j), strict=True):
            assert pixels(a).tolist() == pixels(b).tolist() and read_record(a).source == read_record(b).source


def test_init_previous_starts_each_round_from_the_image_before_and_again_remakes_a_round(tmp_path, capsys):
    out = tmp_path / "previous"
    code, _, _ = run([START, *FAST, "--rounds", "2", "--init", "previous", "--out", str(out)], capsys)
    assert code == 0
    first, second = rounds_of(out, 0)
    record = read_record(second)
    assert record.settings["init_image"] == str(first) and record.source["telephone"]["start"] == "previous"
    assert read_record(first).settings["init_image"] is None
    code, _, err = main(["again", str(second), "--out", str(tmp_path / "again"), "--quiet"]), *capsys.readouterr()
    assert code == 0 and "round 1 of telephone trajectory 0" in err and "generated from" in err
    again, = (tmp_path / "again").glob("*.png")
    assert again.read_bytes() == second.read_bytes()  # made alone in fp32: the same file


def test_again_on_a_round_made_in_a_batch_says_so(made, tmp_path, capsys):
    code, _, err = main(["again", str(rounds_of(made, 1)[2]), "--out", str(tmp_path), "--quiet"]), \
        *capsys.readouterr()
    assert code == 0 and "batch of 2 trajectories" in err
    again, = tmp_path.glob("*.png")
    assert read_record(again).settings["prompt"] == read_record(rounds_of(made, 1)[2]).settings["prompt"]


@pytest.mark.parametrize("extra, fragment", [
    (["--rounds", "0"], "rounds must be at least 1"),
    (["--vocabulary", "EMPTY"], "holds no phrases"),
    (["--describer", "no_such_module:build"], "cannot be loaded"),
    (["--describer", "blip"], "describer 'blip' cannot"),
])
def test_bad_input_is_one_line_and_exit_2_and_nothing_is_lost(made, tmp_path, capsys, extra, fragment):
    if extra == ["--describer", "blip"]:
        try:
            import transformers  # noqa: F401
            pytest.skip("transformers is installed: blip would load (and download) a model")
        except ImportError:
            pass
    (tmp_path / "empty").mkdir()
    extra = [str(tmp_path / "empty") if e == "EMPTY" else e for e in extra]
    for out in (tmp_path / "fresh", tmp_path / "kept"):
        if out.name == "kept":
            shutil.copytree(made, out)
        before = folder_state(out) if out.exists() else None
        code, _, err = run([*SINGLE, "--rounds", "4", *extra, "--out", str(out)], capsys)
        assert code == 2 and err.count("\n") == 1 and err.startswith("clipguide: error:"), err
        assert (folder_state(out) if out.exists() else None) == before  # finished rounds stay as they were
        if out.name == "fresh":
            assert fragment in err, err


def test_an_empty_prompts_file_is_refused(tmp_path, capsys):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("# nothing here\n\n")
    code, _, err = run(["--prompts", str(prompts), *FAST, "--out", str(tmp_path / "out")], capsys)
    assert code == 2 and "holds no prompts" in err and not (tmp_path / "out").exists()
    code, _, err = run(["--prompts", str(prompts), START, *FAST], capsys)
    assert code == 2 and "not both" in err


def test_a_changed_command_does_not_touch_an_earlier_run(made, tmp_path, capsys):
    out = tmp_path / "kept"
    shutil.copytree(made, out)
    before = folder_state(out)
    code, _, err = run([*SINGLE, "--steps", "7", "--out", str(out)], capsys)
    assert code == 2 and "made differently (steps)" in err
    assert folder_state(out) == before


def test_a_study_on_the_demo_models_counts_motifs_with_and_without_a_style(tmp_path, capsys):
    from clipguide.presets import demo_settings
    from clipguide.settings import Settings
    from clipguide.telephone.loop import run_trajectory
    from clipguide.telephone.settings import TelephoneSettings

    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a red circle on a blue background\na yellow star on a black background\n")
    out = tmp_path / "study"
    code, _, _ = run(["--prompts", str(prompts), *FAST, "--rounds", "2", "--seeds", "2", "--style", "baroque",
                            "--eval-clip", "demo-wide", "--out", str(out)], capsys)
    assert code == 0
    report = json.loads((out / "report.json").read_text())
    assert report["styles"] == ["none", "baroque"] and report["eval_model"] == "demo-wide"
    assert not report["eval_model_same_as_guide"] and report["bootstrap"]["unit"] == "start prompt"
    assert len(report["trajectories"]) == 2 * 2 * 2
    for style in ("none", "baroque"):
        cond = report["conditions"][style]
        assert [row["round"] for row in cond["per_round"]] == [0, 1]
        motifs = cond["final"]["motifs"]
        assert 1 <= motifs["count"] <= 4 and sum(c["size"] for c in motifs["clusters"]) == 4
        assert motifs["method"]  # the report says how the number was chosen
        for row in cond["per_round"]:
            assert row["vendi"]["low"] <= row["vendi"]["value"] + 1e-9 <= row["vendi"]["high"] + 2e-9
            assert 1.0 <= row["vendi"]["value"] <= 4.0
    assert "baroque" in report["versus_none"]
    first = read_record(out / "baroque" / "p001-a-red-circle-on-a-blue-background" / "t0" / "round-000.png")
    assert first.settings["style"] == "baroque" and first.source["generated_from"] == START
    for name in ("report.md", "convergence.png", "motifs.png", "strips/p001-a-red-circle-on-a-blue-background.png"):
        assert (out / name).is_file(), name
    assert "Motifs" in (out / "report.md").read_text()
    # One trajectory is a function of (start prompt, index, settings): made alone elsewhere, it is the same.
    settings = Settings(**{**demo_settings(), "steps": 6, "cutn": 4, "precision": "fp32", "device": "cpu",
                           "style": "baroque"})
    alone = run_trajectory(START, 1, settings, TelephoneSettings(rounds=2), tmp_path / "alone",
                           explicit=frozenset({"steps", "cutn", "precision", "device", "style"}))
    study = out / "baroque" / "p001-a-red-circle-on-a-blue-background" / "t1"
    made_there = sorted(study.glob("round-*.png"))
    assert [r.caption for r in alone.rounds] == [read_record(p).source["caption"] for p in made_there]
    for mine, theirs in zip(alone.rounds, made_there, strict=True):
        assert pixels(mine.image).tolist() == pixels(theirs).tolist()
        assert read_record(mine.image).settings == read_record(theirs).settings
