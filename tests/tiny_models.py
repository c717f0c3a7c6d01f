"""Tiny models written to disk in the *real* published formats, for tests that must not download.

Import from any test (``from tiny_models import ...``; pytest puts ``tests/`` on ``sys.path``).
Every function is deterministic for a given ``seed`` and leaves torch's global RNG untouched.

* :data:`TINY_VQGAN_PARAMS` — taming ``model.params`` of a VQGAN small enough for CPU tests.
* :func:`tiny_vqgan_state_dict` — its tensors under taming's names (no ``loss.*``).
* :func:`write_taming_checkpoint` — ``model.ckpt`` + ``model.yaml`` exactly as the published
  taming releases lay them out: a Lightning checkpoint whose pickle also holds callback objects
  from a module that cannot be imported, numpy scalars and ``loss.*`` tensors.
* :func:`write_tiny_vqgan_safetensors` — the same model in clipguide's safetensors format.
* :data:`INVERTIBLE_VQGAN_PARAMS` / :func:`invertible_vqgan_state_dict` — a hand-built VQGAN whose
  encoder exactly inverts its decoder on balanced latents, for encode/decode round trips.
"""

from __future__ import annotations

import copy
import itertools
import json
import sys
import types
from pathlib import Path
from typing import Any
from unittest import mock

import numpy as np
import torch
import yaml

# taming's Normalize is GroupNorm(32 groups), so channel counts must be multiples of 32: `ch`
# cannot go below 32. ch_mult (1, 2) gives f = 2; a 32x32 image has a 16x16 latent.
TINY_VQGAN_PARAMS: dict[str, Any] = {
    "embed_dim": 4,
    "n_embed": 32,
    "ddconfig": {
        "double_z": False,
        "z_channels": 4,
        "resolution": 32,
        "in_channels": 3,
        "out_ch": 3,
        "ch": 32,
        "ch_mult": [1, 2],
        "num_res_blocks": 1,
        "attn_resolutions": [],
        "dropout": 0.0,
    },
}

_VQ_TARGET = "taming.models.vqgan.VQModel"
_GUMBEL_TARGET = "taming.models.vqgan.GumbelVQ"
# Where the fake Lightning callback class claims to live: a module that does not exist, so a
# loader that imported pickle globals would fail loudly instead of passing by accident.
FAKE_CALLBACK_MODULE = "fake_lightning.callbacks.model_checkpoint"


def _build_modules(params: dict[str, Any], gumbel: bool) -> dict[str, torch.nn.Module]:
    import contextlib
    import io

    from taming.modules.diffusionmodules.model import Decoder, Encoder
    from taming.modules.vqvae.quantize import GumbelQuantize, VectorQuantizer2

    dd = params["ddconfig"]
    with contextlib.redirect_stdout(io.StringIO()):
        mods: dict[str, torch.nn.Module] = {"encoder": Encoder(**dd), "decoder": Decoder(**dd)}
    if gumbel:
        mods["quantize"] = GumbelQuantize(dd["z_channels"], params["embed_dim"], n_embed=params["n_embed"])
    else:
        mods["quantize"] = VectorQuantizer2(params["n_embed"], params["embed_dim"], beta=0.25)
    mods["quant_conv"] = torch.nn.Conv2d(dd["z_channels"], params["embed_dim"], 1)
    mods["post_quant_conv"] = torch.nn.Conv2d(params["embed_dim"], dd["z_channels"], 1)
    return mods


def tiny_vqgan_state_dict(params: dict[str, Any] | None = None, *, gumbel: bool = False,
                          seed: int = 0) -> dict[str, torch.Tensor]:
    """Random weights under taming's state-dict names, built with taming's own modules.

    The codebook is drawn from N(0, 1) rather than taming's tiny uniform init so that codes are
    well separated (nearest-code tests are then meaningful).
    """
    params = params or TINY_VQGAN_PARAMS
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        mods = _build_modules(params, gumbel)
        book = mods["quantize"].embed if gumbel else mods["quantize"].embedding
        with torch.no_grad():
            book.weight.normal_()
    return {f"{prefix}.{k}": v.detach().clone() for prefix, m in mods.items() for k, v in m.state_dict().items()}


def _fake_loss_tensors(seed: int) -> dict[str, torch.Tensor]:
    """Stand-ins for the discriminator and LPIPS weights the real .ckpt files carry under loss.*."""
    g = torch.Generator().manual_seed(seed + 1)
    return {
        "loss.logvar": torch.zeros(()),
        "loss.perceptual_loss.scaling_layer.shift": torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1),
        "loss.perceptual_loss.net.slice1.0.weight": torch.randn(8, 3, 3, 3, generator=g),
        "loss.perceptual_loss.lin0.model.1.weight": torch.randn(1, 8, 1, 1, generator=g),
        "loss.discriminator.main.0.weight": torch.randn(8, 3, 4, 4, generator=g),
        "loss.discriminator.main.0.bias": torch.randn(8, generator=g),
    }


