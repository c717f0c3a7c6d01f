"""The web UI's Animate tab over HTTP (gradio_client against a real server), on tiny models."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

pytest.importorskip("gradio")
pytest.importorskip("gradio_client")

from gradio_client import Client
from gradio_client.exceptions import ValidationError

from clipguide import api, webui
from clipguide.output import read_record
from conftest import widget_value

AT_THE_DOOR = (ValidationError, __import__("httpx").HTTPStatusError)
LIMITS = webui.Limits(max_size=64, max_steps=500, max_seeds=2, max_prompt_chars=300, max_frames=30)
BASE = dict(prompt="a castle\n2: a forest", style="none", frames=3, steps_per_frame=2, zoom="1.1", angle="0",
            translate_x="0", translate_y="0", fps=None, generator="tiny", clip=["tiny"], width=32, height=32, steps=3,
            seed=3, cutn=2, augments=["noise"], lr=None)


def animate_args(**changes) -> list:
    defaults = {n: widget_value(n) for n in webui.animate_inputs()}
    values = {**defaults, **BASE, **changes}
    return [values[n] for n in webui.animate_inputs()]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from conftest import serve, write_tiny_clip
    from tiny_models import write_tiny_vqgan_safetensors

    root = tmp_path_factory.mktemp("webui-models")
    blocks = webui.build_app(limits=LIMITS, session=api.Session("cpu"),
                             generators={"tiny": str(write_tiny_vqgan_safetensors(root / "vqgan.safetensors"))},
                             clips={"tiny": str(write_tiny_clip(root / "clip"))})
    with serve(blocks):
        yield blocks


@pytest.fixture
def client(server):
    return Client(server.local_url, verbose=False)


def frames_in(video: str) -> int:
    import imageio_ffmpeg

    return imageio_ffmpeg.count_frames_and_secs(video)[0]


def test_animate_returns_the_video_and_frames_with_their_settings(server, client):
    preview, status, video = client.predict(*animate_args(), api_name="/animate")
    assert status.startswith("done: 3 frames at 12 fps") and preview
    assert frames_in(video["video"] if isinstance(video, dict) else video) == 3
    root = Path(server.clipguide._root.name)  # the session's folder on the server
    frames = sorted(next(root.rglob("a-castle-3")).glob("[0-9]*.png"))
    record = read_record(frames[2])
    assert record.kind == "animation" and record.source["frame"] == 2
    assert record.settings["prompt"] == "a castle ^ 2: a forest" and record.source["animation"]["zoom"] == "1.1"


def test_bad_motion_and_caps_are_refused_before_the_queue(client):
    with pytest.raises(ValidationError, match="zoom '0:1, x' does not parse"):
        client.predict(*animate_args(zoom="0:1, x"), api_name="/animate")
    with pytest.raises(AT_THE_DOOR):
        client.predict(*animate_args(frames=31), api_name="/animate")
    with pytest.raises(ValidationError, match="the story has 2 parts but the animation only 1 frames"):
        client.predict(*animate_args(prompt="a castle\na forest", frames=1), api_name="/animate")


def test_stop_keeps_the_finished_frames_and_their_video(server):
    client = Client(server.local_url, verbose=False)
    job = client.submit(*animate_args(frames=30, steps_per_frame=40), api_name="/animate")
    end = time.monotonic() + 300
    while not any(out[1].startswith("frame 3 ") for out in job.outputs()):
        assert time.monotonic() < end, "timed out waiting for frame 3"
        time.sleep(0.05)
    assert client.predict(api_name="/stop") == "stopping…"
    _, status, video = job.result()
    assert status.startswith("stopped after") and "of 30 frames" in status
    kept = int(status.split()[2])
    assert kept >= 2 and frames_in(video["video"] if isinstance(video, dict) else video) == kept
