"""CLIP models (through open_clip only) and the embeddings the loop steers toward.

A spec names a model the way users write it: ``ViT-B-32/openai`` (an open_clip architecture and
pretrained tag), a name from the manifest's ``[clips]`` table (``demo`` and ``demo-wide``, the
shipped shapes-world CLIPs), a local folder in open_clip's hub layout (``open_clip_config.json`` +
weights), or ``NAME/path/to/weights.safetensors``. Mean, std and input size always come from the
model's own preprocess config, never from constants here.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from .clip_speedups import speed_up_vision_tower
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

    def cut_text(self, text: str) -> str | None:
        """The part of ``text`` this model reads, when its context is too short for all of it (else None)."""
        tokenizer = self.tokenizer
        context = getattr(tokenizer, "context_length", None)
        encode, decode = getattr(tokenizer, "encode", None), getattr(tokenizer, "decode", None)
        if context is None or encode is None or decode is None:
            return None  # a tokenizer we cannot count with: open_clip still cuts, silently
        tokens = encode(text)
        room = int(context) - 2  # start and end tokens
        if len(tokens) <= room:
            return None
        return decode(tokens[:room]).strip()


class Perceptor:
    """One or several CLIP models; the loop averages their losses."""

    def __init__(self, models: Sequence[ClipModel]) -> None:
        if not models:
            raise UserError("setting clip needs at least one CLIP model (--clip NAME/PRETRAINED)")
        self.models = list(models)

    def embed_texts(self, texts: Sequence[str]) -> torch.Tensor:
        """Unit text embeddings from the first model (the one reports use)."""
        return self.models[0].embed_texts(texts)

    @torch.inference_mode()
    def embed_images(self, images: torch.Tensor) -> torch.Tensor:
        """(B,3,H,W) in [0,1] at any size → (B,D) unit embeddings of the first model (whole image, resized)."""
        model = self.models[0]
        return model.embed_images(resize_for(model, images.to(model.mean.device)))

    def cut_notices(self, texts: Sequence[str]) -> list[str]:
        """One notice per text that a model's context cuts short, saying where."""
        notices = []
        for text in dict.fromkeys(texts):
            for model in self.models:
                kept = model.cut_text(text)
                if kept is not None:
                    tail = kept[-40:]
                    notices.append(f"the prompt {_short(text)!r} is longer than CLIP model {model.spec}'s context "
                                   f"and was cut after '…{tail}'")
                    break
        return notices


def _short(text: str, n: int = 40) -> str:
    return text if len(text) <= n else text[:n] + "…"


def resize_for(model: ClipModel, images: torch.Tensor) -> torch.Tensor:
    """Whole images squashed to the model's input size (area-averaged when shrinking)."""
    size = model.input_size
    if images.shape[-2:] == (size, size):
        return images
    mode = "area" if min(images.shape[-2:]) > size else "bicubic"
    return F.interpolate(images, size=(size, size), mode=mode).clamp(0, 1)


def clip_names() -> list[str]:
    """The CLIP models the manifest knows by name (the shipped demo CLIPs among them)."""
    from .weights import load_manifest

    return list(load_manifest(section="clips"))


def load_clip(spec: str, device: torch.device | str = "cpu", *, offline: bool = False) -> ClipModel:
    """Load one CLIP model from a spec (see module docstring); errors are one-line UserErrors."""
    import open_clip

    from .weights import fetch, is_offline, load_manifest

    offline = is_offline(offline)
    if spec in load_manifest(section="clips"):
        folder = fetch(spec, offline=offline, section="clips")["config"].parent
        name = f"local-dir:{folder}"
        model, _ = _create(open_clip, name, None, spec)
    elif Path(spec).expanduser().is_dir():
        folder = Path(spec).expanduser()
        if not (folder / "open_clip_config.json").is_file():
            raise UserError(f"CLIP folder {folder} has no open_clip_config.json: point the clip setting at a "
                            "folder in open_clip's hub layout")
        name = f"local-dir:{folder}"
        model, _ = _create(open_clip, name, None, spec)
    else:
        name, sep, pretrained = spec.partition("/")
        if not sep or not pretrained:
            raise UserError(f"CLIP model {spec!r} needs a pretrained tag or file: write NAME/PRETRAINED, e.g. "
                            "ViT-B-32/openai (setting clip)")
        if name not in open_clip.list_models():
            raise unknown("CLIP architecture", name, [*open_clip.list_models(), *clip_names()])
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
    """Resolve the weights file ourselves so offline mode never reaches the network and says what is missing."""
    from .weights import OFFLINE_HINT

    tags = open_clip.list_pretrained_tags_by_model(name)
    if tag not in tags:
        raise unknown(f"pretrained tag for {name}", tag, tags or ["(none: give a weights file path)"])
    cfg = open_clip.get_pretrained_cfg(name, tag)
    if offline:
        path = _cached_pretrained(cfg)
        if path is None:
            from huggingface_hub import constants

            raise MissingWeightsError(
                f"CLIP weights {spec} are not in the Hugging Face cache ({constants.HF_HUB_CACHE}) and offline mode "
                f"is on: run once with network access, or pass a local file as {name}/PATH{OFFLINE_HINT}")
    else:
        try:
            path = open_clip.download_pretrained(cfg)
        except Exception as e:  # network failures come in many types; all mean the same to the user
            raise MissingWeightsError(f"could not download CLIP weights {spec}: {_one_line(e)} "
                                      f"(check the connection, or pass a local file as {name}/PATH){OFFLINE_HINT}") \
                from None
    preprocess = {k: cfg[k] for k in ("mean", "std", "interpolation", "resize_mode") if k in cfg}
    return _create(open_clip, name, str(path), spec, force_quick_gelu=bool(cfg.get("quick_gelu", False)),
                   force_preprocess_cfg=preprocess or None)


def _cached_pretrained(cfg: dict) -> str | None:
    import os

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


def _one_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__


__all__ = ["ClipModel", "Perceptor", "load_clip", "wrap_clip", "resize_for", "clip_names"]
