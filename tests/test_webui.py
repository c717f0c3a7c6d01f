"""The web UI, driven over HTTP with gradio_client against a real server on 127.0.0.1.

The app runs tiny models written in the real formats (a random open_clip CLIP and a tiny VQGAN),
mapped to the names ``tiny`` by the operator-side ``generators``/``clips`` arguments, exactly
as an operator would map a name to a local checkpoint. The shipped demo models are offered as
``demo`` too, for the test that the prompt really steers the picture.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

pytest.importorskip("gradio")
pytest.importorskip("gradio_client")

from gradio_client import Client, handle_file  # noqa: E402
from gradio_client.exceptions import AppError, ValidationError  # noqa: E402

# A request the server refuses: before it is queued (ValidationError) or, for what only a run finds, by the run.
# Refused at the door: by our validator (ValidationError with the reason) or by a widget's own range or
# choices (a value no slider, radio or dropdown offers: Gradio answers 400 before the queue).
AT_THE_DOOR = (ValidationError, __import__("httpx").HTTPStatusError)
# A request the server refuses, at the door or by the run (what only a run finds out).
REFUSED = (AppError, *AT_THE_DOOR)
from PIL import Image  # noqa: E402

from clipguide import api, webui  # noqa: E402
from clipguide.demo import VQGAN_PATH  # noqa: E402
from clipguide.errors import UserError  # noqa: E402
from clipguide.output import read_record  # noqa: E402
from clipguide.presets import demo_settings  # noqa: E402
from clipguide.settings import Settings  # noqa: E402
from conftest import widget_value  # noqa: E402

DEMO = demo_settings()

LIMITS = webui.Limits(max_size=64, max_steps=5000, max_seeds=3, max_upload_mb=1, max_prompt_chars=300)
# A value per input of the /generate endpoint; the Advanced ones default to the settings' own defaults.
BASE = dict(prompt="a red square", style="none", generator="tiny", clip=["tiny"], width=32, height=32, steps=4,
            seed=7, seeds=2, cutn=2, cut_pow=1.0, lr=None, augments=["affine"], init="random", init_image=None,
            image_prompts=[])


def generate_args(**changes) -> list:
    """The positional values of /generate, in the order webui.generate_inputs() names them."""
    values = {**{n: widget_value(n) for n in webui.generate_inputs()}, **BASE, **changes}
    return [values[n] for n in webui.generate_inputs()]


def compare_args(**changes) -> list:
    values = {**{n: widget_value(n) for n in webui.compare_inputs()}, **BASE,
              "styles": ["baroque"], "seeds": 2, "seed": 0, "steps": 2, **changes}
    return [values[n] for n in webui.compare_inputs()]


def telephone_args(**changes) -> list:
    values = {**{n: widget_value(n) for n in webui.telephone_inputs()}, **BASE, "seeds": 2, "steps": 2, "rounds": 2,
              "style_mode": "every", "start": "fresh", **changes}
    return [values[n] for n in webui.telephone_inputs()]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from conftest import serve, write_tiny_clip
    from tiny_models import write_tiny_vqgan_safetensors

    root = tmp_path_factory.mktemp("webui-models")
    clip = write_tiny_clip(root / "clip")
    vqgan = write_tiny_vqgan_safetensors(root / "vqgan.safetensors")
    # the tiny random models keep most tests fast; the shipped demo models show real steering
    blocks = webui.build_app(limits=LIMITS, session=api.Session("cpu"), generators={"tiny": str(vqgan), "demo": "demo"},
                             clips={"tiny": str(clip), "demo": "demo"})
    with serve(blocks):
        yield blocks


@pytest.fixture
def client(server):
    return Client(server.local_url, verbose=False)


def wait_for(condition, what: str, limit: float = 120.0) -> None:
    """Poll until ``condition()`` holds (a generous limit only guards against a hang)."""
    end = time.monotonic() + limit
    while not condition():
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


# ----------------------------------------------------------------------------- generate
def test_generate_returns_pngs_with_the_settings_in_their_metadata(client):
    preview, status, gallery = client.predict(*generate_args(), api_name="/generate")
    assert status.startswith("done: 4 steps")
    side = webui.PREVIEW_SIDE  # the 32-pixel images are enlarged 8x for the preview only
    assert Image.open(preview).size == (side * 2 + 4, side)  # both seeds side by side
    assert [item["caption"] for item in gallery] == ["seed 7", "seed 8"]
    for item, seed in zip(gallery, (7, 8)):
        path = Path(item["image"])
        assert path.suffix == ".png"
        record = read_record(path)
        stored = record.settings
        assert stored["prompt"] == "a red square" and stored["seed"] == seed and stored["seeds"] == 1
        assert stored["steps"] == 4 and stored["size"] == [32, 32] and stored["cutn"] == 2
        assert stored["generator"].endswith("vqgan.safetensors")  # the operator's spec, not the label
        assert record.steps_done == 4
        assert Image.open(path).size == (32, 32)


@pytest.mark.skipif(not VQGAN_PATH.is_file(), reason="demo models not built")
def test_demo_models_steer_the_background_through_the_web_ui(client):
    """The Generate tab on the shipped demo models: the gallery's PNGs show the ground the prompt asks
    for, judged without CLIP (benchmark rate 95% at these settings, 60 steps for speed: MODEL_CARD.md)."""
    from conftest import judge_pngs

    hits = 0
    for colour in ("red", "blue"):
        args = generate_args(prompt=f"a white square on a {colour} background", generator="demo", clip=["demo"],
                             width=64, height=64, steps=60, seed=0, seeds=2, cutn=DEMO["cutn"],
                             cut_pow=DEMO["cut_pow"], lr=DEMO["lr"], augments=list(DEMO["augments"]))
        _, status, gallery = client.predict(*args, api_name="/generate")
        assert status.startswith("done: 60 steps")
        hits += sum(v["background"] == colour for v in judge_pngs([item["image"] for item in gallery[:2]]))
    assert hits >= 3


def test_the_start_widget_reaches_the_run(client):
    # "mean" is the demo's position setting (MODEL_CARD); a start the API does not know is refused
    _, _, gallery = client.predict(*generate_args(seeds=1, init="mean"), api_name="/generate")
    assert read_record(Path(gallery[0]["image"])).settings["init"] == "mean"
    with pytest.raises(REFUSED):
        client.predict(*generate_args(seeds=1, init="centre"), api_name="/generate")


def test_gallery_keeps_earlier_results_of_the_session(client):
    client.predict(*generate_args(seeds=1, seed=1), api_name="/generate")
    _, _, gallery = client.predict(*generate_args(seeds=1, seed=2), api_name="/generate")
    assert [item["caption"] for item in gallery] == ["seed 2", "seed 1"]


def test_generate_streams_previews(client):
    job = client.submit(*generate_args(steps=12, seeds=1), api_name="/generate")
    job.result()
    statuses = [out[1] for out in job.outputs()]
    steps = [s for s in statuses if s.startswith("step ")]
    assert len(steps) >= 2 and steps[-1].startswith("step 12/12 · loss")
    assert statuses[-1].startswith("done: 12 steps")


def test_over_the_caps_is_refused_before_it_is_queued(client):
    with pytest.raises(AT_THE_DOOR):
        client.predict(*generate_args(width=128), api_name="/generate")
    with pytest.raises(AT_THE_DOOR):
        client.predict(*generate_args(seeds=4), api_name="/generate")
    with pytest.raises(ValidationError, match="over this server's limit of 300"):
        client.predict(*generate_args(prompt="a cat " * 100), api_name="/generate")
    with pytest.raises(ValidationError, match="choose at least one style"):
        client.predict(*compare_args(styles=[]), api_name="/compare")


def test_refused_requests_do_not_wait_for_a_busy_server(server):
    """A long run holds the one device slot; a request over a cap is refused at once all the same."""
    import time as clock

    first, second = Client(server.local_url, verbose=False), Client(server.local_url, verbose=False)
    long_run = first.submit(*generate_args(steps=4000, seeds=1), api_name="/generate")
    wait_for(lambda: any(out[1].startswith("step ") for out in long_run.outputs()), "the long run to start")
    start = clock.monotonic()
    with pytest.raises(AT_THE_DOOR):
        second.predict(*generate_args(steps=6000), api_name="/generate")
    with pytest.raises(ValidationError, match="over this server's limit"):
        second.predict(*generate_args(prompt="x" * 400), api_name="/generate")
    assert clock.monotonic() - start < 10  # not after the long run's turn
    first.predict(api_name="/stop")
    long_run.result()


def test_user_errors_become_one_line_messages(client):
    with pytest.raises(REFUSED, match="the prompt is empty"):
        client.predict(*generate_args(prompt="  "), api_name="/generate")
    with pytest.raises(REFUSED, match="has a weight but no text"):
        client.predict(*generate_args(prompt=":1"), api_name="/generate")


def test_only_named_models_no_paths(client, tmp_path):
    with pytest.raises(REFUSED):
        client.predict(*generate_args(generator=str(tmp_path / "x.safetensors")), api_name="/generate")
    with pytest.raises(REFUSED):
        client.predict(*generate_args(clip=["/etc"]), api_name="/generate")


def test_uploads_init_image_and_image_prompt(client, tmp_path):
    init = tmp_path / "init.png"
    Image.new("RGB", (40, 24), (200, 30, 30)).save(init)
    _, status, gallery = client.predict(
        *generate_args(seeds=1, init_image=handle_file(str(init)), image_prompts=[handle_file(str(init))]),
        api_name="/generate")
    assert status.startswith("done")
    stored = read_record(Path(gallery[0]["image"])).settings
    assert stored["init_image"] and len(stored["image_prompts"]) == 1


def test_non_image_upload_is_refused(client, tmp_path):
    fake = tmp_path / "fake.png"
    fake.write_text("not a picture")
    with pytest.raises(REFUSED):
        client.predict(*generate_args(image_prompts=[handle_file(str(fake))]), api_name="/generate")


def test_stop_keeps_the_latest_image_and_runs_wait_their_turn(server):
    """Stop ends a long run early and saves its image; meanwhile a second run waits in the queue."""
    from gradio_client.utils import Status

    first, second = Client(server.local_url, verbose=False), Client(server.local_url, verbose=False)
    long_run = first.submit(*generate_args(steps=4000, seeds=1), api_name="/generate")
    wait_for(lambda: any(out[1].startswith("step ") for out in long_run.outputs()), "a preview of the long run")
    queued = second.submit(*generate_args(steps=2, seeds=1), api_name="/generate")
    wait_for(lambda: queued.status().code == Status.IN_QUEUE, "the second run to wait in the queue")
    assert first.predict(api_name="/stop") == "stopping…"
    _, status, gallery = long_run.result()
    assert status.startswith("stopped after") and "of 4000 steps" in status
    done = read_record(Path(gallery[0]["image"])).steps_done
    assert 0 < done < 4000
    assert queued.result()[1].startswith("done: 2 steps")
    assert second.predict(api_name="/stop") == "nothing is running"


# ----------------------------------------------------------------------------- compare
def test_compare_returns_grid_table_and_plot(client):
    grid, table, plot, files = client.predict(*compare_args(), api_name="/compare")
    value = table["value"] if "value" in table else table
    assert value["headers"] == webui.metric_headers()
    assert [row[0] for row in value["data"]] == ["none", "baroque"]
    assert Image.open(grid).size[0] > 2 * 32 and Image.open(plot).format == "PNG"
    assert sorted(Path(f).name for f in files) == ["report.json", "report.md"]


def test_compare_needs_two_seeds(client):
    with pytest.raises(REFUSED):
        client.predict(*compare_args(seeds=1), api_name="/compare")


# ----------------------------------------------------------------------------- telephone
def test_telephone_fills_the_strip_round_by_round_and_saves_every_round(client):
    job = client.submit(*telephone_args(), api_name="/telephone")
    strip, status, table, files = job.result()
    assert status == "done: 2 rounds"
    rows = table["value"]["data"] if "value" in table else table["data"]
    assert [(row[0], row[1]) for row in rows] == [("t0", 0), ("t0", 1), ("t1", 0), ("t1", 1)]
    widths = [Image.open(out[0]).size[0] for out in job.outputs() if out and isinstance(out[0], str)]
    assert widths[0] < widths[-1]  # the strip grew a column per round
    pngs = [f for f in files if Path(f).name.startswith("round-")]
    assert len(pngs) == 4 and {Path(f).name for f in files} >= {"report.md", "report.json", "strip.png"}
    records = {(r.source["trajectory"], r.source["round"]): r for r in map(read_record, pngs)}
    assert sorted(records) == [(0, 0), (0, 1), (1, 0), (1, 1)]
    assert records[1, 1].settings["prompt"] == rows[2][2]  # made from t1's round-0 caption


def test_telephone_stop_keeps_the_finished_rounds(server):
    client = Client(server.local_url, verbose=False)
    job = client.submit(*telephone_args(seeds=1, steps=200, rounds=3), api_name="/telephone")
    wait_for(lambda: any(isinstance(out[1], str) and out[1].startswith("round 2/3") for out in job.outputs()),
             "the second round to start")
    assert client.predict(api_name="/stop_telephone") == "stopping…"
    strip, status, table, files = job.result()
    assert status.startswith("stopped in round 1") and "kept" in status
    rows = table["value"]["data"] if "value" in table else table["data"]
    assert [(row[0], row[1]) for row in rows] == [("t0", 0)]
    assert [read_record(f).source["round"] for f in files] == [0] and Image.open(strip).size[0] > 0


def test_telephone_over_the_round_cap_is_refused_before_it_is_queued(client):
    with pytest.raises(AT_THE_DOOR):
        client.predict(*telephone_args(rounds=LIMITS.max_rounds + 1), api_name="/telephone")
    with pytest.raises(AT_THE_DOOR):
        client.predict(*telephone_args(rounds=0), api_name="/telephone")


# ----------------------------------------------------------------------------- pieces
def test_limits_messages_name_the_cap():
    limits = webui.Limits(max_size=64, max_steps=10, max_seeds=2)
    with pytest.raises(UserError, match="size 128x32 is over this server's limit of 64px"):
        limits.check(Settings(size=(128, 32)))
    with pytest.raises(UserError, match="11 steps is over this server's limit of 10"):
        limits.check(Settings(steps=11))
    with pytest.raises(UserError, match="3 seeds is over this server's limit of 2"):
        limits.check(Settings(steps=1, seeds=3))
    limits.check(Settings(size=(64, 64), steps=10, seeds=2))


def test_check_upload_refuses_server_paths_and_big_files(tmp_path, monkeypatch):
    outside = tmp_path / "x.png"
    Image.new("RGB", (8, 8)).save(outside)
    with pytest.raises(UserError, match="uploaded through this page"):
        webui.check_upload(str(outside), webui.Limits(), "the init image")
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path))
    assert webui.check_upload(str(outside), webui.Limits(), "the init image") == str(outside.resolve())
    big = tmp_path / "big.png"
    big.write_bytes(b"\0" * (2 * 2**20))
    with pytest.raises(UserError, match="over this server's limit of 1 MB"):
        webui.check_upload(str(big), webui.Limits(max_upload_mb=1), "an image prompt")
    text = tmp_path / "t.png"
    text.write_text("hello")
    with pytest.raises(UserError, match="not an image"):
        webui.check_upload(str(text), webui.Limits(), "an image prompt")


def test_default_model_choices_are_names_the_library_knows():
    import open_clip

    gens, clips = webui.default_generators(), webui.default_clips()
    assert gens["demo"] == "demo" and Settings().generator in gens
    assert clips["demo"] == "demo" and clips["demo-wide"] == "demo-wide"  # both shipped demo CLIPs
    assert Settings().clip[0] in clips
    for spec in webui.DEFAULT_CLIPS:
        assert tuple(spec.split("/")) in open_clip.list_pretrained()


def test_main_rejects_bad_caps(capsys):
    assert webui.main(["--max-steps", "0"]) == 2
    assert "--max-steps must be positive" in capsys.readouterr().err
    ns = webui.parser().parse_args([])
    assert (ns.host, ns.port, ns.share) == ("127.0.0.1", 7860, False)


def test_a_style_cannot_lift_a_request_over_the_caps(tmp_path):
    (tmp_path / "long.toml").write_text('name = "long"\nsuffix = ", long"\n[settings]\nsteps = 50\n')
    app = webui.WebApp(webui.Limits(max_steps=20), None, {"g": "g"}, {"c": "c"}, Settings(steps=10), [tmp_path])
    try:
        args = dict(prompt="a cat", generator="g", clip=["c"], width=32, height=32, steps=10, seed=0, seeds=1,
                    cutn=2, cut_pow=1.0, lr=None, augments=[])
        app.settings(style="none", **args)
        with pytest.raises(UserError, match="50 steps is over this server's limit of 20"):
            app.settings(style="long", **args)
        app.settings(style="long", **{**args, "steps": 12})  # chosen by the user: the style leaves it
    finally:
        app.close()


def test_the_loss_table_and_term_options_reach_the_run(client):
    table = {"headers": ["loss", "weight"], "data": [["symmetry", "2"], ["smoothness", ""], ["", ""]]}
    _, _, gallery = client.predict(*generate_args(seeds=1, losses=table, symmetry_axis="both"), api_name="/generate")
    stored = read_record(Path(gallery[0]["image"])).settings
    assert stored["losses"] == ["symmetry:2", "smoothness"] and stored["symmetry_axis"] == "both"
    with pytest.raises(REFUSED, match="did you mean 'symmetry'"):
        client.predict(*generate_args(seeds=1, losses={**table, "data": [["symetry", "1"]]}), api_name="/generate")
