"""BigGAN (Big Sleep) generator on a tiny BigGAN-deep written in the published on-disk format."""

from __future__ import annotations

import json
import sys

import pytest
import torch

# pytorch_pretrained_biggan's __init__ imports scipy without declaring it; skip (visibly) without it.
biggan_pkg = pytest.importorskip("pytorch_pretrained_biggan", reason="needs pytorch-pretrained-biggan and scipy")

from clipguide.errors import MissingWeightsError, UserError  # noqa: E402
from clipguide.generators.base import Generator  # noqa: E402
from clipguide.generators.biggan import BigGANGenerator, imagenet_classes  # noqa: E402
from clipguide.generators.biggan_files import KIND, load_biggan, looks_like_biggan  # noqa: E402
from clipguide.settings import Settings  # noqa: E402

RES = 32
TINY = dict(
    output_dim=RES, z_dim=8, class_embed_dim=8, channel_width=4, num_classes=1000,
    # channels x16 -> x1 halving four times (the package needs that), three up-samplings: 4 -> 32 px.
    layers=[[True, 16, 8], [True, 8, 4], [False, 4, 2], [True, 2, 1]],
    attention_layer_position=2, eps=1e-4, n_stats=51,
)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """config.json + pytorch_model.bin of a randomly initialised tiny model, fixed seed."""
    path = tmp_path_factory.mktemp("biggan")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = biggan_pkg.BigGAN(biggan_pkg.BigGANConfig(**TINY))
    g = model.generator
    with torch.no_grad():
        g.bn.weight.fill_(1.0)  # the package leaves these uninitialised (torch.Tensor(n))
        g.bn.bias.fill_(0.0)
        g.layers[2].gamma.fill_(0.5)  # make the self-attention layer matter
        model.embeddings.weight.mul_(30)  # classes should visibly change the tiny model's image
    _calibrate_batch_norms(model)
    (path / "config.json").write_text(json.dumps(TINY))
    torch.save(model.state_dict(), path / "pytorch_model.bin")
    return path


def _calibrate_batch_norms(model) -> None:
    """Give every batch norm the statistics of real activations (as trained checkpoints have),
    so the random tiny model's image is not saturated at 0/1 where no gradient flows."""

    def set_stats(module, args):
        x = args[0]
        with torch.no_grad():
            module.running_means.copy_(x.mean(dim=(0, 2, 3)).expand_as(module.running_means))
            module.running_vars.copy_(x.var(dim=(0, 2, 3)).expand_as(module.running_vars))

    norms = [m for m in model.modules() if isinstance(m, biggan_pkg.model.BigGANBatchNorm)]
    hooks = [m.register_forward_pre_hook(set_stats) for m in norms]
    gen = torch.Generator().manual_seed(1)
    z = torch.randn(16, TINY["z_dim"], generator=gen)
    classes = torch.nn.functional.one_hot(torch.randint(0, 1000, (16,), generator=gen), 1000).float()
    with torch.no_grad():
        model(z, classes, 1.0)
    for h in hooks:
        h.remove()


def make(folder, **knobs) -> BigGANGenerator:
    return load_biggan(folder, "cpu", **knobs)


def seeds(*values: int) -> list[torch.Generator]:
    return [torch.Generator().manual_seed(v) for v in values]


def red_loss(image: torch.Tensor) -> torch.Tensor:
    target = torch.tensor([1.0, 0.0, 0.0])
    return ((image.mean(dim=(2, 3)) - target) ** 2).sum(dim=1)


def steps(gen: BigGANGenerator, latent, n: int, lr: float = 0.07) -> list[float]:
    """A minimal stand-in for the engine: Adam on the non-underscore keys, project_ after each step."""
    params = [v.requires_grad_() for k, v in latent.items() if not k.startswith("_")]
    opt = torch.optim.Adam(params, lr=lr)
    losses = []
    for _ in range(n):
        target_loss = red_loss(gen.decode(latent)).sum()
        losses.append(target_loss.item())
        loss = target_loss + gen.regularizer(latent).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
        gen.project_(latent)
    with torch.no_grad():
        losses.append(red_loss(gen.decode(latent)).sum().item())
    return losses


