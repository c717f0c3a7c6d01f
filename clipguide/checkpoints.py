"""Load checkpoint files without ever running code that a file brings with it.

Formats:

* ``.safetensors`` — plain tensors plus string metadata; nothing to execute, loaded directly.
* ``.pt`` / ``.pth`` / ``.bin`` (and any other suffix) — ``torch.load(weights_only=True)``, torch's
  own restricted unpickler. A file that needs anything more is refused.
* ``.ckpt`` (PyTorch Lightning) — ``weights_only=True`` first. The published taming VQGAN
  checkpoints also pickle Lightning callback objects, numpy scalars and config objects, which
  ``weights_only`` rejects, so these fall back to :class:`_RestrictedUnpickler`: the globals
  that tensors need are allowed, a short deny-list of code-running modules (``os``,
  ``subprocess``, ``builtins.eval``, …) makes the load fail, and every other global becomes an
  inert placeholder class that is never imported and whose "calls" only record arguments.
  Only the ``state_dict`` survives, so nothing else from the file reaches the program.

``torch.load(pickle_module=...)`` is the hook: torch subclasses ``pickle_module.Unpickler`` and
calls ``super().find_class`` for every global except storage types (which it resolves itself),
so our ``find_class`` sees everything the pickle asks for. (Checked against torch 2.14's
``serialization.py``: ``_load`` and ``_legacy_load`` both build ``UnpicklerWrapper`` that way.)
"""

from __future__ import annotations

import contextlib
import os
import pickle
import types
import zipfile
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from .errors import MissingWeightsError, UserError

__all__ = ["load_state_dict", "save_safetensors", "read_safetensors", "CheckpointSecurityError"]


class CheckpointSecurityError(UserError):
    """The file asks to run code on load (a malicious or tampered checkpoint); it was not loaded."""


def _corrupt(path: Path, err: BaseException) -> UserError:
    reason = " ".join(str(err).split()).split(". ")[0]  # first sentence: torch adds paragraphs
    reason = (reason[:157] + "...") if len(reason) > 160 else (reason or type(err).__name__)
    return UserError(
        f"{path} is truncated or corrupt ({type(err).__name__}: {reason}); delete it and download it "
        "again (`clipguide weights verify` checks the cached files)"
    )


# --------------------------------------------------------------------------- restricted unpickler

def _allowed_globals() -> dict[tuple[str, str], Any]:
    """Exactly what a state dict of plain tensors needs (storage classes are resolved by torch)."""
    import _codecs

    allowed: dict[tuple[str, str], Any] = {
        ("collections", "OrderedDict"): OrderedDict,
        ("torch._utils", "_rebuild_tensor"): torch._utils._rebuild_tensor,
        ("torch._utils", "_rebuild_tensor_v2"): torch._utils._rebuild_tensor_v2,
        ("torch._utils", "_rebuild_parameter"): torch._utils._rebuild_parameter,
        ("torch", "Size"): torch.Size,
        ("torch", "device"): torch.device,
        # Protocol-2 pickles store bytes as _codecs.encode(str, "latin1").
        ("_codecs", "encode"): _codecs.encode,
        ("builtins", "set"): set,
        ("builtins", "frozenset"): frozenset,
        ("builtins", "complex"): complex,
        ("builtins", "bytearray"): bytearray,
        ("builtins", "slice"): slice,
    }
    for name in dir(torch):  # dtypes pickle as globals: torch.float32, torch.int64, …
        value = getattr(torch, name, None)
        if isinstance(value, torch.dtype):
            allowed[("torch", name)] = value
    return allowed


