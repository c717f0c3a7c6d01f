"""Where runs happen: the device, the precision, and the loaded models kept between runs.

The web UI, compare, telephone and notebooks keep one :class:`Session` so a model loads once.
A model's cache key holds everything it was built from: a generator's spec and its options
object (BigGAN's truncation, classes, …), a CLIP model's spec.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from .errors import UserError
from .generators import Generator, load_generator, resolve
from .perceptor import ClipModel, Perceptor, load_clip


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("device cuda was asked for but no CUDA GPU is available: set device to cpu or auto (--device)")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise UserError("device mps was asked for but Apple's MPS is not available: set device to cpu or auto "
                        "(--device)")
    return torch.device(name)


def resolve_precision(name: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for a ``precision`` value, or None for plain fp32.

    'auto': bf16 on CUDA GPUs that support it (else fp16); on a CPU with native bf16 arithmetic
    (AVX512-BF16 or AMX), bf16 (see benchmarks/RESULTS.md for the speed and loss-curve
    measurements behind this); fp32 elsewhere (MPS, CPUs that would emulate bf16). ``fp32`` is
    the setting for reruns that are bit-identical across machines.
    """
    if name == "fp32":
        return None
    if name == "bf16":
        return torch.bfloat16
    if name == "fp16":
        return torch.float16
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "cpu" and cpu_has_native_bf16():
        return torch.bfloat16
    return None


def cpu_has_native_bf16() -> bool:
    """Whether this CPU does bf16 arithmetic in hardware (AMX tiles or AVX512-BF16), per torch."""
    checks = [getattr(torch.cpu, n, None) for n in ("_is_amx_tile_supported", "_is_avx512_bf16_supported")]
    return any(bool(check()) for check in checks if check is not None)


class Session:
    """Keeps loaded models between runs on one device."""

    def __init__(self, device: str = "auto", offline: bool = False, progress: bool = True) -> None:
        self.device = resolve_device(device)
        self.offline = offline
        self.progress = progress
        self._generators: dict[tuple, Generator] = {}
        self._given: dict[str, Generator] = {}
        self._clips: dict[str, ClipModel] = {}

    def generator(self, spec: str, settings: Any = None) -> Generator:
        """The generator a spec names, built with the options ``settings`` give its kind."""
        from .settings import Settings

        if spec in self._given:
            return self._given[spec]
        key = (spec, *resolve(spec, settings if settings is not None else Settings()))
        if key not in self._generators:
            self._generators[key] = load_generator(spec, self.device, settings, offline=self.offline,
                                                   progress=self.progress)
        return self._generators[key]

    def perceptor(self, specs: Sequence[str]) -> Perceptor:
        for spec in specs:
            if spec not in self._clips:
                self._clips[spec] = load_clip(spec, self.device, offline=self.offline)
        return Perceptor([self._clips[s] for s in specs])

    def add_generator(self, spec: str, generator: Generator) -> None:
        """Use an already built generator for ``spec`` whatever the options (the benchmark's
        random-weight models)."""
        self._given[spec] = generator

    def add_clip(self, spec: str, model: ClipModel) -> None:
        self._clips[spec] = model


__all__ = ["Session", "resolve_device", "resolve_precision", "cpu_has_native_bf16"]
