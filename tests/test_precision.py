"""Every precision and speed option runs on CPU and stays close to plain fp32 (no timed asserts)."""

import copy

import pytest
import torch

from clipguide import api, bench, engine
from clipguide.cutouts import Cutouts
from clipguide.generators.vqgan import VQGANGenerator
from clipguide.clip_speedups import BatchFirstSelfAttention, PatchEmbedConv, speed_up_vision_tower
from clipguide.settings import Settings
from tiny_models import write_tiny_vqgan_safetensors


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, tiny_clip_dir):
    vqgan = write_tiny_vqgan_safetensors(tmp_path_factory.mktemp("vq") / "tiny.safetensors")
    return Settings(prompt="a red circle", generator=str(vqgan), clip=(str(tiny_clip_dir),), size=(32, 32),
                    steps=4, cutn=4, seeds=2, device="cpu", augments=())


@pytest.fixture(scope="module")
def session():
    return api.Session("cpu")


@pytest.fixture(scope="module")
def fp32_reference(tiny, session):
    return _losses(tiny.replace(precision="fp32"), session)


def _losses(settings, session):
    curve = []
    result = api.generate(settings, lambda s: curve.append(s.losses), session=session)
    return torch.tensor(curve), result.images


def test_resolve_precision_names(monkeypatch):
    cpu = torch.device("cpu")
    assert api.resolve_precision("fp32", cpu) is None
    assert api.resolve_precision("bf16", cpu) is torch.bfloat16
    assert api.resolve_precision("fp16", cpu) is torch.float16
    from clipguide import session as sessions

    monkeypatch.setattr(sessions, "cpu_has_native_bf16", lambda: True)
    assert api.resolve_precision("auto", cpu) is torch.bfloat16
    monkeypatch.setattr(sessions, "cpu_has_native_bf16", lambda: False)
    assert api.resolve_precision("auto", cpu) is None
    assert api.resolve_precision("auto", torch.device("mps")) is None
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert api.resolve_precision("auto", torch.device("cuda")) is torch.float16


def test_fp32_reruns_are_byte_identical(tiny, session, fp32_reference):
    a, img_a = fp32_reference
    b, img_b = _losses(tiny.replace(precision="fp32"), session)
    assert torch.equal(a, b) and torch.equal(img_a, img_b)


@pytest.mark.parametrize("precision", ["auto", "bf16", "fp16"])
def test_every_precision_runs_and_stays_close_to_fp32(tiny, session, fp32_reference, precision):
    ref, ref_img = fp32_reference
    got, img = _losses(tiny.replace(precision=precision), session)
    assert torch.isfinite(got).all() and torch.isfinite(img).all()
    assert torch.allclose(got, ref, rtol=0.03, atol=0.01), (got - ref).abs().max()
    assert (img - ref_img).abs().mean() < 0.05


def test_cutouts_stay_fp32_and_finite_under_fp16_autocast():
    images = torch.rand(2, 3, 32, 32, requires_grad=True)
    gens = [torch.Generator().manual_seed(s) for s in (0, 1)]
    with torch.autocast("cpu", dtype=torch.float16):
        cut = Cutouts(8)(images.half(), 16, gens)
    assert cut.dtype == torch.float32
    cut.sum().backward()
    assert torch.isfinite(images.grad).all()


def _tiny_generator(**dd) -> VQGANGenerator:
    params = copy.deepcopy(bench.TINY_VQGAN)
    params["ddconfig"].update(dd)
    torch.manual_seed(0)
    generator = VQGANGenerator.from_config(params)
    with torch.no_grad():
        generator.codebook.normal_()
    return generator


