"""VQGAN generator: loading both on-disk layouts, the VQGAN+CLIP latent recipe, size checks."""

from __future__ import annotations

import copy
import json

import pytest
import torch
import yaml

from clipguide.errors import UserError
from clipguide.generators import vqgan
from clipguide.generators.base import Generator
from clipguide.generators import vqgan_files
from clipguide.generators.vqgan import VQGANGenerator
from clipguide.generators.vqgan_files import cached_conversion_path, convert_to_safetensors, load_vqgan
from tiny_models import (
    INVERTIBLE_VQGAN_PARAMS,
    TINY_VQGAN_PARAMS,
    balanced_codes,
    invertible_vqgan_state_dict,
    tiny_vqgan_state_dict,
    write_taming_checkpoint,
    write_tiny_vqgan_safetensors,
)


@pytest.fixture(scope="module")
def tiny() -> VQGANGenerator:
    gen = VQGANGenerator.from_config({**TINY_VQGAN_PARAMS, "quantizer": "vq"})
    gen.load_state_dict(tiny_vqgan_state_dict(seed=0))
    return gen


def _latent(gen: VQGANGenerator, seeds=(0, 1), size=(32, 32)) -> dict[str, torch.Tensor]:
    return gen.init_latent(size, [torch.Generator().manual_seed(s) for s in seeds])


# --------------------------------------------------------------------------- loading

@pytest.mark.parametrize("gumbel", [False, True], ids=["vq", "gumbel"])
def test_all_layouts_load_to_the_same_model(tmp_path, gumbel):
    ckpt, yaml_path = write_taming_checkpoint(tmp_path / "taming", gumbel=gumbel, seed=3)
    from_ckpt = load_vqgan(ckpt, write_cache=False)
    converted = convert_to_safetensors(ckpt, yaml_path, tmp_path / "converted.safetensors")
    from_converted = load_vqgan(converted)
    from_written = load_vqgan(write_tiny_vqgan_safetensors(tmp_path / "w.safetensors", gumbel=gumbel, seed=3))

    assert from_ckpt.quantizer == ("gumbel" if gumbel else "vq")
    z = _latent(from_ckpt)
    ref = from_ckpt.decode(z)
    for other in (from_converted, from_written):
        assert torch.equal(other.decode(z), ref)
    book = "quantize.embed.weight" if gumbel else "quantize.embedding.weight"
    assert torch.equal(from_ckpt.codebook, tiny_vqgan_state_dict(gumbel=gumbel, seed=3)[book])


def test_loaded_model_is_frozen_and_follows_the_protocol(tmp_path):
    gen = load_vqgan(write_tiny_vqgan_safetensors(tmp_path / "m.safetensors"))
    assert isinstance(gen, Generator)
    assert (gen.size_multiple, gen.fixed_size, gen.default_lr) == (2, None, 0.1)
    assert not gen.training and not any(p.requires_grad for p in gen.parameters())


def test_converted_file_holds_taming_names_and_config(tmp_path):
    from clipguide.checkpoints import read_safetensors

    ckpt, yaml_path = write_taming_checkpoint(tmp_path, gumbel=True)
    tensors, meta = read_safetensors(convert_to_safetensors(ckpt, yaml_path, tmp_path / "out.safetensors"))
    assert meta["format"] == "clipguide-vqgan"
    config = json.loads(meta["config"])
    assert config == {**TINY_VQGAN_PARAMS, "quantizer": "gumbel"}
    assert set(tensors) == set(tiny_vqgan_state_dict(gumbel=True))  # no loss.*, same names
    assert "quantize.proj.weight" in tensors


def test_loss_keys_are_dropped_but_other_keys_are_strict(tmp_path):
    sd = tiny_vqgan_state_dict()
    extra = {**sd, "encoder.extra.weight": torch.zeros(1)}
    ckpt, _ = write_taming_checkpoint(tmp_path / "extra", state_dict=extra)
    with pytest.raises(UserError, match="unexpected encoder.extra.weight"):
        load_vqgan(ckpt, write_cache=False)

    missing = {k: v for k, v in sd.items() if k != "decoder.conv_out.bias"}
    ckpt, _ = write_taming_checkpoint(tmp_path / "missing", state_dict=missing)
    with pytest.raises(UserError, match="missing decoder.conv_out.bias"):
        load_vqgan(ckpt, write_cache=False)


def test_checkpoint_that_does_not_match_its_yaml(tmp_path):
    ckpt, yaml_path = write_taming_checkpoint(tmp_path)
    doc = yaml.safe_load(yaml_path.read_text())
    doc["model"]["params"]["n_embed"] = 64
    other = tmp_path / "other.yaml"
    other.write_text(yaml.safe_dump(doc))
    with pytest.raises(UserError, match="does not match its config .*other.yaml.*size mismatch"):
        load_vqgan(ckpt, other, write_cache=False)


