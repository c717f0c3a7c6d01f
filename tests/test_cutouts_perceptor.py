import pytest
import torch

from clipguide.cutouts import Cutouts
from clipguide.errors import UserError
from clipguide.perceptor import load_clip


def _gens(seeds):
    return [torch.Generator().manual_seed(s) for s in seeds]


def test_cutouts_shape_range_and_gradient():
    images = torch.rand(2, 3, 48, 40, requires_grad=True)
    cut = Cutouts(cutn=5, cut_pow=1.0)(images, 16, _gens([0, 1]))
    assert cut.shape == (10, 3, 16, 16)
    cut.sum().backward()
    assert images.grad is not None and images.grad.abs().sum() > 0


def test_cutouts_of_image_k_do_not_depend_on_the_batch():
    torch.manual_seed(0)
    images = torch.rand(3, 3, 32, 32)
    cut = Cutouts(cutn=4)
    batch = cut(images, 16, _gens([10, 11, 12]))
    for k in range(3):
        alone = cut(images[k:k + 1], 16, _gens([10 + k]))
        assert torch.allclose(batch[4 * k:4 * (k + 1)], alone, atol=1e-6)


def test_cutouts_do_not_touch_global_rng():
    torch.manual_seed(123)
    expected = torch.rand(1)
    torch.manual_seed(123)
    Cutouts(cutn=2)(torch.rand(1, 3, 16, 16), 8, _gens([0]))
    torch.manual_seed(123)
    assert torch.equal(torch.rand(1), expected)


def test_cut_pow_favours_small_cutouts():
    small = Cutouts(cutn=400, cut_pow=4.0).boxes(200, 200, torch.Generator().manual_seed(0), 32)
    large = Cutouts(cutn=400, cut_pow=0.25).boxes(200, 200, torch.Generator().manual_seed(0), 32)
    assert (small[:, 2] - small[:, 0]).mean() < (large[:, 2] - large[:, 0]).mean()
    for boxes in (small, large):
        assert boxes.min() >= 0 and boxes[:, 2].max() <= 200 and boxes[:, 3].max() <= 200


def test_load_clip_from_local_folder_uses_its_preprocess_config(tiny_clip_dir):
    model = load_clip(str(tiny_clip_dir))
    assert model.input_size == 32
    assert torch.allclose(model.mean.flatten(), torch.tensor([0.48145466, 0.4578275, 0.40821073]))
    text = model.embed_texts(["a red circle", "a blue square"])
    assert text.shape == (2, 32) and torch.allclose(text.norm(dim=-1), torch.ones(2), atol=1e-5)
    image = model.embed_images(torch.rand(3, 3, 32, 32))
    assert image.shape == (3, 32)


@pytest.mark.parametrize("spec, fragment", [
    ("ViT-B-32", "NAME/PRETRAINED"),
    ("ViT-B-33/openai", "did you mean"),
    ("ViT-B-32/not-a-tag", "unknown pretrained tag"),
    ("ViT-B-32/missing/file.safetensors", "does not exist"),
])
def test_bad_clip_specs_are_user_errors(spec, fragment):
    with pytest.raises(UserError, match=fragment):
        load_clip(spec)


@pytest.mark.parametrize("spec", ["demo", "demo-wide"])
def test_missing_demo_clip_names_its_file(monkeypatch, tmp_path, spec):
    """The demo CLIPs are manifest entries with shipped files; a missing one is named, with the fix."""
    import shutil

    from clipguide import weights

    shipped = weights.manifest_path().parent
    copy = tmp_path / "weights"
    shutil.copytree(shipped, copy, ignore=shutil.ignore_patterns("*.safetensors", "logs"))
    monkeypatch.setattr(weights.manifest, "manifest_path", lambda: copy / "manifest.toml")
    with pytest.raises(UserError, match=f"the shipped {spec} config file is missing|the shipped {spec} weights "
                                        "file is missing") as caught:
        load_clip(spec)
    assert "reinstall clipguide" in str(caught.value) and "\n" not in str(caught.value)


def test_offline_missing_clip_weights_names_the_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    with pytest.raises(UserError, match="not in the Hugging Face cache"):
        load_clip("ViT-B-32/openai", offline=True)


def test_clipguide_offline_blocks_clip_downloads(monkeypatch, tmp_path):
    """CLIPGUIDE_OFFLINE=1 stops a CLIP download exactly as it stops a generator's (and says --demo works)."""
    import open_clip

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("CLIPGUIDE_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setattr(open_clip, "download_pretrained", lambda *a, **k: pytest.fail("tried to download"))
    with pytest.raises(UserError, match="offline mode is on.*--demo") as caught:
        load_clip("ViT-B-32/openai")
    assert "\n" not in str(caught.value)


def test_a_failed_download_says_the_demo_runs_offline(monkeypatch):
    import open_clip

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("CLIPGUIDE_OFFLINE", raising=False)

    def no_network(*args, **kwargs):
        raise OSError("Temporary failure in name resolution")

    monkeypatch.setattr(open_clip, "download_pretrained", no_network)
    with pytest.raises(UserError, match="could not download CLIP weights.*--demo"):
        load_clip("ViT-B-32/openai")