def test_load_shapes_and_range(folder):
    assert looks_like_biggan(folder)
    gen = make(folder)
    assert isinstance(gen, Generator)
    assert gen.fixed_size == (RES, RES) and gen.size_multiple == RES and gen.default_lr == 0.07
    assert not gen.model.training and not any(p.requires_grad for p in gen.model.parameters())
    latent = gen.init_latent((RES, RES), seeds(1, 2))
    assert latent["noise"].shape == (2, len(TINY["layers"]) + 1, TINY["z_dim"])
    assert latent["class_logits"].shape == (2, 1000)
    assert latent["_ema_noise"].shape == latent["noise"].shape
    # Big Sleep's start: unit noise, logits around -3.9 (so sigmoid starts sparse).
    assert abs(latent["class_logits"].mean().item() + 3.9) < 0.05
    image = gen.decode(latent)
    assert image.shape == (2, 3, RES, RES)
    assert image.min() >= 0 and image.max() <= 1 and image.std() > 0.01


def test_gradient_reaches_every_stage_and_the_classes(folder):
    gen = make(folder)
    latent = gen.init_latent((RES, RES), seeds(0))
    for key in ("noise", "class_logits"):
        latent[key].requires_grad_()
    red_loss(gen.decode(latent)).sum().backward()
    per_stage = latent["noise"].grad.abs().sum(dim=(0, 2))
    assert (per_stage > 0).all()  # each stage really gets its own noise vector
    assert latent["class_logits"].grad.abs().sum() > 0


def test_adam_steps_lower_a_simple_loss(folder):
    gen = make(folder)
    losses = steps(gen, gen.init_latent((RES, RES), seeds(3)), 8)
    assert losses[-1] < 0.9 * losses[0]


def test_seeds_reproducible_and_rows_independent_of_batch(folder):
    gen = make(folder)
    alone = gen.init_latent((RES, RES), seeds(7))
    batch = gen.init_latent((RES, RES), seeds(4, 7))
    again = gen.init_latent((RES, RES), seeds(4, 7))
    for key in alone:
        torch.testing.assert_close(batch[key][1:], alone[key])
        torch.testing.assert_close(batch[key], again[key])
    assert not torch.equal(batch["noise"][0], batch["noise"][1])
    torch.testing.assert_close(gen.decode(batch)[1:], gen.decode(alone), atol=1e-5, rtol=1e-5)


def test_global_rng_untouched(folder):
    state = torch.random.get_rng_state()
    gen = make(folder)
    gen.init_latent((RES, RES), seeds(0))
    assert torch.equal(state, torch.random.get_rng_state())


def test_classes_restriction_zeroes_the_rest(folder):
    allowed = ("volcano", "Goldfish")
    names = imagenet_classes()
    keep = [names.index("volcano"), names.index("goldfish")]
    for max_classes in (None, 1, 5):  # 5 > allowed: capped at the allowed count, no NaN
        gen = make(folder, classes=allowed, max_classes=max_classes)
        latent = gen.init_latent((RES, RES), seeds(0, 1))
        probs = gen.class_probs(latent["class_logits"])
        outside = torch.ones(1000, dtype=torch.bool)
        outside[keep] = False
        assert torch.isfinite(probs).all()
        assert (probs[:, outside] == 0).all() and (probs[:, keep] > 0).any()
        assert torch.isfinite(gen.regularizer(latent)).all()


def test_soft_top_k_keeps_at_most_k_classes(folder):
    gen = make(folder, max_classes=3)
    latent = gen.init_latent((RES, RES), seeds(0, 1))
    latent["class_logits"].requires_grad_()
    probs = gen.class_probs(latent["class_logits"])
    assert ((probs > 0).sum(dim=1) <= 3).all() and (probs.sum(dim=1) > 0).all()
    probs.sum().backward()
    assert latent["class_logits"].grad.abs().sum() > 0
    top = gen.top_classes(latent, k=2)
    assert len(top) == 2 and all(isinstance(name, str) for name, _ in top[0])