def test_converted_copy_is_cached_and_reused(tmp_path, monkeypatch):
    ckpt, yaml_path = write_taming_checkpoint(tmp_path)
    first = load_vqgan(ckpt)
    assert cached_conversion_path(ckpt).is_file()

    def no_pickles(path, **kwargs):
        raise AssertionError(f"unpickled {path} although a converted copy exists")

    monkeypatch.setattr(vqgan_files, "load_state_dict", no_pickles)
    second = load_vqgan(ckpt)
    z = _latent(first, seeds=(4,))
    assert torch.equal(first.decode(z), second.decode(z))

    # A cache made for another architecture is not used: the YAML decides.
    doc = yaml.safe_load(yaml_path.read_text())
    doc["model"]["params"]["n_embed"] = 64
    yaml_path.write_text(yaml.safe_dump(doc))
    with pytest.raises(AssertionError, match="unpickled"):
        load_vqgan(ckpt)


def test_yaml_lookup_beside_the_checkpoint(tmp_path):
    ckpt, yaml_path = write_taming_checkpoint(tmp_path)
    renamed = ckpt.rename(tmp_path / "imagenet.ckpt")
    yaml_path.rename(tmp_path / "imagenet.yaml")
    assert load_vqgan(renamed, write_cache=False).n_embed == TINY_VQGAN_PARAMS["n_embed"]
    (tmp_path / "imagenet.yaml").unlink()
    with pytest.raises(UserError, match=r"expected .*imagenet\.yaml or .*model\.yaml"):
        load_vqgan(renamed)


def test_missing_checkpoint_and_other_suffixes(tmp_path):
    from clipguide.errors import MissingWeightsError

    with pytest.raises(MissingWeightsError, match="nope.ckpt not found"):
        load_vqgan(tmp_path / "nope.ckpt")
    ckpt, _ = write_taming_checkpoint(tmp_path)
    pth = ckpt.rename(tmp_path / "model.pth")  # a Lightning pickle under another suffix still loads
    assert load_vqgan(pth, write_cache=False).n_embed == TINY_VQGAN_PARAMS["n_embed"]


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda d: d["model"].__setitem__("target", "taming.models.cond_transformer.Net2NetTransformer"),
         "not supported"),
        (lambda d: d["model"]["params"].pop("embed_dim"), "lacks embed_dim"),
        (lambda d: d.pop("model"), "no model.params"),
    ],
    ids=["target", "missing-key", "no-model"],
)
def test_bad_yaml_is_a_user_error(tmp_path, change, message):
    ckpt, yaml_path = write_taming_checkpoint(tmp_path)
    doc = yaml.safe_load(yaml_path.read_text())
    change(doc)
    yaml_path.write_text(yaml.safe_dump(doc))
    with pytest.raises(UserError, match=message):
        load_vqgan(ckpt, write_cache=False)


def test_foreign_safetensors_is_a_user_error(tmp_path):
    from safetensors.torch import save_file

    path = tmp_path / "model.safetensors"
    save_file({"w": torch.zeros(2)}, str(path), metadata={"format": "pt"})
    with pytest.raises(UserError, match="not a clipguide VQGAN file"):
        load_vqgan(path)


# --------------------------------------------------------------------------- the latent recipe

def test_decode_shape_and_range(tiny):
    z = _latent(tiny, seeds=(0, 1), size=(48, 32))
    assert z["z"].shape == (2, 4, 16, 24)
    img = tiny.decode(z)
    assert img.shape == (2, 3, 32, 48)
    assert img.min() >= 0 and img.max() <= 1
    assert torch.equal(tiny.output(z), img) and not tiny.output(z).requires_grad
    assert torch.equal(tiny.regularizer(z), torch.zeros(2))


def test_decode_snaps_to_the_codebook_with_a_straight_through_gradient(tiny):
    z = _latent(tiny, seeds=(2,))["z"]
    nudged = (z + 0.01 * torch.randn(z.shape, generator=torch.Generator().manual_seed(0))).requires_grad_()
    img = tiny.decode({"z": nudged})
    assert torch.equal(img, tiny.decode({"z": z}))  # same codes -> same image
    (img * torch.linspace(-1, 1, img.numel()).view_as(img)).sum().backward()
    assert nudged.grad is not None and nudged.grad.abs().sum() > 0


