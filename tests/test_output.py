"""Tests for clipguide.output: names, atomic writes, PNG metadata, tensors to images, video, loading."""

from __future__ import annotations

import errno
import os
import re
import sys
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from clipguide import output
from clipguide.errors import UserError
from clipguide.output import (
    OutputExistsError,
    VideoWriter,
    atomic_write,
    atomic_write_bytes,
    atomic_write_text,
    ensure_out_dir,
    load_image,
    read_png_metadata,
    save_png,
    slugify,
    to_pil,
    unique_path,
)

SLUG = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")


def leftovers(folder: Path) -> list[str]:
    """Hidden temporary files (or anything else) left in ``folder``."""
    return sorted(p.name for p in folder.iterdir())


def gradient(width: int, height: int, shift: int = 0) -> Image.Image:
    """A deterministic RGB test image; ``shift`` makes distinct frames."""
    y, x = np.mgrid[0:height, 0:width]
    a = np.stack([(x * 7 + shift * 40) % 256, (y * 5 + shift * 13) % 256, (x + y + shift * 90) % 256], -1)
    return Image.fromarray(a.astype(np.uint8))


# ------------------------------------------------------------------------------- slugify


@pytest.mark.parametrize(
    ("prompt", "slug"),
    [
        ("A sunset over the sea", "a-sunset-over-the-sea"),
        ("Café crème, naïve façade", "cafe-creme-naive-facade"),
        ("  ../../etc/passwd  ", "etc-passwd"),
        (".hidden", "hidden"),
        ("a sunset:1.5 | cyberpunk:0.5:0.1", "a-sunset-cyberpunk"),
        ("a sunset | blurry:-1", "a-sunset"),
        ("日本語", "image"),
        ("", "image"),
        ("!!!", "image"),
        ("CON", "con-image"),
        ("lpt1", "lpt1-image"),
        ("com1 port", "com1-port"),
        ("ﬁne ＦＵＬＬ width", "fine-full-width"),
    ],
)
def test_slugify_examples(prompt: str, slug: str) -> None:
    assert slugify(prompt) == slug


def test_slugify_cuts_long_prompts_at_a_word() -> None:
    slug = slugify("the quick brown fox jumps over the lazy dog", max_len=17)
    assert slug == "the-quick-brown"
    assert slugify("abcdefghijklmnop", max_len=5) == "abcde"
    assert slugify("con", max_len=4) == "imag"


@settings(max_examples=300, deadline=None)
@given(st.text(), st.integers(min_value=1, max_value=80))
def test_slugify_is_always_safe(prompt: str, max_len: int) -> None:
    slug = slugify(prompt, max_len=max_len)
    assert slug and len(slug) <= max_len
    assert SLUG.match(slug), slug
    assert "/" not in slug and "\\" not in slug and not slug.startswith(".")
    assert slug not in output.names._RESERVED


# ----------------------------------------------------------------------------- unique_path


def test_unique_path_never_returns_an_existing_file(tmp_path: Path) -> None:
    seen = []
    for _ in range(4):
        p = unique_path(tmp_path, "sunset", ".png")
        assert not p.exists()
        p.write_bytes(b"x")
        seen.append(p.name)
    assert seen == ["sunset.png", "sunset-1.png", "sunset-2.png", "sunset-3.png"]
    assert unique_path(tmp_path, "sunset", "txt").name == "sunset.txt"


def test_unique_path_counts_dangling_symlinks_as_taken(tmp_path: Path) -> None:
    if not hasattr(os, "symlink"):
        pytest.skip("no symlinks")
    (tmp_path / "a.png").symlink_to(tmp_path / "missing")
    assert unique_path(tmp_path, "a", ".png").name == "a-1.png"


@pytest.mark.parametrize("stem", ["", "..", "a/b", "a\\b"])
def test_unique_path_rejects_path_like_stems(tmp_path: Path, stem: str) -> None:
    with pytest.raises(ValueError):
        unique_path(tmp_path, stem, ".png")


# ---------------------------------------------------------------------------- atomic_write


def test_atomic_write_writes_and_leaves_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "out.txt"
    assert atomic_write_text(target, "héllo\n") == target
    assert target.read_text(encoding="utf-8") == "héllo\n"
    assert atomic_write_bytes(tmp_path / "b.bin", b"\x00\x01") == tmp_path / "b.bin"
    assert leftovers(tmp_path) == ["b.bin", "out.txt"]