def test_ema_output_lags_and_equals_live_without_decay(folder):
    gen = make(folder, ema_decay=0.9)
    latent = gen.init_latent((RES, RES), seeds(5))
    torch.testing.assert_close(gen.output(latent), gen.decode(latent).detach())  # EMA starts at the start
    steps(gen, latent, 4)
    assert not torch.allclose(gen.output(latent), gen.decode(latent).detach(), atol=1e-4)

    gen0 = make(folder, ema_decay=0.0)
    latent0 = gen0.init_latent((RES, RES), seeds(5))
    steps(gen0, latent0, 4)
    torch.testing.assert_close(gen0.output(latent0), gen0.decode(latent0).detach())


def test_ema_is_bias_corrected(folder):
    """Big Sleep's EMA: weights d(1-d) on the start and (1-d) on step 1, divided by 1 - d**2."""
    gen = make(folder, ema_decay=0.5)
    latent = gen.init_latent((RES, RES), seeds(0))
    start = latent["noise"].clone()
    latent["noise"] += 1.0
    gen.project_(latent)
    # biased = 0.5 * (0.5 * x0) + 0.5 * x1 ; corrected by 1 - 0.25
    expected = (0.25 * start + 0.5 * (start + 1.0)) / 0.75
    torch.testing.assert_close(latent["_ema_noise"], expected)


def test_truncation_clamps_noise(folder):
    gen = KIND.from_path(folder, "cpu", KIND.options_from(Settings(truncation=0.5, ema_decay=0.0)))
    assert gen.truncation == 0.5
    latent = gen.init_latent((RES, RES), seeds(0))
    latent["noise"] *= 10
    gen.project_(latent)
    assert latent["noise"].abs().max() <= 2.0
    assert gen.decode(latent).shape == (1, 3, RES, RES)
    with pytest.raises(UserError, match="truncation"):
        make(folder, truncation=1.5)


def test_regularizer_shape_and_sign(folder):
    gen = make(folder)
    latent = gen.init_latent((RES, RES), seeds(0, 1, 2))
    latent["noise"].requires_grad_()
    reg = gen.regularizer(latent)
    assert reg.shape == (3,) and (reg >= 0).all() and reg.sum() > 0
    reg.sum().backward()
    assert latent["noise"].grad.abs().sum() > 0
    assert (make(folder, latent_loss_weight=0, class_loss_weight=0).regularizer(latent) == 0).all()


def test_user_errors(folder):
    gen = make(folder)
    with pytest.raises(UserError, match="32x32"):
        gen.init_latent((64, 64), seeds(0))
    with pytest.raises(UserError, match="VQGAN"):
        gen.encode(torch.zeros(1, 3, RES, RES))
    with pytest.raises(UserError, match="did you mean 'volcano'"):
        make(folder, classes=("volcanoe",))


def test_file_forms_and_missing_files(folder, tmp_path):
    a = make(folder)
    b = load_biggan([folder / "pytorch_model.bin", folder / "config.json"], "cpu")
    c = load_biggan(folder / "pytorch_model.bin", "cpu")
    latent = a.init_latent((RES, RES), seeds(0))
    for other in (b, c):
        torch.testing.assert_close(a.decode(latent), other.decode(latent))
    (tmp_path / "config.json").write_text(json.dumps(TINY))
    with pytest.raises(MissingWeightsError, match=str(tmp_path / "pytorch_model.bin")):
        load_biggan(tmp_path, "cpu")
    with pytest.raises(MissingWeightsError, match=str(tmp_path / "nowhere" / "config.json")):
        load_biggan(tmp_path / "nowhere", "cpu")


class _Payload:
    pass


def test_refuses_pickled_objects_and_mismatched_configs(folder, tmp_path):
    (tmp_path / "config.json").write_text(json.dumps(TINY))
    torch.save({"x": _Payload()}, tmp_path / "pytorch_model.bin")
    with pytest.raises(UserError, match="plain state dict"):
        load_biggan(tmp_path, "cpu")
    (tmp_path / "config.json").write_text(json.dumps({**TINY, "z_dim": 16}))
    (tmp_path / "pytorch_model.bin").write_bytes((folder / "pytorch_model.bin").read_bytes())
    with pytest.raises(UserError, match="does not fit"):
        load_biggan(tmp_path, "cpu")
    (tmp_path / "config.json").write_text(json.dumps({**TINY, "output_dim": 128}))
    with pytest.raises(UserError, match="output_dim"):
        load_biggan(tmp_path, "cpu")