def test_project_clamps_to_the_codebook_range(tiny):
    z = _latent(tiny, seeds=(0,))
    inside = z["z"].clone()
    z["z"] = z["z"] * 10
    tiny.project_(z)
    lo = tiny.codebook.min(0).values.view(1, -1, 1, 1)
    hi = tiny.codebook.max(0).values.view(1, -1, 1, 1)
    assert ((z["z"] >= lo) & (z["z"] <= hi)).all()
    assert torch.isclose(z["z"], lo).any() and torch.isclose(z["z"], hi).any()
    untouched = {"z": inside.clone()}
    tiny.project_(untouched)  # codebook rows are already in range
    assert torch.equal(untouched["z"], inside)


def test_init_latent_rows_depend_only_on_their_own_generator(tiny):
    batch = _latent(tiny, seeds=(7, 8, 9))["z"]
    for k in range(3):
        single = _latent(tiny, seeds=(7 + k,))["z"]
        assert torch.equal(batch[k], single[0])
    assert not torch.equal(batch[0], batch[1])
    # every position holds a codebook row
    flat = batch.movedim(1, -1).reshape(-1, tiny.embed_dim)
    assert torch.equal(tiny.codebook[tiny.nearest_codes(batch).reshape(-1)], flat)


def test_mean_start_is_the_codebook_mean_plus_per_seed_noise(tiny, monkeypatch):
    size = (32, 32)
    batch = tiny.init_latent(size, [torch.Generator().manual_seed(s) for s in (7, 8)], "mean")["z"]
    single = tiny.init_latent(size, [torch.Generator().manual_seed(8)], "mean")["z"]
    assert batch.shape == (2, tiny.embed_dim, 16, 16)
    assert torch.equal(batch[1], single[0]) and not torch.equal(batch[0], batch[1])
    per_dim = batch.movedim(1, -1).reshape(-1, tiny.embed_dim)
    assert torch.allclose(per_dim.std(0), tiny.codebook.std(0) * vqgan.MEAN_START_NOISE, rtol=0.25)
    monkeypatch.setattr(vqgan, "MEAN_START_NOISE", 0.0)
    still = tiny.init_latent(size, [torch.Generator().manual_seed(7)], "mean")["z"]
    assert torch.allclose(still, tiny.codebook.mean(0).view(1, -1, 1, 1).expand_as(still))
    with pytest.raises(UserError, match="unknown init 'centre'"):
        tiny.init_latent(size, [torch.Generator().manual_seed(7)], "centre")


def test_encode_inverts_decode_on_an_invertible_model():
    gen = VQGANGenerator.from_config(INVERTIBLE_VQGAN_PARAMS)
    gen.load_state_dict(invertible_vqgan_state_dict())
    g = torch.Generator().manual_seed(0)
    codes = torch.stack([balanced_codes(16, 16, g) for _ in range(2)])
    image = gen.decode({"z": gen.lookup(codes)})
    assert image.shape == (2, 3, 32, 32)
    assert torch.equal(gen.nearest_codes(gen.encode(image)["z"]), codes)


@pytest.mark.parametrize("quantizer", ["vq", "gumbel"])
def test_encode_returns_codebook_vectors(quantizer):
    gen = VQGANGenerator.from_config({**TINY_VQGAN_PARAMS, "quantizer": quantizer})
    gen.load_state_dict(tiny_vqgan_state_dict(gumbel=quantizer == "gumbel"))
    images = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    z = gen.encode(images)["z"]
    assert z.shape == (2, 4, 16, 16) and not z.requires_grad
    assert torch.equal(gen.lookup(gen.nearest_codes(z)), z)


# --------------------------------------------------------------------------- sizes

def test_check_size_names_the_fix():
    params = copy.deepcopy(TINY_VQGAN_PARAMS)
    params["ddconfig"]["ch_mult"] = [1, 1, 1, 1, 1]  # f = 16, like the ImageNet f16 models
    gen = VQGANGenerator.from_config(params)
    assert gen.size_multiple == 16
    with pytest.raises(UserError, match=r"^size 250x250 must be a multiple of 16 for this VQGAN; try 256x256$"):
        gen.check_size((250, 250))
    with pytest.raises(UserError, match="try 16x64"):
        gen.init_latent((4, 60), [torch.Generator()])
    gen.check_size((256, 128))


def test_gumbel_needs_matching_channels():
    params = copy.deepcopy(TINY_VQGAN_PARAMS)
    params["embed_dim"] = 8
    with pytest.raises(UserError, match="z_channels == embed_dim"):
        VQGANGenerator.from_config({**params, "quantizer": "gumbel"})
    with pytest.raises(UserError, match="unknown VQGAN quantizer"):
        VQGANGenerator.from_config({**params, "quantizer": "ema"})
