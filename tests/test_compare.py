"""The style comparison with a fake generator and a fake CLIP (no models, a few ms per run)."""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass, field

import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from clipguide import compare, figures, presets
from clipguide.errors import UserError
from clipguide.output import read_png_metadata, read_record
from clipguide.presets import apply_style
from clipguide.settings import Settings

W, H = 16, 12


@dataclass
class FakeResult:
    images: torch.Tensor
    seeds: list[int]
    settings: Settings
    resolved: Settings


class FakePerceptor:
    """Embeds an image by its 4×4 average-pooled pixels, a text by a hash-seeded random vector."""

    def embed_images(self, images: torch.Tensor) -> torch.Tensor:
        assert images.shape[1:] == (3, H, W) and 0 <= float(images.min()) and float(images.max()) <= 1
        return F.normalize(F.adaptive_avg_pool2d(images - 0.5, 4).flatten(1), dim=-1)

    def embed_texts(self, texts: list[str]) -> torch.Tensor:
        gens = [torch.Generator().manual_seed(zlib.crc32(t.encode())) for t in texts]
        return F.normalize(torch.stack([torch.randn(48, generator=g) for g in gens]), dim=-1)


@dataclass
class FakeSession:
    calls: list[Settings] = field(default_factory=list)
    perceptor_specs: list[tuple[str, ...]] = field(default_factory=list)

    def perceptor(self, specs: tuple[str, ...]) -> FakePerceptor:
        self.perceptor_specs.append(specs)
        return FakePerceptor()

    def generate(self, settings: Settings, callback=None, explicit=frozenset(), session=None, style_dirs=()):
        """Deterministic per (resolved prompt, seed); styled images are less varied than plain ones."""
        assert session is self
        self.calls.append(settings)
        resolved = apply_style(settings, explicit=explicit, extra_dirs=style_dirs)
        styled = resolved.prompt != settings.prompt
        base = torch.Generator().manual_seed(zlib.crc32(resolved.prompt.encode()))
        colour = torch.rand(3, 1, 1, generator=base)
        images = []
        for seed in settings.seed_list():
            g = torch.Generator().manual_seed(seed)
            noise = torch.rand(3, H, W, generator=g) - 0.5
            images.append((colour + noise * (0.3 if styled else 0.9)).clamp(0, 1))
        return FakeResult(torch.stack(images), settings.seed_list(), settings, resolved)


@pytest.fixture(autouse=True)
def _no_user_presets(monkeypatch):
    monkeypatch.delenv(presets.ENV_VAR, raising=False)


def base(**kw) -> Settings:
    return Settings(prompt="a lighthouse:1.5 | blurry:-1", seed=10, seeds=4, steps=3, **kw)


def run(tmp_path, session, styles=("baroque", "cyberpunk"), settings=None, **kw) -> compare.Report:
    kw.setdefault("eval_clip", None)
    kw.setdefault("n_boot", 100)
    return compare.run_compare(settings or base(), list(styles), out_dir=tmp_path / "out", session=session,
                               generate=session.generate, **kw)


def test_same_seeds_for_every_style_and_none_is_added(tmp_path):
    session = FakeSession()
    messages = []
    report = run(tmp_path, session, progress=messages.append)
    assert report.styles == ["none", "baroque", "cyberpunk"] and report.none_added
    assert [c.style for c in session.calls] == ["none", "baroque", "cyberpunk"]
    assert {tuple(c.seed_list()) for c in session.calls} == {(10, 11, 12, 13)}
    assert all(c.prompt == "a lighthouse:1.5 | blurry:-1" for c in session.calls)
    assert report.results[1].resolved_prompt == "a lighthouse, baroque painting:1.5 | blurry:-1"
    assert report.eval_texts == ["a lighthouse"]
    assert any("none" in m for m in messages)
    for r in report.results:
        assert [p.name for p in r.images] == [f"seed-{s}.png" for s in (10, 11, 12, 13)]
        assert r.images[0].parent == tmp_path / "out" / "images" / compare.slugify(r.style)


def test_none_is_the_reference(tmp_path):
    report = run(tmp_path, FakeSession(), styles=("none", "baroque"))
    assert not report.none_added and report.styles == ["none", "baroque"]
    none, baroque = report.results
    assert (none.metrics["vendi_ratio"].value, none.metrics["vendi_ratio"].low, none.metrics["vendi_ratio"].high) \
        == (1.0, 1.0, 1.0)
    assert none.metrics["style_shift"].value == pytest.approx(0.0, abs=1e-12)
    # The fake style shrinks the noise: less diverse than none, and moved away from it.
    assert baroque.metrics["vendi_ratio"].value < 1.0
    assert baroque.metrics["style_shift"].value > 0.0
    for r in report.results:
        for m in r.metrics.values():
            assert m.low <= m.value + 1e-9 and m.value <= m.high + 1e-9
        assert 1.0 <= r.metrics["vendi"].value <= 4.0
        assert len(r.clip_scores) == 4 and all(0.0 <= s <= 100.0 for s in r.clip_scores)


