"""CLIP models (through open_clip only) and the embeddings the loop steers toward.

A spec names a model the way users write it: ``ViT-B-32/openai`` (an open_clip architecture and
pretrained tag), ``demo`` or ``demo-wide`` (the shipped shapes-world CLIPs), a local folder in
open_clip's hub layout (``open_clip_config.json`` + weights), or ``NAME/path/to/weights.safetensors``.
Mean, std and input size always come from the model's own preprocess config, never from constants here.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from .errors import MissingWeightsError, UserError, unknown

log = logging.getLogger(__name__)


@dataclass
class ClipModel:
    spec: str
    model: torch.nn.Module
    tokenizer: object
    input_size: int
    mean: torch.Tensor  # (1,3,1,1) on the model's device
    std: torch.Tensor

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        return (images - self.mean.to(images.dtype)) / self.std.to(images.dtype)

    def embed_images(self, images: torch.Tensor) -> torch.Tensor:
        """(N,3,S,S) in [0,1], already at ``input_size`` → (N,D) unit embeddings (differentiable)."""
        return F.normalize(self.model.encode_image(self.normalize(images)).float(), dim=-1)

    @torch.inference_mode()
    def embed_texts(self, texts: Sequence[str]) -> torch.Tensor:
        tokens = self.tokenizer(list(texts)).to(self.mean.device)
        return F.normalize(self.model.encode_text(tokens).float(), dim=-1)


class Perceptor:
    """One or several CLIP models; the loop averages their losses."""

    def __init__(self, models: Sequence[ClipModel]) -> None:
        if not models:
            raise UserError("at least one CLIP model is needed (--clip NAME/PRETRAINED)")
        self.models = list(models)

    @property
    def specs(self) -> tuple[str, ...]:
        return tuple(m.spec for m in self.models)

    def embed_texts(self, texts: Sequence[str]) -> torch.Tensor:
        """Unit text embeddings from the first model (the one reports use)."""
        return self.models[0].embed_texts(texts)

    @torch.inference_mode()
    def embed_images(self, images: torch.Tensor) -> torch.Tensor:
        """(B,3,H,W) in [0,1] at any size → (B,D) unit embeddings of the first model (whole image, resized)."""
        model = self.models[0]
        return model.embed_images(resize_for(model, images.to(model.mean.device)))


def resize_for(model: ClipModel, images: torch.Tensor) -> torch.Tensor:
    """Whole images squashed to the model's input size (area-averaged when shrinking)."""
    size = model.input_size
    if images.shape[-2:] == (size, size):
        return images
    mode = "area" if min(images.shape[-2:]) > size else "bicubic"
    return F.interpolate(images, size=(size, size), mode=mode).clamp(0, 1)


def demo_clips() -> dict[str, Path]:
    """Spec → folder of each shipped demo CLIP ("demo", "demo-wide")."""
    from .demo import DEMO_CLIPS

    return DEMO_CLIPS


def demo_clip_dir(spec: str = "demo") -> Path:
    return demo_clips()[spec]


def load_clip(spec: str, device: torch.device | str = "cpu", *, offline: bool = False) -> ClipModel:
    """Load one CLIP model from a spec (see module docstring); errors are one-line UserErrors."""
    import open_clip

    offline = offline or _env_offline()
    if spec in demo_clips():
        folder = demo_clip_dir(spec)
        if not (folder / "open_clip_config.json").is_file():
            raise MissingWeightsError(f"the {spec} CLIP is missing: expected {folder}/open_clip_config.json (reinstall clipguide)")
        name = f"local-dir:{folder}"
        model, _ = _create(open_clip, name, None, spec)
    elif Path(spec).expanduser().is_dir():
        folder = Path(spec).expanduser()
        if not (folder / "open_clip_config.json").is_file():
            raise UserError(f"CLIP folder {folder} has no open_clip_config.json: point --clip at a folder in open_clip's hub layout")
        name = f"local-dir:{folder}"
        model, _ = _create(open_clip, name, None, spec)
    else:
        name, sep, pretrained = spec.partition("/")
        if not sep or not pretrained:
            raise UserError(f"CLIP model {spec!r} needs a pretrained tag or file: write NAME/PRETRAINED, e.g. ViT-B-32/openai")
        if name not in open_clip.list_models():
            raise unknown("CLIP architecture", name, open_clip.list_models())
        weights = Path(pretrained).expanduser()
        if weights.suffix in (".safetensors", ".pt", ".pth", ".bin") or weights.is_file():
            if not weights.is_file():
                raise UserError(f"CLIP weights file {weights} does not exist: check the path after {name}/")
            model, _ = _create(open_clip, name, str(weights), spec)
        else:
            model, _ = _create_pretrained(open_clip, name, pretrained, spec, offline)
    return wrap_clip(spec, model, name, device)


