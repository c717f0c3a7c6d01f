"""Loading BigGAN-deep checkpoints in the published ``pytorch-pretrained-biggan`` layout (a folder
with ``config.json`` + ``pytorch_model.bin``, a plain state dict read with ``weights_only=True``),
and the BigGAN's entry in the generator registry (:data:`KIND`, with its :class:`Options`).
"""

from __future__ import annotations

import json
import pickle
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from ..errors import MissingWeightsError, UserError
from .base import GeneratorKind
from .biggan import BigGANGenerator, _WeightsMismatch

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "pytorch_model.bin"


@dataclass(frozen=True)
class Options:
    """The BigGAN's options: Settings fields of the same names (their defaults and help live there)."""

    truncation: float
    max_classes: int | None
    classes: tuple[str, ...]
    ema_decay: float
    latent_loss_weight: float
    class_loss_weight: float


def looks_like_biggan(path: str | Path) -> bool:
    """True for a folder holding ``config.json`` and ``pytorch_model.bin`` (the published layout)."""
    p = Path(path)
    return p.is_dir() and (p / CONFIG_NAME).is_file() and (p / WEIGHTS_NAME).is_file()


def load_biggan(folder_or_files: str | Path | Sequence[str | Path], device: str | torch.device = "cpu",
                **knobs: Any) -> BigGANGenerator:
    """Load a published BigGAN-deep checkpoint onto ``device``.

    ``folder_or_files``: a folder with ``config.json`` + ``pytorch_model.bin``; one of those two
    files (the other is looked for beside it); or the pair of paths (the ``.json`` one is the config).
    ``knobs`` are :class:`BigGANGenerator`'s keyword arguments (the fields of :class:`Options`).
    """
    config_path, weights_path = _resolve_files(folder_or_files)
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise UserError(f"cannot read BigGAN config {config_path}: {e}") from None
    if not isinstance(config, dict):
        raise UserError(f"BigGAN config {config_path} must be a JSON object")
    try:
        state_dict = torch.load(weights_path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UserError(f"cannot load BigGAN weights {weights_path} as a plain state dict "
                        f"(only tensors are accepted): {first}") from None
    if not isinstance(state_dict, dict):
        raise UserError(f"BigGAN weights {weights_path} are not a state dict")
    try:
        generator = BigGANGenerator(config, state_dict, **knobs)
    except _WeightsMismatch as e:
        raise UserError(f"{weights_path} does not fit {config_path}: {e}") from None
    return generator.to(device)


# ---------------------------------------------------------------------------- internals
def _resolve_files(folder_or_files: str | Path | Sequence[str | Path]) -> tuple[Path, Path]:
    """(config.json path, pytorch_model.bin path), each checked to exist."""
    if isinstance(folder_or_files, (str, Path)):
        p = Path(folder_or_files).expanduser()
        folder = p.parent if p.is_file() else p
        config_path, weights_path = folder / CONFIG_NAME, folder / WEIGHTS_NAME
        if p.is_file() and p.name not in (CONFIG_NAME, WEIGHTS_NAME):
            # A renamed file: take it as whichever of the two it looks like.
            if p.suffix == ".json":
                config_path = p
            else:
                weights_path = p
    else:
        paths = [Path(x).expanduser() for x in folder_or_files]
        configs = [x for x in paths if x.suffix == ".json"]
        others = [x for x in paths if x.suffix != ".json"]
        if len(paths) != 2 or len(configs) != 1:
            raise UserError(f"give a BigGAN folder, or its two files ({CONFIG_NAME} and {WEIGHTS_NAME}); "
                            f"got {[str(x) for x in paths]}")
        config_path, weights_path = configs[0], others[0]
    for path, what in ((config_path, "config"), (weights_path, "weights")):
        if not path.is_file():
            raise MissingWeightsError(f"BigGAN {what} file not found: {path} "
                                      f"(a BigGAN folder holds {CONFIG_NAME} and {WEIGHTS_NAME})")
    return config_path, weights_path




def _from_files(files: dict[str, Path], device: Any, options: Options) -> BigGANGenerator:
    return load_biggan(files["weights"].parent, device, **asdict(options))


def _from_path(path: Path, device: Any, options: Options) -> BigGANGenerator:
    return load_biggan(path, device, **asdict(options))


KIND = GeneratorKind("biggan", options=Options, from_files=_from_files, detect=looks_like_biggan,
                     from_path=_from_path, layout=f"a BigGAN folder with {CONFIG_NAME} + {WEIGHTS_NAME}")

__all__ = ["load_biggan", "looks_like_biggan", "Options", "KIND", "CONFIG_NAME", "WEIGHTS_NAME"]