@pytest.mark.parametrize("dtype", [None, torch.bfloat16])
def test_gradient_checkpointing_gives_the_same_gradients(dtype):
    generator = _tiny_generator(attn_resolutions=[16])  # an attention block is checkpointed too
    latent = generator.init_latent((32, 32), [torch.Generator().manual_seed(3)])
    weights = torch.linspace(-1, 1, 3 * 32 * 32).view(1, 3, 32, 32)
    grads = []
    for checkpointing in (False, True):
        generator.checkpointing = checkpointing
        z = latent["z"].clone().requires_grad_(True)
        with torch.autocast("cpu", dtype=dtype or torch.bfloat16, enabled=dtype is not None):
            image = generator.decode({"z": z})
        (image.float() * weights).sum().backward()
        grads.append(z.grad)
    assert grads[0].abs().sum() > 0
    assert torch.equal(grads[0], grads[1])


def test_checkpointing_and_channels_last_through_the_loop(tiny, session, fp32_reference):
    """prepare_models' options (the GPU path's channels_last included) keep the loop's results."""
    ref, _ = fp32_reference
    run = api.build_run(tiny.replace(precision="fp32"), session=session)
    generator, perceptor = run.generator, run.perceptor
    try:
        # build_run applies the settings' defaults, so the options go on afterwards, as on a GPU
        api.prepare_models(generator, perceptor, torch.device("cpu"), checkpointing="all", channels_last=True)
        assert generator.decoder.conv_in.weight.is_contiguous(memory_format=torch.channels_last)
        curve = []
        engine.run(run, lambda s: curve.append(s.losses))
        assert torch.allclose(torch.tensor(curve), ref, rtol=1e-4, atol=1e-5)
    finally:
        api.prepare_models(generator, perceptor, torch.device("cpu"))
    assert not generator.checkpointing
    assert not any(m.model.visual.transformer.grad_checkpointing for m in perceptor.models
                   if hasattr(m.model.visual, "transformer"))
    assert generator.decoder.conv_in.weight.is_contiguous()


def test_faster_vision_tower_is_the_same_function(tiny_clip_dir):
    import open_clip

    from conftest import TINY_CLIP_CFG

    torch.manual_seed(0)
    stock = open_clip.CLIP(**TINY_CLIP_CFG).eval().requires_grad_(False)
    fast = copy.deepcopy(stock)
    assert speed_up_vision_tower(fast) == 1 + TINY_CLIP_CFG["vision_cfg"]["layers"]
    assert isinstance(fast.visual.conv1, PatchEmbedConv)
    assert isinstance(fast.visual.transformer.resblocks[0].attn, BatchFirstSelfAttention)
    assert type(fast.transformer.resblocks[0].attn) is torch.nn.MultiheadAttention  # text tower untouched
    assert list(fast.state_dict()) == list(stock.state_dict())
    x = torch.rand(3, 3, 32, 32, requires_grad=True)
    a = stock.encode_image(x)
    (ga,) = torch.autograd.grad(a.square().sum(), x)
    b = fast.encode_image(x)
    (gb,) = torch.autograd.grad(b.square().sum(), x)
    assert torch.allclose(a, b, atol=1e-5) and torch.allclose(ga, gb, atol=1e-5)


def test_batch_first_attention_falls_back_for_masks_and_weights():
    torch.manual_seed(0)
    attn = torch.nn.MultiheadAttention(16, 2, batch_first=True).eval()
    stock = copy.deepcopy(attn)
    attn.__class__ = BatchFirstSelfAttention
    x = torch.randn(2, 5, 16)
    mask = torch.triu(torch.full((5, 5), float("-inf")), 1)
    out, weights = attn(x, x, x, attn_mask=mask)
    ref, ref_weights = stock(x, x, x, attn_mask=mask)
    assert torch.allclose(out, ref, atol=1e-6) and torch.allclose(weights, ref_weights)
    assert torch.allclose(attn(x, x, x, need_weights=False)[0], stock(x, x, x, need_weights=False)[0], atol=1e-5)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU")
@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_cuda_precisions_run(tiny, precision):
    losses, images = _losses(tiny.replace(device="cuda", precision=precision), api.Session("cuda"))
    assert torch.isfinite(losses).all() and images.device.type == "cpu"