def wrap_clip(spec: str, model: torch.nn.Module, name: str, device: torch.device | str = "cpu") -> ClipModel:
    """A built open_clip model as a frozen :class:`ClipModel` on ``device``.

    ``name`` is what open_clip knows the architecture by (``ViT-B-32``, or ``local-dir:…`` for a
    folder): it picks the tokenizer. Shared by :func:`load_clip` and the benchmark, which builds
    real-size architectures with random weights, so both run exactly the same wrapper.
    """
    import open_clip

    model = model.to(device).eval().requires_grad_(False)
    speed_up_vision_tower(model)
    cfg = getattr(model.visual, "preprocess_cfg", {}) or {}
    size = cfg.get("size", getattr(model.visual, "image_size", 224))
    size = size[0] if isinstance(size, (tuple, list)) else int(size)
    mean = torch.tensor(cfg.get("mean", open_clip.OPENAI_DATASET_MEAN), device=device).view(1, 3, 1, 1)
    std = torch.tensor(cfg.get("std", open_clip.OPENAI_DATASET_STD), device=device).view(1, 3, 1, 1)
    tokenizer = open_clip.get_tokenizer(name)  # `name` carries the local-dir: schema for folders
    return ClipModel(spec, model, tokenizer, int(size), mean.float(), std.float())


def _create(open_clip, name: str, pretrained: str | None, spec: str, **kwargs):
    try:
        return open_clip.create_model(name, pretrained=pretrained, **kwargs), name
    except (RuntimeError, ValueError, OSError, KeyError) as e:
        raise UserError(f"cannot load CLIP model {spec!r}: {_one_line(e)}") from None


def _create_pretrained(open_clip, name: str, tag: str, spec: str, offline: bool):
    """Resolve the weights file ourselves so --offline never reaches the network and says what is missing."""
    tags = open_clip.list_pretrained_tags_by_model(name)
    if tag not in tags:
        raise unknown(f"pretrained tag for {name}", tag, tags or ["(none: give a weights file path)"])
    cfg = open_clip.get_pretrained_cfg(name, tag)
    if offline:
        path = _cached_pretrained(cfg)
        if path is None:
            from huggingface_hub import constants

            raise MissingWeightsError(
                f"CLIP weights {spec} are not in the Hugging Face cache ({constants.HF_HUB_CACHE}) and offline mode is on: "
                f"run once with network access, or pass a local file as {name}/PATH")
    else:
        try:
            path = open_clip.download_pretrained(cfg)
        except Exception as e:  # network failures come in many types; all mean the same to the user
            raise MissingWeightsError(f"could not download CLIP weights {spec}: {_one_line(e)} "
                                      f"(check the connection, or pass a local file as {name}/PATH)") from None
    preprocess = {k: cfg[k] for k in ("mean", "std", "interpolation", "resize_mode") if k in cfg}
    return _create(open_clip, name, str(path), spec, force_quick_gelu=bool(cfg.get("quick_gelu", False)),
                   force_preprocess_cfg=preprocess or None)


def _cached_pretrained(cfg: dict) -> str | None:
    from huggingface_hub import try_to_load_from_cache

    hub = cfg.get("hf_hub", "")
    if not hub:
        return None
    repo_id, filename = os.path.split(hub)
    for candidate in ("open_clip_model.safetensors", filename or "open_clip_pytorch_model.bin"):
        found = try_to_load_from_cache(repo_id, candidate)
        if isinstance(found, str):
            return found
    return None