def test_written_file_has_normal_permissions(tmp_path: Path) -> None:
    if os.name != "posix":
        pytest.skip("POSIX permissions")
    mask = os.umask(0o022)
    os.umask(mask)
    atomic_write_text(tmp_path / "a.txt", "x")
    assert (tmp_path / "a.txt").stat().st_mode & 0o777 == 0o666 & ~mask


@pytest.mark.parametrize("error", [RuntimeError("boom"), KeyboardInterrupt()])
def test_writer_failing_midway_leaves_nothing(tmp_path: Path, error: BaseException) -> None:
    def write(f):
        f.write(b"half of the data")
        raise error

    with pytest.raises(type(error)):
        atomic_write(tmp_path / "out.bin", write)
    assert leftovers(tmp_path) == []


def test_disk_full_becomes_a_user_error_and_leaves_nothing(tmp_path: Path) -> None:
    def write(f):
        f.write(b"x" * 1000)
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(UserError, match=r"^no space left on the device while saving .*out\.png: .*\(--out\)$"):
        atomic_write(tmp_path / "out.png", write)
    assert leftovers(tmp_path) == []


def test_failed_write_keeps_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "keep.txt"
    target.write_text("old")

    def write(f):
        f.write(b"new but broken")
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(UserError):
        atomic_write(target, write, overwrite=True)
    assert target.read_text() == "old"
    assert leftovers(tmp_path) == ["keep.txt"]


def test_refuses_to_overwrite_unless_asked(tmp_path: Path) -> None:
    target = tmp_path / "a.txt"
    target.write_text("mine")
    with pytest.raises(OutputExistsError, match="refusing to replace") as info:
        atomic_write_text(target, "theirs")
    assert isinstance(info.value, UserError) and isinstance(info.value, FileExistsError)
    assert target.read_text() == "mine"
    atomic_write_text(target, "theirs", overwrite=True)
    assert target.read_text() == "theirs"
    assert leftovers(tmp_path) == ["a.txt"]


def test_file_appearing_while_writing_is_not_replaced(tmp_path: Path) -> None:
    target = tmp_path / "race.txt"

    def write(f):
        f.write(b"ours")
        target.write_text("another process got here first")

    with pytest.raises(OutputExistsError):
        atomic_write(target, write)
    assert target.read_text() == "another process got here first"
    assert leftovers(tmp_path) == ["race.txt"]


def test_no_clobber_without_hard_links(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """File systems without hard links fall back to check-then-rename."""

    def no_link(src, dst):
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(output.files.os, "link", no_link)
    atomic_write_text(tmp_path / "a.txt", "one")
    assert (tmp_path / "a.txt").read_text() == "one"
    with pytest.raises(OutputExistsError):
        atomic_write_text(tmp_path / "a.txt", "two")
    assert leftovers(tmp_path) == ["a.txt"]


def test_missing_folder_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="does not exist"):
        atomic_write_text(tmp_path / "nope" / "a.txt", "x")


def deny_writes_in(monkeypatch: pytest.MonkeyPatch, folder: Path) -> None:
    """Make creating files in ``folder`` fail with EACCES, as a read-only folder would.

    Tests run as root here, where chmod does not stop writes, so permission errors are simulated.
    """
    real_open = os.open

    def fake_open(path, flags, *args, **kwargs):
        if Path(path).parent == folder and flags & os.O_CREAT:
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(output.files.os, "open", fake_open)


def test_unwritable_folder_is_a_user_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    deny_writes_in(monkeypatch, tmp_path)
    with pytest.raises(UserError, match=r"^cannot write to folder .*: choose a writable output folder \(--out\)$"):
        atomic_write_text(tmp_path / "a.txt", "x")
    with pytest.raises(UserError, match=r"^cannot write to folder .*: choose a writable output folder \(--out\)$"):
        ensure_out_dir(tmp_path)
    assert leftovers(tmp_path) == []


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="needs POSIX permissions, not root")
def test_really_read_only_folder(tmp_path: Path) -> None:
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        with pytest.raises(UserError, match="cannot write to folder"):
            ensure_out_dir(folder)
        with pytest.raises(UserError, match="cannot write to folder"):
            atomic_write_text(folder / "a.txt", "x")
    finally:
        folder.chmod(0o700)


# -------------------------------------------------------------------------- ensure_out_dir


def test_ensure_out_dir_creates_parents(tmp_path: Path) -> None:
    folder = tmp_path / "a" / "b" / "c"
    assert ensure_out_dir(folder) == folder
    assert folder.is_dir() and leftovers(folder) == []
    assert ensure_out_dir(folder) == folder  # existing folder is fine