def _fake_callback_module() -> tuple[dict[str, types.ModuleType], type]:
    """Modules to patch into sys.modules (only while saving) holding a ModelCheckpoint-like class."""
    parts = FAKE_CALLBACK_MODULE.split(".")
    modules = {".".join(parts[: i + 1]): types.ModuleType(".".join(parts[: i + 1])) for i in range(len(parts))}
    cls = type("ModelCheckpoint", (), {"__module__": FAKE_CALLBACK_MODULE})
    setattr(modules[FAKE_CALLBACK_MODULE], "ModelCheckpoint", cls)
    for parent, child in itertools.pairwise(list(modules)):
        setattr(modules[parent], child.rsplit(".", 1)[-1], modules[child])
    return modules, cls


def write_lightning_checkpoint(path: str | Path, state_dict: dict[str, torch.Tensor], *, epoch: int = 1,
                               extra: dict[str, Any] | None = None) -> Path:
    """torch.save a PyTorch-Lightning-1.0-style checkpoint dict around ``state_dict``.

    Besides the tensors it pickles an instance (and, as a dict key, the class) of a callback
    defined in a module that does not exist at load time, plus numpy scalars — the objects that
    make ``torch.load(weights_only=True)`` reject the real taming checkpoints.
    """
    path = Path(path)
    modules, callback_cls = _fake_callback_module()
    callback = callback_cls()
    callback.__dict__.update({"monitor": "val/rec_loss", "best_model_score": np.float64(0.1234),
                              "dirpath": "logs/2020-11-09T13-31-51_faceshq_vqgan/checkpoints"})
    ckpt = {
        "epoch": epoch,
        "global_step": 1000 * epoch,
        "pytorch-lightning_version": "1.0.8",
        "callbacks": {callback_cls: {"best_model_score": np.float32(0.5), "instance": callback}},
        "optimizer_states": [{"state": {}, "param_groups": [{"lr": 4.5e-6, "betas": (0.5, 0.9), "params": [0]}]}],
        "lr_schedulers": [],
        "state_dict": state_dict,
        **(extra or {}),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    with mock.patch.dict(sys.modules, modules):  # pickle looks classes up by module name
        torch.save(ckpt, path)
    return path


def taming_yaml(params: dict[str, Any], *, gumbel: bool = False) -> dict[str, Any]:
    """The model.yaml document taming publishes beside a checkpoint (training keys included)."""
    p = copy.deepcopy({k: v for k, v in params.items() if k != "quantizer"})
    p["lossconfig"] = {
        "target": "taming.modules.losses.vqperceptual.VQLPIPSWithDiscriminator",
        "params": {"disc_conditional": False, "disc_in_channels": 3, "disc_start": 250001,
                   "disc_weight": 0.8, "codebook_weight": 1.0},
    }
    if gumbel:
        p["kl_weight"] = 1.0e-08
        p["monitor"] = "val/rec_loss"
        p["temperature_scheduler_config"] = {
            "target": "taming.lr_scheduler.LambdaWarmUpCosineScheduler",
            "params": {"warm_up_steps": 0, "max_decay_steps": 1000001, "lr_start": 0.9,
                       "lr_max": 0.9, "lr_min": 1.0e-06},
        }
    return {"model": {"base_learning_rate": 4.5e-06, "target": _GUMBEL_TARGET if gumbel else _VQ_TARGET,
                      "params": p}}


def write_taming_checkpoint(directory: str | Path, *, gumbel: bool = False, seed: int = 0,
                            params: dict[str, Any] | None = None,
                            state_dict: dict[str, torch.Tensor] | None = None) -> tuple[Path, Path]:
    """Write ``model.ckpt`` + ``model.yaml`` in the published taming layout; returns both paths.

    ``params`` defaults to :data:`TINY_VQGAN_PARAMS`; ``state_dict`` to
    :func:`tiny_vqgan_state_dict` (``loss.*`` tensors are always added, as in the real files).
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    params = params or TINY_VQGAN_PARAMS
    sd = dict(state_dict if state_dict is not None else tiny_vqgan_state_dict(params, gumbel=gumbel, seed=seed))
    sd.update(_fake_loss_tensors(seed))
    ckpt = write_lightning_checkpoint(directory / "model.ckpt", sd)
    yaml_path = directory / "model.yaml"
    yaml_path.write_text(yaml.safe_dump(taming_yaml(params, gumbel=gumbel), sort_keys=False), encoding="utf-8")
    return ckpt, yaml_path


def write_tiny_vqgan_safetensors(path: str | Path, *, gumbel: bool = False, seed: int = 0,
                                 params: dict[str, Any] | None = None) -> Path:
    """The tiny VQGAN in clipguide's safetensors format (taming names, config in the metadata)."""
    from safetensors.torch import save_file

    params = params or TINY_VQGAN_PARAMS
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    config = {**copy.deepcopy(params), "quantizer": "gumbel" if gumbel else "vq"}
    sd = {k: v.contiguous() for k, v in tiny_vqgan_state_dict(params, gumbel=gumbel, seed=seed).items()}
    save_file(sd, str(path), metadata={"format": "clipguide-vqgan", "config": json.dumps(config)})
    return path


# --------------------------------------------------------------------------- invertible VQGAN
#
# Random weights make encode(decode(z)) meaningless, and training is too slow for a unit test, so
# this model is built by hand: every ResnetBlock and attention block has its output conv zeroed
# (each becomes the identity), resampling convs copy their centre tap, and the remaining convs
# route channels. The only non-linear steps left are the GroupNorms before conv_out and the swish
# after them. With a codebook of sign vectors (±1) and a latent in which every channel has mean 0
# (each code appears with its negation as often), a channel's standardisation is the identity and
# a +20 offset keeps swish in its linear range. quant_conv / post_quant_conv permute channels so a
# path that skipped either would not round-trip.

INVERTIBLE_VQGAN_PARAMS: dict[str, Any] = {
    "embed_dim": 3,
    "n_embed": 8,
    "ddconfig": {**TINY_VQGAN_PARAMS["ddconfig"], "z_channels": 3},
}
_OFFSET = 20.0  # swish(x + 20) == x + 20 to ~1e-7 for |x| <= 1
_PERM = [2, 0, 1]


def sign_codebook() -> torch.Tensor:
    """The 8 vectors of {-1, +1}^3; row 7 - i is the negation of row i."""
    return torch.tensor(list(itertools.product([-1.0, 1.0], repeat=3)))


def balanced_codes(h: int, w: int, generator: torch.Generator) -> torch.Tensor:
    """(h, w) indices into :func:`sign_codebook` where each code's negation appears equally often,
    so every latent channel has mean exactly 0 (what the invertible model needs)."""
    n = h * w
    half = torch.randint(8, (n // 2,), generator=generator)
    idx = torch.cat([half, 7 - half])
    return idx[torch.randperm(n, generator=generator)].view(h, w)


def _centre(conv: torch.nn.Conv2d, pairs: list[tuple[int, int]], scale: float = 1.0) -> None:
    """Zero ``conv`` then copy input channel i to output channel o (centre tap) for (o, i) in pairs."""
    conv.weight.zero_()
    if conv.bias is not None:
        conv.bias.zero_()
    k = conv.weight.shape[-1] // 2
    for o, i in pairs:
        conv.weight[o, i, k, k] = scale


def invertible_vqgan_state_dict() -> dict[str, torch.Tensor]:
    """Weights for :data:`INVERTIBLE_VQGAN_PARAMS` whose encoder inverts the decoder (see above)."""
    from taming.modules.diffusionmodules.model import AttnBlock, Downsample, ResnetBlock, Upsample

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        mods = _build_modules(INVERTIBLE_VQGAN_PARAMS, gumbel=False)
    enc, dec = mods["encoder"], mods["decoder"]
    identity = lambda n: [(c, c) for c in range(n)]  # noqa: E731
    with torch.no_grad():
        for m in itertools.chain(enc.modules(), dec.modules()):
            if isinstance(m, ResnetBlock):
                _centre(m.conv2, [])  # residual branch -> 0, block -> its shortcut
                if m.in_channels != m.out_channels:
                    _centre(m.nin_shortcut, identity(min(m.in_channels, m.out_channels)))
            elif isinstance(m, AttnBlock):
                _centre(m.proj_out, [])
            elif isinstance(m, (Upsample, Downsample)):
                _centre(m.conv, identity(m.conv.out_channels))
        # Decoder: z (3 ch) -> channels 0..2 -> per-channel GroupNorm (identity on balanced ±1)
        # -> +OFFSET -> swish -> conv_out: image = 0.5 * z, i.e. 0.25 / 0.75 in [0, 1].
        _centre(dec.conv_in, [(_PERM.index(c), c) for c in range(3)])  # undo post_quant_conv's permutation
        dec.norm_out.weight.fill_(1.0)
        dec.norm_out.bias.fill_(_OFFSET)
        _centre(dec.conv_out, [(c, c) for c in range(3)], 0.5)
        dec.conv_out.bias.fill_(-0.5 * _OFFSET)
        # Encoder: x = 2*image - 1 = ±0.5 -> channels 2c and 2c+1 (GroupNorm groups of 2 in the
        # 64-channel norm_out standardise the pair to ±1) -> +OFFSET -> swish -> conv_out.
        _centre(enc.conv_in, [(2 * c, c) for c in range(3)] + [(2 * c + 1, c) for c in range(3)])
        enc.norm_out.weight.fill_(1.0)
        enc.norm_out.bias.fill_(_OFFSET)
        # conv_out emits z in inverse-permuted order; quant_conv permutes it back.
        _centre(enc.conv_out, [(_PERM[c], 2 * c) for c in range(3)])
        enc.conv_out.bias.fill_(-_OFFSET)
        _centre(mods["quant_conv"], [(c, _PERM[c]) for c in range(3)])
        _centre(mods["post_quant_conv"], [(_PERM[c], c) for c in range(3)])
        mods["quantize"].embedding.weight.copy_(sign_codebook())
    return {f"{prefix}.{k}": v.detach().clone() for prefix, m in mods.items() for k, v in m.state_dict().items()}
