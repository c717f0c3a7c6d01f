"""`clipguide animate`: 2d motion, styled videos, exact resume, again on a frame, and bad input.

Motion and resume run on the shipped demo models (64x64, a few steps a frame), judged by pixels;
plumbing and errors on tiny models of the real architectures.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from clipguide import api
from clipguide.animation import AnimationSettings
from clipguide.animation.loop import animate, frame_seed, step_of, story_steps
from clipguide.animation.motion import transform
from clipguide.cli import main
from clipguide.demo import VQGAN_PATH
from clipguide.output import VideoWriter, read_record
from clipguide.settings import Settings
from tiny_models import write_tiny_vqgan_safetensors

demo_only = pytest.mark.skipif(not VQGAN_PATH.is_file(), reason="demo models not built")
PROMPT = "a white circle on a red background"


@pytest.fixture(scope="module")
def session():
    return api.Session("cpu")


@pytest.fixture(scope="module")
def demo():
    from clipguide.presets import demo_settings

    return Settings(prompt=PROMPT, device="cpu", precision="fp32").replace(**{**demo_settings(), "cutn": 8})


@pytest.fixture(scope="module")
def tiny_flags(tmp_path_factory, tiny_clip_dir):
    vqgan = write_tiny_vqgan_safetensors(tmp_path_factory.mktemp("vq") / "tiny.safetensors")
    return ["--generator", str(vqgan), "--clip", str(tiny_clip_dir), "--size", "32", "32", "--steps", "3",
            "--steps-per-frame", "2", "--cutn", "2", "--augments", "noise", "--device", "cpu", "--precision", "fp32",
            "--quiet"]


def pixels(path) -> torch.Tensor:
    return torch.from_numpy(np.asarray(Image.open(path).convert("RGB")).copy()).permute(2, 0, 1)[None].float() / 255


def best_scale(a, b) -> float:
    """The zoom that best maps picture a onto picture b (least squared error away from the borders)."""
    grid = [round(0.9 + 0.01 * i, 2) for i in range(41)]
    errors = [((transform(pixels(a), zoom=s, angle=0, translate=(0, 0)) - pixels(b))[..., 8:-8, 8:-8] ** 2).mean()
              for s in grid]
    return grid[int(np.argmin(errors))]


def frames_of(folder) -> list:
    return sorted(folder.glob("[0-9]*.png"))


def video_frames(path) -> int:
    import imageio_ffmpeg

    return imageio_ffmpeg.count_frames_and_secs(str(path))[0]


def moving_square(count: int, size: int = 64) -> list[Image.Image]:
    """A white square crossing a red picture from left to right."""
    pictures = []
    for i in range(count):
        im = Image.new("RGB", (size, size), (200, 30, 30))
        x = 8 + i * 36 // max(1, count - 1)
        ImageDraw.Draw(im).rectangle([x, 22, x + 20, 42], fill=(240, 240, 240))
        pictures.append(im)
    return pictures


def centre_x(path) -> float:
    bright = np.asarray(Image.open(path).convert("RGB")).min(axis=2) > 170
    return float(np.nonzero(bright)[1].mean())


@demo_only
def test_a_zoom_makes_the_content_grow_frame_to_frame(demo, session, tmp_path):
    anim = AnimationSettings(frames=5, steps_per_frame=4, zoom=1.15)
    result = animate(demo.replace(steps=30), anim, tmp_path / "zoom", session=session)
    frames = frames_of(result.folders[0])
    assert len(frames) == 5 and not result.stopped
    scales = [best_scale(a, b) for a, b in zip(frames, frames[1:])]
    assert all(s >= 1.04 for s in scales), scales  # measured 1.06-1.12 for a zoom of 1.15
    assert video_frames(result.videos[0]) == 5 and result.videos[0].name == "a-white-circle-on-a-red-background-0.mp4"
    still = animate(demo.replace(steps=30), anim.replace(zoom=1.0, frames=3), tmp_path / "still", session=session)
    frames = frames_of(still.folders[0])
    control = [best_scale(a, b) for a, b in zip(frames, frames[1:])]
    assert all(0.98 <= s <= 1.02 for s in control), control  # no zoom, no growth


@demo_only
def test_resume_after_an_interrupt_gives_the_same_frames(demo, session, tmp_path):
    settings = demo.replace(steps=10, seeds=2)
    anim = AnimationSettings(frames=4, steps_per_frame=3, zoom="0:1.0, 3:1.1", angle=2)
    whole = animate(settings, anim, tmp_path / "whole", session=session)

    def interrupt(step):  # Ctrl-C, or Stop in the web UI, during frame 2
        return step.run.first_step == step_of(2, 10, 3) and step.i == 2

    cut = animate(settings, anim, tmp_path / "cut", session=session, hook=interrupt)
    assert cut.stopped and cut.done == 2 and [len(frames_of(f)) for f in cut.folders] == [2, 2]
    assert video_frames(cut.videos[0]) == 2  # the video of what was finished
    again = animate(settings, anim, tmp_path / "cut", session=session)
    assert again.first == 2 and again.done == 4 and again.folders == cut.folders
    for a, b in zip(whole.folders, again.folders):
        assert [p.read_bytes() for p in frames_of(a)] == [p.read_bytes() for p in frames_of(b)]
    assert video_frames(again.videos[1]) == 4
    first, second = (frames_of(f)[-1].read_bytes() for f in whole.folders)
    assert first != second  # --seeds 2: two variations in one batch
    record = read_record(frames_of(whole.folders[1])[3])
    assert record.kind == "animation" and record.source["frame"] == 3 and record.settings["seed"] == 1
    assert record.source["animation"]["zoom"] == "0:1.0, 3:1.1" and record.steps_done == step_of(4, 10, 3)


@demo_only
def test_a_styled_video_follows_its_source(demo, session, tmp_path):
    with VideoWriter(tmp_path / "source.mp4", fps=8) as video:
        for picture in moving_square(6):
            video.append(picture)
    anim = AnimationSettings(video_init=str(tmp_path / "source.mp4"), mode="video", steps_per_frame=6,
                             video_weight=10)
    result = animate(demo.replace(prompt="a white circle on a blue background", steps=10), anim, tmp_path / "out",
                     session=session)
    frames = frames_of(result.folders[0])
    assert len(frames) == 6 and result.fps == 8  # count and fps follow the source
    assert video_frames(result.videos[0]) == 6
    xs = [centre_x(p) for p in frames]
    assert xs[-1] > xs[0] + 15 and all(b > a - 1 for a, b in zip(xs, xs[1:])), xs  # the square moves right


def test_a_smoothed_video_from_a_folder_resumes_exactly(tiny_flags, tmp_path, capsys, monkeypatch):
    source = tmp_path / "frames"
    source.mkdir()
    for i, picture in enumerate(moving_square(4, 32)):
        picture.save(source / f"f{i}.png")
    (source / "f10.png").write_bytes((source / "f3.png").read_bytes())  # natural order: f10 after f3
    flags = [*tiny_flags, "--video-init", str(source), "--smooth", "0.5", "--seeds", "2"]
    assert main(["animate", "oil painting", *flags, "--out", str(tmp_path / "a")]) == 0
    from clipguide import engine

    real_run, calls = engine.run, []

    def interrupted(run, hook=None):
        calls.append(run.first_step)
        if len(calls) == 4:
            raise KeyboardInterrupt  # Ctrl-C in frame 3
        return real_run(run, hook)

    monkeypatch.setattr(engine, "run", interrupted)
    assert main(["animate", "oil painting", *flags, "--out", str(tmp_path / "b")]) == 130
    monkeypatch.setattr(engine, "run", real_run)
    folder_b = tmp_path / "b" / "oil-painting-0"
    assert len(frames_of(folder_b)) == 3 and [p.name for p in folder_b.glob("state-*")] == ["state-00002.safetensors"]
    assert main(["animate", "oil painting", *flags, "--out", str(tmp_path / "b")]) == 0
    for seed in (0, 1):
        a, b = tmp_path / "a" / f"oil-painting-{seed}", tmp_path / "b" / f"oil-painting-{seed}"
        assert len(frames_of(a)) == 5
        assert [p.read_bytes() for p in frames_of(a)] == [p.read_bytes() for p in frames_of(b)]
    capsys.readouterr()


def test_again_on_a_frame_makes_the_animation_up_to_it(tiny_flags, tmp_path, capsys):
    story = ["animate", "a castle ^ a forest", *tiny_flags, "--out", str(tmp_path / "a")]
    assert main([*story, "--frames", "4", "--zoom", "1.1"]) == 0
    frame = tmp_path / "a" / "a-castle-0" / "00002.png"
    assert main(["again", str(frame), "--out", str(tmp_path / "b"), "--quiet"]) == 0
    made = frames_of(tmp_path / "b" / "a-castle-0")
    assert len(made) == 3 and made[-1].read_bytes() == frame.read_bytes()
    assert "is frame 2 of an animation" in capsys.readouterr().err
    # the same command again has nothing left to make, and says where the frames are
    assert main([*story, "--frames", "4", "--zoom", "1.1"]) == 0
    assert "all 4 frames were already made" in capsys.readouterr().err
    # a different animation of the same prompt gets a folder of its own
    assert main([*story, "--frames", "2", "--zoom", "1.2"]) == 0
    assert len(frames_of(tmp_path / "a" / "a-castle-0-1")) == 2 and len(frames_of(tmp_path / "a" / "a-castle-0")) == 4
    capsys.readouterr()


def test_prompts_keyed_by_frame_start_at_that_frames_steps():
    settings = Settings(prompt="0:a castle ^ 3:a forest ^ 5:the sea", steps=40)
    anim = AnimationSettings(steps_per_frame=10)
    assert story_steps(settings, anim, 8) == [0, 60, 80]  # frame 0 has 40 steps, then 10 a frame
    assert story_steps(settings.replace(prompt="a ^ b ^ c"), anim, 9) == [0, 60, 90]  # frames 0, 3, 6
    assert story_steps(settings.replace(prompt="a ^ b", change_every=25), anim, 9) == [0, 25]  # steps, as for stills
    assert frame_seed(0, 1) != frame_seed(1, 0) and frame_seed(3, 7) == frame_seed(3, 7)


class Shake(__import__("clipguide.animation.modes", fromlist=["Mode"]).Mode):
    """A mode for the test: every frame starts from the last one moved one pixel right."""

    name = "shake"

    def start(self, frame, previous):
        return torch.roll(previous, 1, dims=-1)


def test_a_new_animation_mode_is_one_class_and_one_registry_line(tiny_flags, tmp_path, capsys):
    from clipguide.registry import ANIMATION_MODES

    ANIMATION_MODES.register("shake", Shake)
    try:
        assert main(["animate", "a castle", *tiny_flags, "--frames", "2", "--mode", "shake", "--out",
                     str(tmp_path)]) == 0
    finally:
        ANIMATION_MODES.unregister("shake")
    assert read_record(tmp_path / "a-castle-0" / "00001.png").source["animation"]["mode"] == "shake"
    capsys.readouterr()


@pytest.mark.parametrize("flags, words", [
    (["--zoom", "0:1.0, 60"], "zoom '0:1.0, 60' does not parse"),
    (["--angle", "0:1, 0:2"], "angle"),
    (["--frames", "0"], "frames must be at least 1"),
    (["--zoom", "0"], "zoom must be greater than 0, got 0"),
    (["--zoom", "0:1, 10:0"], "zoom must be greater than 0 at every keyframe"),
    (["--frames", "20000"], "frames=20000 is over the limit of 10000"),
    (["--video-init", "missing.mp4"], "missing.mp4 does not exist"),
    (["--smooth", "0.5"], "use it with --video-init"),
    (["--mode", "video"], "mode video needs a source"),
    (["--mode", "spin"], "invalid choice: 'spin'"),
    (["--frames", "1", "--change-every", "0"], "the story has 2 parts but the animation only 1 frames"),
])
def test_bad_input_is_one_line_and_writes_nothing(tiny_flags, tmp_path, capsys, flags, words):
    out = tmp_path / "out"
    assert main(["animate", "a castle ^ a forest", *tiny_flags, *flags, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert words in err and len(err.splitlines()) == 1, err
    assert not out.exists()


def test_an_undecodable_or_too_long_video_is_refused_before_anything_is_written(tiny_flags, tmp_path, capsys,
                                                                                monkeypatch):
    (tmp_path / "broken.mp4").write_text("not a video")
    out = tmp_path / "out"
    assert main(["animate", "oil", *tiny_flags, "--video-init", str(tmp_path / "broken.mp4"), "--out", str(out)]) == 2
    assert "cannot read video" in capsys.readouterr().err and not out.exists()
    with VideoWriter(tmp_path / "long.mp4", fps=8) as video:
        for picture in moving_square(6, 32):
            video.append(picture)
    monkeypatch.setitem(__import__("clipguide.animation.settings", fromlist=["LIMITS"]).LIMITS, "frames", 4)
    assert main(["animate", "oil", *tiny_flags, "--video-init", str(tmp_path / "long.mp4"), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "has 6 frames, over the limit of 4" in err and "--frames N" in err and not out.exists()
    assert main(["animate", "oil", *tiny_flags, "--video-init", str(tmp_path / "long.mp4"), "--frames", "8",
                 "--out", str(out)]) == 2
    assert "has only 6" in capsys.readouterr().err and not out.exists()


def test_biggan_says_what_to_use_instead(tmp_path, capsys):
    out = tmp_path / "o"
    assert main(["animate", "a castle", "--generator", "biggan-deep-128", "--zoom", "1.02", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "cannot encode a picture (BigGAN cannot)" in err and "--video" in err and not out.exists()
