"""Safe checkpoint loading: real layouts load, code in a pickle never runs, damage is a UserError."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from clipguide import checkpoints
from clipguide.checkpoints import CheckpointSecurityError, load_state_dict, read_safetensors, save_safetensors
from clipguide.errors import MissingWeightsError, UserError
from tiny_models import FAKE_CALLBACK_MODULE, tiny_vqgan_state_dict, write_taming_checkpoint


def _sd() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {"w": torch.randn(3, 4, generator=g), "b": torch.arange(5)}


def _touch(path: str) -> None:
    """Importable from this test module: a loader that imported pickle globals would call it."""
    Path(path).write_text("ran")


class _Payload:
    """Pickles as a call of ``func(*args)`` — the classic malicious-pickle shape."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def _evil_file(path: Path, payload: _Payload) -> Path:
    torch.save({"state_dict": _sd(), "epoch": 3, "evil": payload}, path)
    return path


# --------------------------------------------------------------------------- the real layout

def test_weights_only_rejects_the_real_layout_but_restricted_loader_reads_it(tmp_path):
    ckpt, _ = write_taming_checkpoint(tmp_path)
    with pytest.raises(pickle.UnpicklingError):  # so the fallback path below is really exercised
        torch.load(ckpt, weights_only=True)
    sd = load_state_dict(ckpt)
    expected = tiny_vqgan_state_dict()
    assert set(expected) <= set(sd)
    assert any(k.startswith("loss.discriminator.") for k in sd)  # load_state_dict keeps them; vqgan drops them
    for key, value in expected.items():
        assert torch.equal(sd[key], value), key
    assert FAKE_CALLBACK_MODULE.split(".")[0] not in sys.modules  # nothing was imported


def test_lightning_objects_need_the_lightning_flag_outside_ckpt_files(tmp_path):
    ckpt, _ = write_taming_checkpoint(tmp_path)
    renamed = ckpt.rename(tmp_path / "last.pth")
    with pytest.raises(CheckpointSecurityError, match="holds Python objects .*ModelCheckpoint"):
        load_state_dict(renamed)
    assert "encoder.conv_in.weight" in load_state_dict(renamed, lightning=True)


def test_plain_torch_files_load_weights_only(tmp_path):
    torch.save(_sd(), tmp_path / "a.pt")
    torch.save({"state_dict": _sd(), "epoch": 1}, tmp_path / "b.bin")
    for name in ("a.pt", "b.bin"):
        sd = load_state_dict(tmp_path / name)
        assert set(sd) == {"w", "b"} and torch.equal(sd["w"], _sd()["w"])


def test_non_tensor_state_dict_is_a_user_error(tmp_path):
    torch.save({"state_dict": {"w": torch.zeros(2), "oops": 3}}, tmp_path / "m.ckpt")
    with pytest.raises(UserError, match="'oops' is not a tensor"):
        load_state_dict(tmp_path / "m.ckpt")


# --------------------------------------------------------------------------- code never runs

@pytest.mark.parametrize(
    "make",
    [
        lambda m: _Payload(os.system, f"touch {m}"),
        lambda m: _Payload(subprocess.call, ["touch", str(m)]),
        lambda m: _Payload(eval, f"open({str(m)!r}, 'w').write('ran')"),
    ],
    ids=["os.system", "subprocess.call", "builtins.eval"],
)
@pytest.mark.parametrize("suffix", [".ckpt", ".pt"])
def test_code_running_pickles_are_refused_without_running(tmp_path, make, suffix):
    marker = tmp_path / "pwned"
    path = _evil_file(tmp_path / f"evil{suffix}", make(marker))
    with pytest.raises(CheckpointSecurityError, match="evil"):
        load_state_dict(path)
    assert not marker.exists()


def test_unknown_callables_are_neutralised_not_called(tmp_path):
    """A global the loader does not know (here an importable function that writes a file) becomes
    an inert placeholder: the weights load and the function is never called."""
    marker = tmp_path / "pwned"
    path = _evil_file(tmp_path / "odd.ckpt", _Payload(_touch, str(marker)))
    sd = load_state_dict(path)
    assert torch.equal(sd["w"], _sd()["w"])
    assert not marker.exists()


def test_restricted_unpickler_placeholders_record_instead_of_running():
    up = checkpoints._RestrictedUnpickler.__new__(checkpoints._RestrictedUnpickler)
    up._placeholders = {}
    cls = up.find_class("numpy.core.multiarray", "scalar")
    obj = cls("anything", b"\x00")
    assert isinstance(obj, checkpoints._Inert) and "numpy.core.multiarray.scalar" in repr(obj)
    assert up.find_class("numpy.core.multiarray", "scalar") is cls
    with pytest.raises(pickle.UnpicklingError):
        up.find_class("posix", "system")


# --------------------------------------------------------------------------- damaged files

@pytest.mark.parametrize("name", ["model.ckpt", "weights.pt", "model.safetensors"])
def test_truncated_file_is_a_user_error_naming_it(tmp_path, name):
    path = tmp_path / name
    if name.endswith(".safetensors"):
        save_safetensors(_sd(), path, {"format": "x"})
    elif name.endswith(".ckpt"):
        path = write_taming_checkpoint(tmp_path)[0]
    else:
        torch.save(_sd(), path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(UserError, match="truncated or corrupt") as info:
        load_state_dict(path)
    assert str(path) in str(info.value) and "clipguide weights verify" in str(info.value)
    assert "\n" not in str(info.value)


def test_garbage_file_is_a_user_error(tmp_path):
    path = tmp_path / "model.ckpt"
    path.write_bytes(b"<html>403 Forbidden</html>")
    with pytest.raises(UserError, match="download it"):
        load_state_dict(path)


def test_missing_file(tmp_path):
    with pytest.raises(MissingWeightsError, match="not found"):
        load_state_dict(tmp_path / "nope.ckpt")


# --------------------------------------------------------------------------- safetensors

def test_safetensors_round_trip_is_atomic(tmp_path):
    base = torch.randn(4, 4)
    tensors = {"a": base, "a_view": base[1:], "t": base.T, "i": torch.arange(3)}
    path = save_safetensors(tensors, tmp_path / "sub" / "x.safetensors", {"format": "test", "k": "v"})
    save_safetensors(tensors, path, {"format": "test", "k": "v2"})  # overwriting is fine
    out, meta = read_safetensors(path)
    assert meta == {"format": "test", "k": "v2"}
    assert set(out) == set(tensors) and all(torch.equal(out[k], tensors[k]) for k in tensors)
    assert sorted(p.name for p in path.parent.iterdir()) == ["x.safetensors"]  # no temp files left
    assert torch.equal(load_state_dict(path)["t"], base.T)
    with pytest.raises(TypeError):
        save_safetensors(tensors, tmp_path / "y.safetensors", {"n": 1})  # type: ignore[dict-item]
    assert not (tmp_path / "y.safetensors").exists()
