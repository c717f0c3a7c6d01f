"""Reading and writing VQGAN checkpoints: taming's Lightning ``.ckpt`` + ``model.yaml``, and
clipguide's pickle-free ``.safetensors`` (config in its metadata). Also the VQGAN's entry in the
generator registry (:data:`KIND`).
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from ..checkpoints import load_state_dict, read_safetensors, save_safetensors
from ..errors import MissingWeightsError, UserError
from .base import GeneratorKind
from .vqgan import VQGANGenerator

__all__ = ["load_vqgan", "convert_to_safetensors", "read_taming_yaml", "find_taming_yaml", "cached_conversion_path",
           "looks_like_vqgan", "FORMAT", "KIND"]

#: ``format`` metadata value of clipguide's VQGAN safetensors files.
FORMAT = "clipguide-vqgan"
#: File names a VQGAN folder may hold, in the order they are tried.
FOLDER_FILES = ("model.safetensors", "vqgan.safetensors", "model.ckpt")

# taming's model.target → quantizer kind. Matched on the class name so forks that vendor taming
# under another package (``image_synthesis.taming.models.vqgan.GumbelVQ``) load too.
_TARGETS = {"VQModel": "vq", "GumbelVQ": "gumbel"}


def read_taming_yaml(path: str | os.PathLike[str]) -> dict[str, Any]:
    """taming's ``model.params`` from a model.yaml, plus ``quantizer`` from ``model.target``."""
    import yaml

    path = Path(path)
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"VQGAN config {path} not found; download the model.yaml that belongs to the checkpoint") from None
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        raise UserError(f"{path} is not valid YAML ({type(err).__name__}); download the model's model.yaml again") from None
    model = doc.get("model") if isinstance(doc, dict) else None
    if not isinstance(model, dict) or not isinstance(model.get("params"), dict):
        raise UserError(f"{path} has no model.params section; it is not a taming VQGAN model.yaml")
    target = str(model.get("target", "taming.models.vqgan.VQModel"))
    kind = _TARGETS.get(target.rsplit(".", 1)[-1])
    if kind is None:
        raise UserError(
            f"{path}: model.target {target!r} is not supported; clipguide loads "
            "taming.models.vqgan.VQModel and taming.models.vqgan.GumbelVQ checkpoints"
        )
    return {**model["params"], "quantizer": kind}


def find_taming_yaml(ckpt: str | os.PathLike[str]) -> Path:
    """The config beside a .ckpt: ``<stem>.yaml`` or ``model.yaml``; UserError naming both if absent."""
    ckpt = Path(ckpt)
    candidates = [ckpt.with_suffix(".yaml"), ckpt.parent / "model.yaml"]
    for cand in candidates:
        if cand.is_file():
            return cand
    raise UserError(
        f"no VQGAN config for {ckpt}: expected {candidates[0]} or {candidates[1]}; "
        "download the model.yaml published with the checkpoint and put it there"
    )


def cached_conversion_path(ckpt: str | os.PathLike[str]) -> Path:
    """Where the pickle-free copy of ``ckpt`` lives: ``model.ckpt`` → ``model.clipguide.safetensors``."""
    ckpt = Path(ckpt)
    return ckpt.with_name(ckpt.stem + ".clipguide.safetensors")


def load_vqgan(path: str | os.PathLike[str], config_yaml: str | os.PathLike[str] | None = None,
               device: str | torch.device = "cpu", *, write_cache: bool = True) -> VQGANGenerator:
    """Load a VQGAN from a clipguide ``.safetensors`` or a taming ``.ckpt`` + YAML.

    For a ``.ckpt`` the YAML defaults to the one beside it (see :func:`find_taming_yaml`). A
    converted copy next to the checkpoint (:func:`cached_conversion_path`) is used when it is
    up to date, and written after the first load when ``write_cache`` (best effort: a read-only
    folder just means no cache), so later loads skip the slow restricted unpickling.
    """
    path = Path(path)
    if path.suffix == ".safetensors":
        tensors, metadata = read_safetensors(path)
        return _from_clipguide(tensors, metadata, path, device)

    if not path.is_file():
        raise MissingWeightsError(f"VQGAN checkpoint {path} not found; download it (`clipguide weights download`) or fix the path")
    yaml_path = Path(config_yaml) if config_yaml is not None else find_taming_yaml(path)
    cache = cached_conversion_path(path)
    if _cache_is_fresh(cache, path, yaml_path):
        tensors, metadata = read_safetensors(cache)
        return _from_clipguide(tensors, metadata, cache, device)

    model = _from_taming(path, yaml_path)
    if write_cache:
        with contextlib.suppress(OSError):
            _save(model, cache, source=path)
    return model.to(device)