def _env_offline() -> bool:
    return any(os.environ.get(v, "").lower() in ("1", "true", "yes") for v in ("HF_HUB_OFFLINE", "CLIPGUIDE_OFFLINE"))


def _one_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__


def load_perceptor(specs: Sequence[str], device: torch.device | str = "cpu", *, offline: bool = False) -> Perceptor:
    return Perceptor([load_clip(s, device, offline=offline) for s in specs])


# --------------------------------------------------------------------------- faster vision tower
#
# The loop differentiates CLIP's image tower w.r.t. its input every step, which takes two paths of
# stock PyTorch that are slow on CPU: the input gradient of the ViT's stride-32, kernel-32 patch
# convolution (oneDNN has no fast kernel for it: ~20x the forward's time), and nn.MultiheadAttention,
# which transposes batch-first input and so runs its projections as many small batched matmuls.
# The classes below do the same arithmetic (same weights, same results up to float rounding) as
# one matmul each. They subclass the originals and are swapped in by ``__class__``, so parameters,
# state-dict names and everything else about the model stay as they were.


class PatchEmbedConv(torch.nn.Conv2d):
    """A non-overlapping patch convolution (stride == kernel, no padding) as reshape + matmul."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        ph, pw = self.kernel_size
        n, c, h, w = x.shape
        gh, gw = h // ph, w // pw
        patches = x[:, :, :gh * ph, :gw * pw].reshape(n, c, gh, ph, gw, pw).permute(0, 2, 4, 1, 3, 5)
        out = F.linear(patches.reshape(n, gh, gw, c * ph * pw), self.weight.reshape(self.out_channels, -1), self.bias)
        return out.permute(0, 3, 1, 2)


class BatchFirstSelfAttention(torch.nn.MultiheadAttention):
    """nn.MultiheadAttention whose batch-first self-attention runs as contiguous matmuls + SDPA.

    Anything else (cross-attention, masks, attention weights asked for) goes to the stock code.
    """

    def forward(self, query, key, value, key_padding_mask=None, need_weights=True, attn_mask=None,
                average_attn_weights=True, is_causal=False):  # type: ignore[override]
        plain = (key is query and value is query and self.batch_first and query.dim() == 3
                 and key_padding_mask is None and attn_mask is None and not need_weights and not is_causal
                 and self._qkv_same_embed_dim and self.bias_k is None and self.in_proj_weight is not None
                 and (self.dropout == 0.0 or not self.training))
        if not plain:
            return super().forward(query, key, value, key_padding_mask, need_weights, attn_mask,
                                   average_attn_weights, is_causal)
        n, length, embed = query.shape
        heads = self.num_heads
        qkv = F.linear(query, self.in_proj_weight, self.in_proj_bias)
        q, k, v = qkv.view(n, length, 3, heads, embed // heads).permute(2, 0, 3, 1, 4).unbind(0)
        if query.device.type == "cpu":
            # ViT token counts are short (50 for ViT-B/32): on CPU, explicit matmuls + softmax beat
            # the fused kernel, whose bf16 backward is ~4x slower than this (measured, torch 2.14).
            weights = (q * (q.shape[-1] ** -0.5)) @ k.transpose(-2, -1)
            out = weights.softmax(-1).to(v.dtype) @ v
        else:
            out = F.scaled_dot_product_attention(q, k, v)
        out = out.transpose(1, 2).reshape(n, length, embed)
        return F.linear(out, self.out_proj.weight, self.out_proj.bias), None


def speed_up_vision_tower(model: torch.nn.Module) -> int:
    """Swap the classes above into ``model.visual`` where they apply; returns how many modules changed."""
    visual = getattr(model, "visual", None)
    if visual is None:
        return 0
    changed = 0
    for module in visual.modules():
        # only real patch embeddings: a 1x1 convolution (ResNet towers) already has a fast kernel
        if type(module) is torch.nn.Conv2d and module.stride == module.kernel_size != (1, 1) and module.groups == 1 \
                and module.padding == (0, 0) and module.dilation == (1, 1) and module.padding_mode == "zeros":
            module.__class__ = PatchEmbedConv
            changed += 1
        elif type(module) is torch.nn.MultiheadAttention:
            module.__class__ = BatchFirstSelfAttention
            changed += 1
    return changed
