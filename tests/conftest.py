"""Shared fixtures: tiny models of the real architectures, written to disk in the real formats.

Nothing here touches the network. The tiny CLIP is an open_clip model of the standard CLIP
architecture (ViT + text transformer, standard tokenizer) saved in open_clip's hub layout, so it
loads through exactly the code path a downloaded model takes.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
from pathlib import Path

import pytest

# Tests never reach the network, and never use the user's real caches.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

TINY_CLIP_CFG = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": 2, "width": 32, "patch_size": 8, "head_width": 16},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 2},
}


def write_tiny_clip(folder: Path, seed: int = 0) -> Path:
    """A random-weight open_clip CLIP in the hub layout (open_clip_config.json + safetensors)."""
    import open_clip
    import torch
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    config = {"model_cfg": TINY_CLIP_CFG,
              "preprocess_cfg": {"mean": [0.48145466, 0.4578275, 0.40821073],
                                 "std": [0.26862954, 0.26130258, 0.27577711], "image_size": 32}}
    (folder / "open_clip_config.json").write_text(json.dumps(config))
    torch.manual_seed(seed)
    model = open_clip.CLIP(**TINY_CLIP_CFG)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(folder / "open_clip_model.safetensors"))
    return folder


def load_script(relative_path: str):
    """Import one of the repo's scripts (benchmarks/, scripts/: not in the package) as a module."""
    import importlib.util

    path = Path(__file__).resolve().parents[1] / relative_path
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = module  # as an import would: dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def judge_pngs(paths) -> list[dict]:
    """What the shapes-world judge (not CLIP) sees in saved PNGs: one verdict dict per file."""
    import torch
    from PIL import Image
    from torchvision.transforms.functional import to_tensor

    from clipguide.demo.judge import Judge

    return Judge().predict(torch.stack([to_tensor(Image.open(p).convert("RGB")) for p in paths]))


@contextlib.contextmanager
def serve(blocks):
    """Launch a built web UI on a free 127.0.0.1 port; close it and its temp folder afterwards."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    blocks.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    try:
        yield blocks
    finally:
        blocks.close()
        blocks.clipguide.close()


@pytest.fixture(scope="session")
def tiny_clip_dir(tmp_path_factory) -> Path:
    return write_tiny_clip(tmp_path_factory.mktemp("tiny_clip"))


@pytest.fixture(autouse=True)
def _no_network(monkeypatch):
    """Any connection beyond this machine fails the test loudly (local test servers are fine)."""
    import socket

    real_connect = socket.socket.connect

    def guarded(sock, address):
        host = address[0] if isinstance(address, tuple) else address
        if isinstance(host, str) and not (host.startswith("127.") or host in ("localhost", "::1") or host.startswith("/")):
            raise AssertionError(f"test tried to reach the network: {address!r}")
        return real_connect(sock, address)

    monkeypatch.setattr(socket.socket, "connect", guarded)


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path, monkeypatch):
    """Each test gets its own weights cache and no user presets."""
    monkeypatch.setenv("CLIPGUIDE_HOME", str(tmp_path / "clipguide-home"))
    monkeypatch.delenv("CLIPGUIDE_PRESETS", raising=False)


def widget_value(name: str):
    """What a web UI endpoint gets for setting ``name`` when the user leaves its widget alone."""
    from clipguide.settings import Settings

    if name == "losses":  # a table of (loss, weight) rows
        return {"headers": ["loss", "weight"], "data": [["", ""]]}
    value = getattr(Settings(), name, None)
    return list(value) if isinstance(value, tuple) else value