@pytest.mark.parametrize("layers, fragment", [
    ([[True, 8, 4], [True, 4, 2], [False, 2, 1]], r"layers\[0\] takes 8 x channel_width channels but gets 16"),
    ([[True, 16, 8], [True, 4, 2], [False, 2, 1]], r"layers\[1\] takes 4 x channel_width channels but gets 8"),
    ([[True, 16, 8], [True, 8, 4], [False, 4, 2]], r"the last of 'layers' makes 2 x channel_width"),
])
def test_a_config_whose_channels_do_not_add_up_is_a_one_line_error(folder, tmp_path, layers, fragment):
    """The package assumes the first block takes 16 x channel_width channels and each block takes what the
    one before made; a config that breaks that names the field instead of failing deep inside torch."""
    (tmp_path / "config.json").write_text(json.dumps({**TINY, "layers": layers}))
    (tmp_path / "pytorch_model.bin").write_bytes((folder / "pytorch_model.bin").read_bytes())
    with pytest.raises(UserError, match=fragment) as caught:
        load_biggan(tmp_path, "cpu")
    assert "\n" not in str(caught.value)


def test_missing_package_is_a_user_error(folder, monkeypatch):
    monkeypatch.setitem(sys.modules, "pytorch_pretrained_biggan", None)
    with pytest.raises(UserError, match="pip install pytorch-pretrained-biggan"):
        make(folder)


def test_imagenet_names():
    names = imagenet_classes()
    assert len(names) == 1000 and names[0] == "tench" and names[980] == "volcano"


def test_cli_end_to_end_big_sleep_mode(folder, tiny_clip_dir, tmp_path, capsys):
    """The generator is just another protocol implementation: seeds batch, metadata and `again` work unchanged."""
    from PIL import Image

    from clipguide.cli import main
    from clipguide.output import read_record

    flags = ["--generator", str(folder), "--clip", str(tiny_clip_dir), "--steps", "2", "--cutn", "2",
             "--classes", "volcano,lighthouse", "--max-classes", "1", "--quiet"]
    assert main(["a pyramid made of ice", *flags, "--seeds", "2", "--out", str(tmp_path / "batch")]) == 0
    assert main(["a pyramid made of ice", *flags, "--seed", "1", "--out", str(tmp_path / "single")]) == 0
    batch = Image.open(tmp_path / "batch" / "a-pyramid-made-of-ice-1.png")
    single = Image.open(tmp_path / "single" / "a-pyramid-made-of-ice-1.png")
    assert batch.size == (RES, RES)
    diff = torch.tensor(list(batch.getdata())) - torch.tensor(list(single.getdata()))
    assert diff.abs().max() <= 2  # equal up to float rounding of the 8-bit pixels
    meta = read_record(tmp_path / "single" / "a-pyramid-made-of-ice-1.png").settings
    assert meta["classes"] == ["volcano", "lighthouse"] and meta["max_classes"] == 1
    assert main(["again", str(tmp_path / "single" / "a-pyramid-made-of-ice-1.png"), "--out", str(tmp_path / "again"),
                 "--quiet"]) == 0
    assert (tmp_path / "again" / "a-pyramid-made-of-ice-1.png").read_bytes() == \
        (tmp_path / "single" / "a-pyramid-made-of-ice-1.png").read_bytes()
    capsys.readouterr()
    assert main(["a cat", *flags, "--size", "64", "64", "--out", str(tmp_path / "bad")]) == 2
    assert f"only makes {RES}x{RES}" in capsys.readouterr().err
    assert main(["a cat", *flags, "--init", "mean", "--out", str(tmp_path / "bad-init")]) == 2
    assert "init 'mean' needs a VQGAN" in capsys.readouterr().err
    assert not list((tmp_path / "bad-init").glob("*.png"))