def test_ensure_out_dir_refuses_a_file(tmp_path: Path) -> None:
    (tmp_path / "outputs").write_text("not a folder")
    with pytest.raises(UserError, match="it is a file"):
        ensure_out_dir(tmp_path / "outputs")
    with pytest.raises(UserError, match="part of that path is a file"):
        ensure_out_dir(tmp_path / "outputs" / "sub")


# --------------------------------------------------------------------------------- to_pil


def test_to_pil_rounds_instead_of_truncating() -> None:
    values = torch.tensor([0.0, 0.001, 0.002, 0.5, 0.999, 1.0, -0.2, 1.3])
    image = values.view(1, 1, 8).expand(3, 1, 8)
    [pil] = to_pil(image)
    assert pil.mode == "RGB" and pil.size == (8, 1)
    assert np.asarray(pil)[0, :, 0].tolist() == [0, 0, 1, 128, 255, 255, 0, 255]


def test_to_pil_batches_and_half_precision() -> None:
    batch = torch.rand(2, 3, 5, 4, generator=torch.Generator().manual_seed(0))
    images = to_pil(batch.to(torch.bfloat16))
    assert [im.size for im in images] == [(4, 5), (4, 5)]
    expected = (batch.to(torch.bfloat16).float() * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    assert np.array_equal(np.asarray(images[1]), expected[1])


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_to_pil_refuses_non_finite(bad: float) -> None:
    image = torch.zeros(3, 4, 4)
    image[1, 2, 2] = bad
    with pytest.raises(ValueError, match="NaN/Inf"):
        to_pil(image)


@pytest.mark.parametrize("shape", [(4, 4), (1, 4, 4), (2, 4, 4, 4), (1, 1, 3, 4, 4)])
def test_to_pil_refuses_wrong_shapes(shape: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match="shape"):
        to_pil(torch.zeros(shape))


# ------------------------------------------------------------------------------ PNG files


def test_settings_record_round_trip(tmp_path: Path) -> None:
    from types import SimpleNamespace

    from clipguide.output import png_chunks, read_record
    from clipguide.settings import Settings

    given = Settings(prompt="café ☕ at dawn", style="baroque", steps=10, size=(64, 64), seeds=2)
    result = SimpleNamespace(settings=given, resolved=given.replace(prompt="café ☕ at dawn, baroque"),
                             seeds=[0, 1], explicit=frozenset({"steps", "prompt"}), steps_done=10)
    meta = png_chunks(result, 1, kind="compare", style="baroque")
    path = save_png(gradient(16, 12), tmp_path, "cafe", meta)
    assert path == tmp_path / "cafe.png"
    assert read_png_metadata(path) == meta
    assert meta["seed"] == "1" and meta["prompt"] == "café ☕ at dawn, baroque"
    record = read_record(path)
    assert record.settings == {**output.record.json.loads(meta["clipguide"])["settings"]}
    assert record.settings["seed"] == 1 and record.settings["seeds"] == 1 and record.settings["size"] == [64, 64]
    assert record.explicit == {"steps", "prompt"} and record.steps_done == 10
    assert record.kind == "compare" and record.source["batch"] == {"seed": 0, "seeds": 2}
    with Image.open(path) as im:
        assert im.format == "PNG" and np.array_equal(np.asarray(im), np.asarray(gradient(16, 12)))


def test_older_records_still_read(tmp_path: Path) -> None:
    """Schema 1 (the settings as the whole chunk) and compare's own layout, as earlier versions wrote them."""
    import json

    from clipguide.output import read_record

    v1 = save_png(gradient(4, 4), tmp_path, "v1", {"clipguide": json.dumps({"prompt": "a cat", "seed": 3}),
                                                    "clipguide:explicit": '["prompt"]', "clipguide:steps_done": "7"})
    record = read_record(v1)
    assert record.settings == {"prompt": "a cat", "seed": 3} and record.explicit == {"prompt"}
    assert record.steps_done == 7 and record.kind == "generate"
    old_compare = save_png(gradient(4, 4), tmp_path, "c", {"clipguide": json.dumps(
        {"settings": {"prompt": "a cat, baroque", "style": "baroque", "seed": 0, "seeds": 4}, "seed": 2,
         "compare_style": "baroque"})})
    record = read_record(old_compare)
    assert record.settings["seed"] == 2 and record.settings["seeds"] == 1 and record.kind == "compare"
    newer = save_png(gradient(4, 4), tmp_path, "n", {"clipguide": json.dumps({"schema": 99})})
    with pytest.raises(UserError, match="upgrade clipguide"):
        read_record(newer)


def test_save_png_is_deterministic_and_never_overwrites(tmp_path: Path) -> None:
    image = gradient(20, 10)
    a = save_png(image, tmp_path, "x", {"prompt": "p", "seed": "1"})
    b = save_png(image, tmp_path, "x", {"seed": "1", "prompt": "p"})
    assert (a.name, b.name) == ("x.png", "x-1.png")
    assert a.read_bytes() == b.read_bytes()
    assert b"tIME" not in a.read_bytes()
    assert leftovers(tmp_path) == ["x-1.png", "x.png"]


def test_save_png_takes_the_next_name_after_a_race(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = output.images.unique_path
    calls = []

    def racing_unique_path(directory, stem, suffix):
        path = real(directory, stem, suffix)
        if not calls:  # another process takes the name right after we chose it
            path.write_bytes(b"someone else")
        calls.append(path.name)
        return path

    monkeypatch.setattr(output.images, "unique_path", racing_unique_path)
    path = save_png(gradient(4, 4), tmp_path, "r", {})
    assert calls == ["r.png", "r-1.png"] and path.name == "r-1.png"
    assert (tmp_path / "r.png").read_bytes() == b"someone else"


def test_save_png_rejects_bad_keys(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        save_png(gradient(4, 4), tmp_path, "k", {"": "x"})
    with pytest.raises(ValueError):
        save_png(gradient(4, 4), tmp_path, "k", {"k" * 80: "x"})
    assert leftovers(tmp_path) == []


def test_read_png_metadata_errors(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="not a PNG made by clipguide: no such file"):
        read_png_metadata(tmp_path / "missing.png")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(UserError, match="not a PNG made by clipguide: not an image file"):
        read_png_metadata(tmp_path / "notes.txt")
    gradient(4, 4).save(tmp_path / "photo.jpg")
    with pytest.raises(UserError, match="it is a JPEG image"):
        read_png_metadata(tmp_path / "photo.jpg")
    noise = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    good = save_png(Image.fromarray(noise), tmp_path, "t", {"a": "b"}).read_bytes()
    (tmp_path / "cut.png").write_bytes(good[: len(good) // 2])
    with pytest.raises(UserError, match="not a PNG made by clipguide: the file is damaged"):
        read_png_metadata(tmp_path / "cut.png")
    with pytest.raises(UserError, match="it is a folder"):
        read_png_metadata(tmp_path)


def test_plain_png_has_no_metadata(tmp_path: Path) -> None:
    gradient(4, 4).save(tmp_path / "plain.png")
    assert read_png_metadata(tmp_path / "plain.png") == {}


# ------------------------------------------------------------------------------ load_image


def test_load_image_converts_and_resizes(tmp_path: Path) -> None:
    rgba = Image.new("RGBA", (10, 6), (255, 0, 0, 0))  # fully transparent red
    rgba.save(tmp_path / "t.png")
    im = load_image(tmp_path / "t.png")
    assert im.mode == "RGB" and im.size == (10, 6)
    assert im.getpixel((0, 0)) == (255, 255, 255)  # transparent → white, not black
    gradient(10, 6).convert("L").save(tmp_path / "g.png")
    resized = load_image(str(tmp_path / "g.png"), size=(5, 8))
    assert resized.mode == "RGB" and resized.size == (5, 8)


def test_load_image_applies_exif_orientation(tmp_path: Path) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    gradient(10, 4).save(tmp_path / "phone.jpg", exif=exif)
    assert load_image(tmp_path / "phone.jpg").size == (4, 10)


def test_load_image_errors(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"^cannot read image .*missing\.png: no such file"):
        load_image(tmp_path / "missing.png")
    with pytest.raises(UserError, match="it is a folder"):
        load_image(tmp_path)
    (tmp_path / "notes.png").write_text("not really a png")
    with pytest.raises(UserError, match=r"^cannot read image .*notes\.png: not an image file \("):
        load_image(tmp_path / "notes.png")
    good = tmp_path / "good.png"
    noise = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    Image.fromarray(noise).save(good)  # incompressible, so 200 bytes is a real truncation
    (tmp_path / "cut.png").write_bytes(good.read_bytes()[:200])
    with pytest.raises(UserError, match="damaged or truncated"):
        load_image(tmp_path / "cut.png")


def test_load_image_refuses_decompression_bombs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    gradient(40, 40).save(tmp_path / "big.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 500)  # 1600 px > 2x limit: Pillow raises
    with pytest.raises(UserError, match="decompression bomb"):
        load_image(tmp_path / "big.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # between 1x and 2x: Pillow only warns
    with pytest.warns(Image.DecompressionBombWarning), pytest.raises(UserError, match="decompression bomb"):
        load_image(tmp_path / "big.png")


def test_error_messages_are_one_line(tmp_path: Path) -> None:
    (tmp_path / "x.png").write_text("a\nb")
    for call in (lambda: load_image(tmp_path / "x.png"), lambda: read_png_metadata(tmp_path / "x.png")):
        with pytest.raises(UserError) as info:
            call()
        assert "\n" not in str(info.value)


# ------------------------------------------------------------------------------- video


def test_mp4_has_every_frame_and_even_size(tmp_path: Path) -> None:
    path = tmp_path / "progress.mp4"
    with VideoWriter(path, fps=10) as video:
        for i in range(5):
            video.append(gradient(33, 21, shift=i))
    assert video.frames == 5
    frames = iio.imread(path, plugin="FFMPEG", index=None)
    assert frames.shape == (5, 22, 34, 3)  # odd sizes padded by one row/column
    assert iio.immeta(path, plugin="FFMPEG")["fps"] == 10
    # lossy, but close to the source (crf 18)
    assert np.abs(frames[2, :21, :33].astype(int) - np.asarray(gradient(33, 21, 2), int)).mean() < 12
    assert leftovers(tmp_path) == ["progress.mp4"]


def test_gif_has_every_frame(tmp_path: Path) -> None:
    path = tmp_path / "progress.gif"
    with VideoWriter(path, fps=20) as video:
        for i in range(4):
            video.append(gradient(15, 9, shift=i).convert("RGBA"))
    frames = iio.imread(path, index=None)
    assert frames.shape[:3] == (4, 9, 15)
    assert leftovers(tmp_path) == ["progress.gif"]


@pytest.mark.parametrize("suffix", [".mp4", ".gif"])
def test_video_failure_leaves_nothing(tmp_path: Path, suffix: str) -> None:
    with pytest.raises(KeyboardInterrupt):
        with VideoWriter(tmp_path / f"v{suffix}") as video:
            video.append(gradient(8, 8))
            video.append(gradient(8, 8, 1))
            raise KeyboardInterrupt
    assert leftovers(tmp_path) == []


def test_video_frames_must_match_in_size(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="differs"):
        with VideoWriter(tmp_path / "v.mp4") as video:
            video.append(gradient(8, 8))
            video.append(gradient(10, 8))
    assert leftovers(tmp_path) == []


def test_video_without_frames_writes_nothing(tmp_path: Path) -> None:
    with VideoWriter(tmp_path / "v.mp4") as video:
        pass
    assert video.close() is None and leftovers(tmp_path) == []


@pytest.mark.skipif(os.name != "posix", reason="fake ffmpeg is a script")
def test_failing_ffmpeg_is_reported_and_cleaned_up(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import imageio_ffmpeg

    # An "ffmpeg" that complains about the disk and exits 1, as the real one does on ENOSPC.
    fake = tmp_path / "bin" / "ffmpeg"
    fake.parent.mkdir()
    fake.write_text(
        f"#!{sys.executable}\nimport sys\nsys.stdin.buffer.read()\n"
        "sys.stderr.write('Error writing trailer: No space left on device\\n')\nsys.exit(1)\n"
    )
    fake.chmod(0o755)
    monkeypatch.setattr(imageio_ffmpeg, "get_ffmpeg_exe", lambda: str(fake))
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(UserError, match="^no space left on the device while saving"):
        with VideoWriter(out / "v.mp4") as video:
            video.append(gradient(8, 8))
    assert leftovers(out) == []


def test_video_refuses_unknown_suffix_and_existing_file(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"\.mp4 or \.gif"):
        VideoWriter(tmp_path / "v.avi")
    (tmp_path / "v.gif").write_bytes(b"old")
    with pytest.raises(OutputExistsError):
        VideoWriter(tmp_path / "v.gif")
    with VideoWriter(tmp_path / "v.gif", overwrite=True) as video:
        video.append(gradient(4, 4))
    assert (tmp_path / "v.gif").read_bytes()[:6] == b"GIF89a"
