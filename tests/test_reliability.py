"""Bad input, faults and interrupts: one-line errors, exit codes, and nothing lost."""

import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from clipguide import api
from clipguide.cli import main
from clipguide.errors import OutOfMemoryError
from clipguide.output import read_record
from clipguide.settings import Settings
from tiny_models import write_tiny_vqgan_safetensors


@pytest.fixture(scope="module")
def tiny_vqgan(tmp_path_factory):
    return write_tiny_vqgan_safetensors(tmp_path_factory.mktemp("vq") / "tiny.safetensors")


@pytest.fixture
def flags(tiny_vqgan, tiny_clip_dir):
    return ["--generator", str(tiny_vqgan), "--clip", str(tiny_clip_dir), "--size", "32", "32", "--steps", "2",
            "--cutn", "2", "--quiet"]


def _cli(argv, capsys):
    code = main(argv)
    return code, capsys.readouterr().err


def test_ctrl_c_saves_the_latest_image_with_metadata_and_exits_cleanly(tmp_path, tiny_vqgan, tiny_clip_dir):
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "clipguide", "a slow sunset", "--generator", str(tiny_vqgan), "--clip",
           str(tiny_clip_dir), "--size", "32", "32", "--steps", "100000", "--no-limits", "--cutn", "2",
           "--save-every", "1", "--quiet", "--out", str(out)]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    first_frame = out / "a-slow-sunset-0-frames" / "00001.png"
    deadline = time.monotonic() + 120
    while not first_frame.exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.2)
    assert first_frame.exists(), proc.communicate()[1]
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr and "interrupted" in stderr
    final = out / "a-slow-sunset-0.png"
    assert stdout.strip().splitlines()[0] == str(final)
    record = read_record(final)
    assert 1 <= record.steps_done < 100000
    assert record.settings["prompt"] == "a slow sunset"
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temp files left behind


def test_out_of_memory_is_reported_with_settings_that_fit(tiny_vqgan, tiny_clip_dir, monkeypatch):
    session = api.Session("cpu")
    settings = Settings(prompt="x", generator=str(tiny_vqgan), clip=(str(tiny_clip_dir),), size=(32, 32), steps=2,
                        cutn=8, seeds=4)
    generator = session.generator(settings.generator, settings)

    def explode(latent):
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory")

    monkeypatch.setattr(generator, "decode", explode)
    with pytest.raises(OutOfMemoryError) as e:
        api.generate(settings, session=session)
    message = str(e.value)
    assert "--size 16 16" in message and "--cutn 4" in message and "--seeds 2" in message and "\n" not in message


def test_other_runtime_errors_are_not_disguised(tiny_vqgan, tiny_clip_dir, monkeypatch):
    session = api.Session("cpu")
    settings = Settings(prompt="x", generator=str(tiny_vqgan), clip=(str(tiny_clip_dir),), size=(32, 32), steps=1)
    generator = session.generator(settings.generator, settings)
    monkeypatch.setattr(generator, "decode", lambda latent: (_ for _ in ()).throw(RuntimeError("a real bug")))
    with pytest.raises(RuntimeError, match="a real bug"):
        api.generate(settings, session=session)


@pytest.mark.parametrize("make_bad", [
    lambda d: d / "missing.png",
    lambda d: d,  # a folder
    lambda d: (d / "notes.txt", (d / "notes.txt").write_text("not an image"))[0],
    lambda d: (d / "empty.png", (d / "empty.png").write_bytes(b""))[0],
])
@pytest.mark.parametrize("flag", ["--init-image", "--image-prompt"])
def test_bad_init_and_prompt_images(tmp_path, flags, capsys, make_bad, flag):
    bad = make_bad(tmp_path)
    code, err = _cli(["a cat", *flags, flag, str(bad), "--out", str(tmp_path / "out")], capsys)
    assert code == 2 and err.count("\n") == 1 and str(bad) in err
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


@pytest.mark.parametrize("argv, fragment", [
    (["--augments", "sparkle"], "invalid choice"),
    (["--clip", "ViT-B-32/opena"], "did you mean"),
    (["--cut-pow", "nan"], "finite"),
    (["--lr", "-1"], "lr must be positive"),
    (["--size", "4096", "4096"], "--no-limits"),
    (["--steps", "ten"], "invalid int value"),
    (["--device", "cuda"] if not torch.cuda.is_available() else ["--device", "tpu"], "cuda" if not torch.cuda.is_available() else "invalid choice"),
])
def test_more_user_mistakes(tmp_path, flags, capsys, argv, fragment):
    code, err = _cli(["a cat", *flags, *argv, "--out", str(tmp_path / "out")], capsys)
    assert code == 2 and err.startswith("clipguide: error:") and err.count("\n") == 1, err
    assert fragment in err


def test_again_on_a_png_without_clipguide_metadata(tmp_path, capsys):
    from PIL import Image

    Image.new("RGB", (8, 8)).save(tmp_path / "plain.png")
    code, err = _cli(["again", str(tmp_path / "plain.png")], capsys)
    assert code == 2 and "no clipguide settings" in err


def test_results_are_never_overwritten_even_for_video(tmp_path, flags, capsys):
    video = tmp_path / "run.gif"
    video.write_bytes(b"precious")
    code, err = _cli(["a cat", *flags, "--save-every", "1", "--video", str(video), "--out", str(tmp_path)], capsys)
    assert code == 2 and "already exists" in err and video.read_bytes() == b"precious"