# Modules and builtins whose only use in a checkpoint is to run code. A reference to one of them
# is refused outright (clearer than silently neutralising it); every other unknown global —
# Lightning callbacks, numpy scalars, config classes, even builtins.dict — is neutralised.
_DENIED_MODULES = frozenset({
    "os", "posix", "nt", "subprocess", "sys", "importlib", "runpy", "shutil", "socket",
    "pickle", "_pickle", "marshal", "ctypes", "code", "codeop", "pty", "webbrowser",
    "multiprocessing", "pdb", "timeit", "commands", "signal",
})
_DENIED_BUILTINS = frozenset({
    "eval", "exec", "compile", "__import__", "open", "getattr", "setattr", "delattr", "globals",
    "locals", "vars", "input", "breakpoint", "exit", "quit", "help", "print", "memoryview",
})


class _Inert:
    """Stands in for a class or function the checkpoint names but clipguide does not trust.

    Calling, constructing, setting state or adding items only records the arguments; nothing
    the file names is imported or executed.
    """

    _pickle_global = "?"

    def __new__(cls, *args: Any, **kwargs: Any) -> _Inert:
        obj = object.__new__(cls)
        obj.__dict__["_args"] = (args, kwargs)
        return obj

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __setstate__(self, state: Any) -> None:
        self.__dict__["_state"] = state

    def __setitem__(self, key: Any, value: Any) -> None:
        self.__dict__.setdefault("_items", {})[key] = value

    def append(self, value: Any) -> None:
        self.__dict__.setdefault("_list", []).append(value)

    def extend(self, values: Any) -> None:
        self.__dict__.setdefault("_list", []).extend(values)

    def __repr__(self) -> str:
        return f"<inert {self._pickle_global}>"


class _RestrictedUnpickler(pickle.Unpickler):
    """``find_class`` never imports: allow-listed globals, refusal, or an inert placeholder."""

    _allowed: dict[tuple[str, str], Any] | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._placeholders: dict[tuple[str, str], type] = {}
        if _RestrictedUnpickler._allowed is None:
            _RestrictedUnpickler._allowed = _allowed_globals()

    def find_class(self, module: str, name: str) -> Any:
        key = (module, name)
        allowed = self._allowed or {}
        if key in allowed:
            return allowed[key]
        top = module.split(".", 1)[0]
        if top in _DENIED_MODULES or (top in ("builtins", "__builtin__") and name in _DENIED_BUILTINS):
            raise _Refused(f"{module}.{name}")
        if key not in self._placeholders:
            self._placeholders[key] = type(
                f"Inert[{module}.{name}]", (_Inert,), {"_pickle_global": f"{module}.{name}"}
            )
        return self._placeholders[key]


class _Refused(pickle.UnpicklingError):
    pass


def _restricted_pickle_module() -> types.ModuleType:
    """A stand-in for the ``pickle`` module, for ``torch.load(pickle_module=...)``."""
    mod = types.ModuleType("clipguide_restricted_pickle")
    mod.Unpickler = _RestrictedUnpickler  # type: ignore[attr-defined]
    mod.UnpicklingError = pickle.UnpicklingError  # type: ignore[attr-defined]
    mod.load = lambda f, **kw: _RestrictedUnpickler(f, **kw).load()  # type: ignore[attr-defined]
    return mod