def test_second_run_loads_images_and_gives_the_same_numbers(tmp_path):
    first = run(tmp_path, FakeSession())
    again = FakeSession()
    second = run(tmp_path, again)
    assert again.calls == [] and second.generated == 0 and second.loaded == 12
    assert all(r.cached for r in second.results)
    a = json.loads((tmp_path / "out" / "report.json").read_text())
    assert [r["metrics"] for r in a["results"]] == [
        {k: e.to_dict() for k, e in r.metrics.items()} for r in first.results]
    # A style added later is the only one generated.
    third = FakeSession()
    run(tmp_path, third, styles=("baroque", "cyberpunk", "synthwave"))
    assert [c.style for c in third.calls] == ["synthwave"]


def test_an_interrupted_style_is_generated_again(tmp_path):
    run(tmp_path, FakeSession())
    (tmp_path / "out" / "images" / "cyberpunk" / "seed-12.png").unlink()
    session = FakeSession()
    run(tmp_path, session)
    assert [c.style for c in session.calls] == ["cyberpunk"]


def test_different_settings_in_the_same_folder_is_an_error(tmp_path):
    run(tmp_path, FakeSession())
    session = FakeSession()
    with pytest.raises(UserError, match=r"steps.*choose a new --out or delete the folder"):
        run(tmp_path, session, settings=base().replace(steps=4))
    assert session.calls == []
    # The device is not part of the images' identity: resuming elsewhere is fine.
    run(tmp_path, FakeSession(), settings=base().replace(device="cpu"))


def test_a_changed_preset_is_an_error(tmp_path):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "x.toml").write_text('name = "mine"\nsuffix = ", one"\n')
    run(tmp_path, FakeSession(), styles=("mine",), style_dirs=[folder])
    (folder / "x.toml").write_text('name = "mine"\nsuffix = ", two"\n')
    with pytest.raises(UserError, match="choose a new --out or delete the folder"):
        run(tmp_path, FakeSession(), styles=("mine",), style_dirs=[folder])


def test_files_written(tmp_path):
    report = run(tmp_path, FakeSession())
    out = tmp_path / "out"
    with Image.open(out / "grid.png") as grid:
        tile_h = figures.GRID_TILE * H // W
        assert grid.size == (figures.GRID_LABEL_WIDTH + 4 * figures.GRID_TILE, figures.GRID_HEADER_HEIGHT + 3 * tile_h)
    with Image.open(out / "alignment_vs_diversity.png") as plot:
        assert plot.format == "PNG" and plot.width > 100
    record = read_record(report.results[0].images[0])
    assert record.kind == "compare" and record.source["style"] == "none"
    assert record.settings["seed"] == 10 and record.settings["seeds"] == 1 and record.settings["steps"] == 3
    data = json.loads((out / "report.json").read_text())
    for key in ("prompts", "styles", "seeds", "eval_model", "eval_model_same_as_guide", "settings", "results",
                "none_added", "bootstrap"):
        assert key in data
    assert data["eval_model_same_as_guide"] is True and data["eval_model"] == "ViT-B-32/openai"
    assert set(data["results"][0]["metrics"]) == set(compare.METRIC_NAMES)
    assert data["results"][0]["images"][0] == "images/none/seed-10.png"
    md = (out / "report.md").read_text()
    rows = [line for line in md.splitlines() if line.startswith("| ") and not line.startswith("| Style")]
    assert [r.split("|")[1].strip() for r in rows] == ["none", "baroque", "cyberpunk"]
    assert "How to read this" in md and "same number of seeds" in md
    assert not list(out.glob("**/*.tmp"))


def test_a_separate_eval_model_is_used_and_labelled(tmp_path):
    session = FakeSession()
    report = run(tmp_path, session, eval_clip="ViT-L-14/openai")
    assert session.perceptor_specs == [("ViT-L-14/openai",)]
    assert report.eval_model == "ViT-L-14/openai" and not report.eval_model_same_as_guide
    same = run(tmp_path, FakeSession(), eval_clip="ViT-B-32/openai")
    assert same.eval_model_same_as_guide


