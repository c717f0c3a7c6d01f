"""VQGAN (taming-transformers) as a clipguide generator, the VQGAN+CLIP recipe.

Built from taming's plain-torch modules (``Encoder``/``Decoder`` and the quantizers), never from
its Lightning ``VQModel``, which would pull in Lightning and the LPIPS/discriminator loss. The
submodule names match taming's, so the published Lightning checkpoints load with strict key
checking once their ``loss.*`` entries (discriminator, LPIPS) are dropped
(:mod:`clipguide.generators.vqgan_files` reads them).

Latent: ``{"z": (B, embed_dim, H/f, W/f)}``, a continuous tensor that is snapped to the nearest
codebook vectors on every decode with a straight-through gradient.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from ..errors import UserError
from .base import Latent, clamp_with_grad, replace_grad

__all__ = ["VQGANGenerator", "QUANTIZERS", "MEAN_START_NOISE"]

#: Spread of the ``mean`` start: Gaussian noise of this many codebook standard deviations per z
#: dimension around the codebook's mean (measured on the demo models: docs/demo-models-history.md).
MEAN_START_NOISE = 1.0

QUANTIZERS = ("vq", "gumbel")
_DDCONFIG_KEYS = ("ch", "out_ch", "ch_mult", "num_res_blocks", "attn_resolutions", "in_channels",
                  "resolution", "z_channels")


class VQGANGenerator(nn.Module):
    """taming Encoder/Decoder + codebook, frozen, implementing the Generator protocol."""

    default_lr = 0.1
    fixed_size: tuple[int, int] | None = None
    #: Recompute the decoder's activations in the backward pass instead of keeping them: one
    #: more decoder forward per step for a much smaller peak memory (big images on small GPUs).
    checkpointing: bool = False

    def __init__(self, *, embed_dim: int, n_embed: int, ddconfig: Mapping[str, Any], quantizer: str = "vq"):
        super().__init__()
        from taming.modules.diffusionmodules.model import Decoder, Encoder
        from taming.modules.vqvae.quantize import GumbelQuantize, VectorQuantizer2

        if quantizer not in QUANTIZERS:
            raise UserError(f"unknown VQGAN quantizer {quantizer!r}: choose from {', '.join(QUANTIZERS)}")
        ddconfig = dict(ddconfig)
        ddconfig["ch_mult"] = tuple(ddconfig["ch_mult"])
        ddconfig["attn_resolutions"] = list(ddconfig["attn_resolutions"])
        z_channels = int(ddconfig["z_channels"])
        if quantizer == "gumbel" and z_channels != embed_dim:
            # GumbelVQ applies proj (sized z_channels) to quant_conv's output (sized embed_dim).
            raise UserError(f"Gumbel VQGAN config needs z_channels == embed_dim (got {z_channels} and {embed_dim})")
        # taming's Decoder prints the z shape when built; the library stays quiet.
        with contextlib.redirect_stdout(io.StringIO()):
            self.encoder = Encoder(**ddconfig)
            self.decoder = Decoder(**ddconfig)
        if quantizer == "vq":
            self.quantize = VectorQuantizer2(n_embed, embed_dim, beta=0.25)
        else:
            self.quantize = GumbelQuantize(z_channels, embed_dim, n_embed=n_embed)
        self.quant_conv = nn.Conv2d(z_channels, embed_dim, 1)
        self.post_quant_conv = nn.Conv2d(embed_dim, z_channels, 1)

        self.quantizer = quantizer
        self.embed_dim = int(embed_dim)
        self.n_embed = int(n_embed)
        #: Downsampling factor f: output sides must be multiples of it.
        self.size_multiple = 2 ** (len(ddconfig["ch_mult"]) - 1)
        #: JSON-able config (the clipguide safetensors ``config`` metadata).
        self.config = self.config_of({"embed_dim": embed_dim, "n_embed": n_embed,
                                      "ddconfig": ddconfig, "quantizer": quantizer})
        self.eval().requires_grad_(False)

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_config(cls, params: Mapping[str, Any]) -> VQGANGenerator:
        """Build from taming's ``model.params`` (+ ``quantizer``: "vq" default, or "gumbel").

        Training-only keys (``lossconfig``, ``kl_weight``, ``remap``, ``sane_index_shape``,
        ``temperature_scheduler_config``, ``monitor``, …) are accepted and ignored: decoding
        works on codebook vectors, not indices, so index remapping plays no part.
        """
        missing = [k for k in ("embed_dim", "n_embed", "ddconfig") if k not in params]
        if not missing and isinstance(params["ddconfig"], Mapping):
            missing = [f"ddconfig.{k}" for k in _DDCONFIG_KEYS if k not in params["ddconfig"]]
        if missing:
            raise UserError(f"VQGAN config lacks {', '.join(missing)}; use the model.yaml published with the checkpoint")
        return cls(embed_dim=int(params["embed_dim"]), n_embed=int(params["n_embed"]),
                   ddconfig=params["ddconfig"], quantizer=str(params.get("quantizer", "vq")))

    @staticmethod
    def config_of(params: Mapping[str, Any]) -> dict[str, Any]:
        """The architecture part of taming's params as plain JSON values (training keys dropped)."""
        return {"embed_dim": int(params["embed_dim"]), "n_embed": int(params["n_embed"]),
                "ddconfig": _jsonable(params["ddconfig"]), "quantizer": str(params.get("quantizer", "vq"))}

    @property
    def codebook(self) -> torch.Tensor:
        """(n_embed, embed_dim) codebook: ``quantize.embedding`` (VQ) or ``quantize.embed`` (Gumbel)."""
        if self.quantizer == "gumbel":
            return self.quantize.embed.weight
        return self.quantize.embedding.weight

    def check_size(self, size: tuple[int, int]) -> None:
        """UserError unless both sides of ``size`` (W, H) are positive multiples of size_multiple."""
        f = self.size_multiple
        w, h = int(size[0]), int(size[1])
        if w <= 0 or h <= 0 or w % f or h % f:
            tw, th = (max(f, round(s / f) * f) for s in (w, h))
            raise UserError(f"size {w}x{h} must be a multiple of {f} for this VQGAN; try {tw}x{th}")

    # ------------------------------------------------------------------ Generator protocol
    def init_latent(self, size: tuple[int, int], rngs: Sequence[torch.Generator], start: str = "random") -> Latent:
        """Random codebook rows per position ("random") or the codebook's mean plus noise ("mean",
        see :meth:`_mean_start`); image k uses only ``rngs[k]``.

        Indexing the codebook gives exactly what the lineage's ``one_hot(randint) @ codebook``
        gives, without the (positions × n_embed) matrix.
        """
        self.check_size(size)
        if start == "mean":
            return self._mean_start(size, rngs)
        if start != "random":  # validate() refuses these; a direct caller gets the same answer
            raise UserError(f"unknown init {start!r}: use 'random' or 'mean'")
        w, h = size[0] // self.size_multiple, size[1] // self.size_multiple
        book = self.codebook
        rows = []
        for g in rngs:
            idx = torch.randint(self.n_embed, (h * w,), generator=g, device=g.device).to(book.device)
            rows.append(book[idx].T.reshape(self.embed_dim, h, w))
        return {"z": torch.stack(rows).detach().clone()}

    def _mean_start(self, size: tuple[int, int], rngs: Sequence[torch.Generator]) -> Latent:
        """The codebook's mean vector at every position plus Gaussian noise; image k's noise only
        from ``rngs[k]``.

        Random codes start from confetti in which every patch already has a colour: the run mostly
        recolours the patches that happen to be near the prompt's colours, so the seed, not the
        prompt, decides where the subject ends up. Around the mean no code is favoured and the first
        gradients decide the layout; the noise keeps many codes within reach, which a flat picture's
        codes (tried first) did not: from a plain dark start a red ground never appeared.
        """
        f = self.size_multiple
        book = self.codebook
        centre = book.mean(0).view(-1, 1, 1).expand(-1, size[1] // f, size[0] // f)
        spread = book.std(0).view(-1, 1, 1)
        rows = [centre + MEAN_START_NOISE * spread * torch.randn(centre.shape, generator=g, device=g.device).to(book)
                for g in rngs]
        return {"z": torch.stack(rows).detach().clone()}

    def encode(self, images: torch.Tensor) -> Latent:
        """z whose decode reproduces ``images`` ((B,3,H,W) in [0,1]) as well as the codebook allows."""
        self.check_size((images.shape[-1], images.shape[-2]))
        with torch.no_grad():
            h = self.quant_conv(self.encoder(images.to(self.codebook) * 2 - 1))
            if self.quantizer == "gumbel":
                # Deterministic version of GumbelQuantize (no Gumbel noise): the likeliest code.
                idx = self.quantize.proj(h).argmax(1)
            else:
                idx = self.nearest_codes(h)
            return {"z": self.lookup(idx)}

    def decode(self, latent: Latent) -> torch.Tensor:
        z = latent["z"]
        z_q = replace_grad(self.lookup(self.nearest_codes(z)), z)  # snap; gradient goes to z
        h = self.post_quant_conv(z_q)
        x = self._decode_checkpointed(h) if self.checkpointing and torch.is_grad_enabled() else self.decoder(h)
        return clamp_with_grad(x.add(1).div(2), 0.0, 1.0)

    def _decode_checkpointed(self, h: torch.Tensor) -> torch.Tensor:
        """taming's ``Decoder.forward`` step for step, each block under activation checkpointing.

        Only every block's input is kept; its insides are recomputed during backward, so the peak
        holds one block's activations instead of the whole decoder's. Same arithmetic, same result.
        """
        from torch.utils.checkpoint import checkpoint

        dec = self.decoder

        def run(module, x, *extra):
            return checkpoint(module, x, *extra, use_reentrant=False)

        h = dec.conv_in(h)
        h = run(dec.mid.block_1, h, None)
        h = run(dec.mid.attn_1, h)
        h = run(dec.mid.block_2, h, None)
        for i_level in reversed(range(dec.num_resolutions)):
            level = dec.up[i_level]
            for i_block in range(dec.num_res_blocks + 1):
                h = run(level.block[i_block], h, None)
                if len(level.attn) > 0:
                    h = run(level.attn[i_block], h)
            if i_level != 0:
                h = run(level.upsample, h)
        if getattr(dec, "give_pre_end", False):
            return h
        h = run(_DecoderEnd(dec), h)
        return torch.tanh(h) if getattr(dec, "tanh_out", False) else h

    def project_(self, latent: Latent) -> None:
        """Clamp z in place to the codebook's per-dimension range (the lineage's z_min/z_max)."""
        book = self.codebook
        lo = book.min(0).values.view(1, -1, 1, 1).to(latent["z"])
        hi = book.max(0).values.view(1, -1, 1, 1).to(latent["z"])
        with torch.no_grad():
            latent["z"].copy_(torch.maximum(torch.minimum(latent["z"], hi), lo))

    def regularizer(self, latent: Latent) -> torch.Tensor:
        z = latent["z"]
        return z.new_zeros(z.shape[0])

    def output(self, latent: Latent) -> torch.Tensor:
        with torch.no_grad():
            return self.decode(latent)

    # ------------------------------------------------------------------ codebook helpers
    def nearest_codes(self, z: torch.Tensor) -> torch.Tensor:
        """(B,h,w) index of the nearest codebook vector to each z vector (squared L2)."""
        book = self.codebook.to(z.dtype)
        flat = z.detach().movedim(1, -1).reshape(-1, self.embed_dim)
        d = flat.pow(2).sum(1, keepdim=True) + book.pow(2).sum(1) - 2 * flat @ book.T
        return d.argmin(1).view(z.shape[0], z.shape[2], z.shape[3])

    def lookup(self, idx: torch.Tensor) -> torch.Tensor:
        """(B,embed_dim,h,w) codebook vectors for (B,h,w) indices."""
        return self.codebook[idx].movedim(-1, 1)


class _DecoderEnd(nn.Module):
    """The decoder's last norm → swish → conv, as one checkpointable call (holds no weights itself)."""

    def __init__(self, decoder: nn.Module) -> None:
        super().__init__()
        self.__dict__["decoder"] = decoder  # not registered: it is not a submodule of this helper

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        h = self.decoder.norm_out(h)
        return self.decoder.conv_out(h * torch.sigmoid(h))  # taming's nonlinearity()


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value