def _is_torchscript(path: Path) -> bool:
    """torch.load hands TorchScript archives to torch.jit.load when weights_only is off."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as zf:
        return any(n.rsplit("/", 1)[-1] == "constants.pkl" for n in zf.namelist())


# --------------------------------------------------------------------------- public API

def load_state_dict(path: str | os.PathLike[str], *, lightning: bool | None = None) -> dict[str, torch.Tensor]:
    """The tensors of a checkpoint, on CPU, loaded without running code from the file.

    For a Lightning ``.ckpt`` (or any pickle holding a ``state_dict`` entry) only that entry
    is returned. ``lightning`` says whether the file may need the restricted-unpickler fallback
    (default: only for the ``.ckpt`` suffix; pass True for a Lightning checkpoint under another
    name). Raises :class:`MissingWeightsError` for a missing file, :class:`UserError` for
    a truncated/corrupt one, :class:`CheckpointSecurityError` for one that would run code.
    """
    path = Path(path)
    if not path.is_file():
        raise MissingWeightsError(f"checkpoint {path} not found; download it (`clipguide weights download`) or fix the path")
    if path.suffix == ".safetensors":
        return read_safetensors(path)[0]

    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        if not (lightning if lightning is not None else path.suffix == ".ckpt"):
            raise _refuse_or_corrupt(path, err) from err
        obj = _load_restricted(path)
    except Exception as err:  # zip/stream/EOF errors: the bytes are not a whole checkpoint
        raise _corrupt(path, err) from err
    return _extract_state_dict(obj, path)


def _load_restricted(path: Path) -> Any:
    try:
        if _is_torchscript(path):
            raise CheckpointSecurityError(f"{path} is a TorchScript archive, not a checkpoint; refusing to load it")
        return torch.load(path, map_location="cpu", weights_only=False, pickle_module=_restricted_pickle_module())
    except _Refused as err:
        raise CheckpointSecurityError(
            f"{path} asks to run code ({err}) when loaded, which a checkpoint never needs; it was not loaded. "
            "Delete it and download it again from a trusted source"
        ) from None
    except UserError:
        raise
    except Exception as err:
        raise _corrupt(path, err) from err


def _refuse_or_corrupt(path: Path, err: BaseException) -> UserError:
    """weights_only rejected a non-.ckpt file: say whether it holds objects or is just damaged."""
    with contextlib.suppress(Exception):
        unsafe = torch.serialization.get_unsafe_globals_in_checkpoint(path)
        if unsafe:
            shown = ", ".join(sorted(unsafe)[:3])
            return CheckpointSecurityError(
                f"{path} holds Python objects ({shown}) besides tensors; clipguide only loads plain "
                "weights from such files. Convert it to .safetensors with a tool you trust, or re-download it"
            )
    return _corrupt(path, err)


def _extract_state_dict(obj: Any, path: Path) -> dict[str, torch.Tensor]:
    if isinstance(obj, Mapping) and isinstance(obj.get("state_dict"), Mapping):
        obj = obj["state_dict"]
    if not isinstance(obj, Mapping) or not obj:
        raise UserError(f"{path} holds no state dict of tensors; check that it is a model checkpoint")
    out: dict[str, torch.Tensor] = {}
    for key, value in obj.items():
        if not isinstance(key, str) or not isinstance(value, torch.Tensor):
            raise UserError(
                f"{path}: state dict entry {key!r} is not a tensor ({type(value).__name__}); "
                "check that it is a model checkpoint"
            )
        # detach(): a fresh tensor without any hooks or attributes the pickle may have set.
        out[key] = value.detach()
    return out


def save_safetensors(tensors: Mapping[str, torch.Tensor], path: str | os.PathLike[str],
                     metadata: Mapping[str, str]) -> Path:
    """Write ``tensors`` (+ string ``metadata``) atomically: a temp file in the same folder, then rename."""
    from safetensors.torch import save_file

    path = Path(path)
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
        raise TypeError("safetensors metadata must map str to str")
    seen: set[int] = set()
    plain: dict[str, torch.Tensor] = {}
    for key, value in tensors.items():
        value = value.detach().to("cpu").contiguous()
        ptr = value.untyped_storage().data_ptr()
        if ptr in seen and value.numel():  # safetensors refuses tensors that share memory
            value = value.clone()
        seen.add(value.untyped_storage().data_ptr())
        plain[key] = value
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        save_file(plain, str(tmp), metadata=dict(metadata))
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    return path


def read_safetensors(path: str | os.PathLike[str],
                     device: str | torch.device = "cpu") -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """``(tensors, metadata)`` of a safetensors file; UserError if it is truncated or corrupt."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise MissingWeightsError(f"checkpoint {path} not found; download it (`clipguide weights download`) or fix the path")
    try:
        with safe_open(str(path), framework="pt", device=str(device)) as f:
            metadata = dict(f.metadata() or {})
            tensors = {key: f.get_tensor(key) for key in f.keys()}
    except Exception as err:
        raise _corrupt(path, err) from err
    return tensors, metadata