def convert_to_safetensors(ckpt: str | os.PathLike[str], yaml_path: str | os.PathLike[str] | None,
                           out_path: str | os.PathLike[str]) -> Path:
    """Write the clipguide safetensors form of a taming checkpoint (no ``loss.*``, config in metadata)."""
    ckpt = Path(ckpt)
    yaml_path = Path(yaml_path) if yaml_path is not None else find_taming_yaml(ckpt)
    return _save(_from_taming(ckpt, yaml_path), Path(out_path), source=ckpt)


def _from_taming(ckpt: Path, yaml_path: Path) -> VQGANGenerator:
    params = read_taming_yaml(yaml_path)
    model = VQGANGenerator.from_config(params)
    sd = load_state_dict(ckpt, lightning=True)  # whatever its suffix, it is a Lightning pickle
    # loss.*: discriminator + LPIPS, training only. quantize.used: index remapping (see from_config).
    sd = {k: v for k, v in sd.items() if not k.startswith("loss.") and k != "quantize.used"}
    _load_strict(model, sd, ckpt, f"its config {yaml_path}")
    return model


def _from_clipguide(tensors: dict[str, torch.Tensor], metadata: Mapping[str, str], path: Path,
                    device: str | torch.device) -> VQGANGenerator:
    if metadata.get("format") != FORMAT or "config" not in metadata:
        raise UserError(
            f"{path} is not a clipguide VQGAN file (metadata format={metadata.get('format')!r}); "
            "pass the taming model.ckpt with its model.yaml instead"
        )
    try:
        params = json.loads(metadata["config"])
    except json.JSONDecodeError:
        raise UserError(f"{path} has an unreadable config in its metadata; convert the checkpoint again") from None
    model = VQGANGenerator.from_config(params)
    _load_strict(model, tensors, path, "its config metadata")
    return model.to(device)


def _load_strict(model: VQGANGenerator, sd: Mapping[str, torch.Tensor], path: Path, against: str) -> None:
    try:
        result = model.load_state_dict(sd, strict=False)
    except RuntimeError as err:  # shape mismatches
        first = next((ln.strip() for ln in str(err).splitlines() if "size mismatch" in ln), str(err).splitlines()[0])
        raise UserError(f"{path} does not match {against} ({first[:200]}); use the config published with it") from None
    problems = [f"missing {', '.join(result.missing_keys[:3])}" if result.missing_keys else "",
                f"unexpected {', '.join(result.unexpected_keys[:3])}" if result.unexpected_keys else ""]
    if any(problems):
        detail = "; ".join(p for p in problems if p)
        raise UserError(f"{path} does not match {against} ({detail}); use the config published with it")
    model.eval().requires_grad_(False)


def _save(model: VQGANGenerator, out: Path, *, source: Path) -> Path:
    st = source.stat()
    metadata = {"format": FORMAT, "config": json.dumps(model.config),
                "source": source.name, "source_size": str(st.st_size)}
    return save_safetensors(model.state_dict(), out, metadata)


def _cache_is_fresh(cache: Path, ckpt: Path, yaml_path: Path) -> bool:
    """A converted copy counts only if it is newer than the ckpt, was made from a ckpt of the same
    size, and holds the same architecture config as the YAML being asked for."""
    try:
        c, k = cache.stat(), ckpt.stat()
    except OSError:
        return False
    if c.st_mtime < k.st_mtime:
        return False
    from safetensors import safe_open

    try:
        with safe_open(str(cache), framework="pt") as f:
            meta = f.metadata() or {}
        cached_config = json.loads(meta.get("config", "null"))
    except Exception:  # an unreadable cache is simply rebuilt
        return False
    try:
        wanted = VQGANGenerator.config_of(read_taming_yaml(yaml_path))
    except (KeyError, TypeError, ValueError):  # a broken YAML: the full load reports it properly
        return False
    return meta.get("format") == FORMAT and meta.get("source_size") == str(k.st_size) and cached_config == wanted




def looks_like_vqgan(path: Path) -> bool:
    """A ``.ckpt`` or ``.safetensors`` file, or a folder holding one under a known name."""
    if path.is_dir():
        return any((path / name).is_file() for name in FOLDER_FILES)
    return path.suffix in (".safetensors", ".ckpt")


def _from_path(path: Path, device: Any, options: Any) -> VQGANGenerator:
    if path.is_dir():
        path = next(path / name for name in FOLDER_FILES if (path / name).is_file())
    return load_vqgan(path, None, device)  # a .ckpt finds its YAML beside it (or says where to put it)


def _from_files(files: dict[str, Path], device: Any, options: Any) -> VQGANGenerator:
    return load_vqgan(files["checkpoint"], files.get("config"), device)


KIND = GeneratorKind("vqgan", from_files=_from_files, detect=looks_like_vqgan, from_path=_from_path,
                     layout="a VQGAN model.ckpt with model.yaml beside it, or a .safetensors file")