def test_several_prompts_give_per_prompt_rows_and_a_mean(tmp_path):
    session = FakeSession()
    report = run(tmp_path, session, styles=("baroque",), prompts=["a lighthouse", "a red fox | snow:0.5"])
    assert [(r.prompt_index, r.style) for r in report.results] == [(0, "none"), (0, "baroque"),
                                                                   (1, "none"), (1, "baroque")]
    assert report.eval_texts == ["a lighthouse", "a red fox, snow"]
    assert report.results[2].images[0].parent.parent.name == "p2-a-red-fox-snow"
    mean = report.mean_over_prompts["baroque"]["vendi"].value
    assert mean == pytest.approx((report.results[1].metrics["vendi"].value
                                  + report.results[3].metrics["vendi"].value) / 2)
    assert report.mean_over_prompts["none"]["vendi_ratio"].value == 1.0
    md = (tmp_path / "out" / "report.md").read_text()
    assert "## Prompt 2: a red fox | snow:0.5" in md and "## Mean over the 2 prompts" in md
    with Image.open(tmp_path / "out" / "grid.png") as grid:
        assert grid.height == figures.GRID_HEADER_HEIGHT + 4 * (figures.GRID_TILE * H // W)


def test_user_mistakes_are_caught_before_generating(tmp_path):
    session = FakeSession()
    with pytest.raises(UserError, match="did you mean 'baroque'"):
        run(tmp_path, session, styles=("baroque", "barokue"))
    with pytest.raises(UserError, match="at least 2 seeds"):
        run(tmp_path, session, settings=base().replace(seeds=1))
    with pytest.raises(UserError, match="text prompt"):
        run(tmp_path, session, settings=base().replace(prompt="ugly:-1"))
    assert session.calls == []


def test_duplicate_style_spellings_run_once(tmp_path):
    session = FakeSession()
    report = run(tmp_path, session, styles=("Unreal Engine", "unreal_engine", "none"))
    assert report.styles == ["Unreal Engine", "none"] and not report.none_added
    assert len(session.calls) == 2


def test_grid_scales_images_to_the_tile_width():
    big = [Image.new("RGB", (400, 200), "red")] * 2
    grid = compare.make_grid([("a", big), ("b", big)], [0, 1])
    assert grid.size == (figures.GRID_LABEL_WIDTH + 2 * figures.GRID_TILE,
                         figures.GRID_HEADER_HEIGHT + 2 * figures.GRID_TILE // 2)


def test_a_changed_prompt_in_the_same_folder_is_named(tmp_path):
    run(tmp_path, FakeSession())
    with pytest.raises(UserError, match="different prompt"):
        run(tmp_path, FakeSession(), settings=base().replace(prompt="a windmill"))


def test_explicit_settings_beat_style_overrides(tmp_path):
    session = FakeSession()
    report = run(tmp_path, session, styles=("pixel art",), settings=base(cut_pow=1.2),
                 explicit=frozenset({"cut_pow"}))
    assert read_record(report.results[1].images[0]).settings["cut_pow"] == 1.2
    plain = run(tmp_path / "other", FakeSession(), styles=("pixel art",))
    record = json.loads(read_png_metadata(plain.results[1].images[0])["clipguide"])
    assert record["settings"]["cut_pow"] == 1.0 and record["resolved"]["cut_pow"] == 0.7


def test_compare_command_end_to_end_with_tiny_models(tmp_path, tiny_clip_dir, capsys):
    """`clipguide compare` through the real API and models; a second run reuses every image."""
    import json as _json

    from clipguide.cli import main
    from tiny_models import write_tiny_vqgan_safetensors

    vqgan = write_tiny_vqgan_safetensors(tmp_path / "vq.safetensors")
    argv = ["compare", "a sunset", "--styles", "none,baroque", "--seeds", "3", "--generator", str(vqgan),
            "--clip", str(tiny_clip_dir), "--size", "32", "32", "--steps", "2", "--cutn", "2", "--device", "cpu",
            "--out", str(tmp_path / "cmp"), "--quiet"]
    assert main(argv) == 0
    assert "6 images made" in capsys.readouterr().out
    report = _json.loads((tmp_path / "cmp" / "report.json").read_text())
    assert "report.md" in [p.name for p in (tmp_path / "cmp").iterdir()]
    assert (tmp_path / "cmp" / "grid.png").is_file() and (tmp_path / "cmp" / "alignment_vs_diversity.png").is_file()
    assert report["eval_model_same_as_guide"] is True
    assert main(argv) == 0
    assert "0 images made, 6 reused" in capsys.readouterr().out


def test_again_reproduces_a_compare_image_byte_for_byte(tmp_path, tiny_clip_dir, capsys):
    """A compare image carries the settings record every clipguide PNG has: `again` re-runs it (in the
    batch it was made in) and writes the same bytes."""
    from clipguide.cli import main
    from tiny_models import write_tiny_vqgan_safetensors

    vqgan = write_tiny_vqgan_safetensors(tmp_path / "vq.safetensors")
    assert main(["compare", "a sunset", "--styles", "pixel art", "--seeds", "3", "--generator", str(vqgan),
                 "--clip", str(tiny_clip_dir), "--size", "32", "32", "--steps", "3", "--cutn", "2", "--device", "cpu",
                 "--out", str(tmp_path / "cmp"), "--quiet"]) == 0
    image = tmp_path / "cmp" / "images" / "pixel-art" / "seed-1.png"
    record = read_record(image)
    assert record.kind == "compare" and record.settings["style"] == "pixel art" and record.settings["seed"] == 1
    capsys.readouterr()
    assert main(["again", str(image), "--out", str(tmp_path / "again"), "--quiet"]) == 0
    out, err = capsys.readouterr()
    again = tmp_path / "again" / "a-sunset-1.png"
    assert out.strip() == str(again) and "batch of 3 seeds" in err
    assert again.read_bytes() == image.read_bytes()
