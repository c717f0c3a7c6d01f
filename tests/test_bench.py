"""`clipguide bench`: runs the product's loop end to end and writes the figures (no timed asserts)."""

import json
import sys

import pytest
import torch

from clipguide import bench
from clipguide.cli import main as cli_main


def test_one_tiny_configuration_writes_json_with_the_required_keys(tmp_path, capsys):
    out = tmp_path / "out.json"
    rc = bench.main(["--tiny", "--size", "32", "32", "--cutn", "4", "--seeds", "2", "--steps", "2",
                     "--warmup", "1", "--precision", "fp32", "--json", str(out)])
    assert rc == 0
    data = json.loads(out.read_text())
    for key in ("median_s_per_it", "min_s_per_it", "max_s_per_it", "peak_rss_mib", "images_per_minute",
                "image_steps_per_s"):
        assert isinstance(data[key], float) and data[key] > 0, key
    assert data["min_s_per_it"] <= data["median_s_per_it"] <= data["max_s_per_it"]
    assert data["steps"] == 2 and data["seeds"] == 2 and data["size"] == [32, 32] and data["cutn"] == 4
    assert len(data["losses"]) == 3  # warm-up + timed steps, all from the real loop's callback
    assert data["machine"]["torch"] == torch.__version__ and "mkldnn" in data["machine"]
    assert "s/it" in capsys.readouterr().out


def test_cli_routes_bench_and_counts_flops(tmp_path):
    out = tmp_path / "b.json"
    assert cli_main(["bench", "--tiny", "--size", "32", "32", "--cutn", "2", "--steps", "1", "--warmup", "0",
                     "--precision", "bf16", "--checkpointing", "decoder", "--flops", "--peak-tflops", "1.0", "--quiet",
                     "--json", str(out)]) == 0
    data = json.loads(out.read_text())
    assert data["autocast"] == "bfloat16" and data["checkpointing"] == "decoder"
    assert data["gflop_per_it"] > 0 and data["achieved_tflops"] > 0
    assert data["mfu"] == pytest.approx(data["achieved_tflops"])


def test_bad_arguments_exit_with_usage():
    with pytest.raises(SystemExit):
        bench.main(["--steps", "0"])


def test_rows_format_with_and_without_errors():
    row = {"size": [32, 32], "cutn": 4, "seeds": 1, "precision": "fp32", "device": "cpu", "min_s_per_it": 0.1,
           "median_s_per_it": 0.2, "max_s_per_it": 0.3, "images_per_minute": 1.0, "image_steps": 400,
           "peak_rss_mib": 100.0}
    assert "median 0.200" in bench.format_row(row)
    assert "FAILED: boom" in bench.format_row({**row, "error": "boom"})


@pytest.mark.slow
def test_grid_runs_every_point_in_its_own_process(tmp_path):
    out = tmp_path / "grid.json"
    rc = bench.main(["--grid", "--tiny", "--sizes", "32", "--cutns", "2", "--seed-counts", "1", "2",
                     "--precisions", "fp32", "--steps", "1", "--warmup", "0", "--quiet", "--json", str(out)])
    assert rc == 0
    rows = json.loads(out.read_text())["results"]
    assert [r["seeds"] for r in rows] == [1, 2] and all("median_s_per_it" in r for r in rows)


@pytest.mark.slow
def test_compile_option_runs(tmp_path):
    out = tmp_path / "c.json"
    assert bench.main(["--tiny", "--size", "32", "32", "--cutn", "2", "--steps", "1", "--warmup", "1",
                       "--precision", "fp32", "--compile", "--quiet", "--json", str(out)]) == 0
    assert json.loads(out.read_text())["compile"] is True


@pytest.mark.slow
def test_real_size_architectures_have_the_published_parameter_counts():
    generator, perceptor = bench.build_models(torch.device("cpu"))
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert generator.size_multiple == 16 and generator.codebook.shape == (16384, 256)
    assert count(generator.decoder) == 42_449_795
    assert count(perceptor.models[0].model) == 151_277_313  # ViT-B/32
    assert perceptor.models[0].input_size == 224


def test_module_entry_point_exists():
    assert callable(bench.main) and sys.modules["clipguide.bench"] is bench


def test_the_benchmark_times_the_run_generate_builds(monkeypatch):
    """No second construction of targets, cutouts or terms: bench goes through build_run like generate."""
    from clipguide import build

    built = []
    real = build.build_run

    def spy(settings, **kw):
        run = real(settings, **kw)
        built.append(run)
        return run

    monkeypatch.setattr(build, "build_run", spy)
    row = bench.run_config(size=(32, 32), cutn=2, steps=1, warmup=0, precision="fp32", tiny=True)
    assert len(built) == 1 and [t.name for t in built[0].terms] == ["prior", "prompt"]
    assert built[0].settings.augments == bench.Settings().augments  # the defaults users get
    assert row["steps"] == 1


@pytest.mark.parametrize("drawer", ["pixel", "fft"])
def test_a_drawer_is_timed_with_the_random_weight_clip_and_no_vqgan(tmp_path, drawer, monkeypatch):
    from clipguide import build

    built = []
    real = build.build_run

    def spy(settings, **kw):
        built.append(real(settings, **kw))
        return built[-1]

    monkeypatch.setattr(build, "build_run", spy)
    out = tmp_path / "d.json"
    assert bench.main(["--tiny", "--generator", drawer, "--size", "32", "32", "--cutn", "2", "--steps", "1",
                       "--warmup", "0", "--precision", "fp32", "--quiet", "--json", str(out)]) == 0
    data = json.loads(out.read_text())
    assert data["generator"] == drawer and data["median_s_per_it"] > 0
    assert type(built[0].generator).__module__ == f"clipguide.generators.{drawer}"
    assert built[0].settings.clip == (bench.BENCH_CLIP,)
    assert drawer in bench.format_row(data)


def test_an_unknown_generator_is_refused_with_the_choices(capsys):
    with pytest.raises(SystemExit):
        bench.main(["--generator", "pixl"])
    assert "pixel" in capsys.readouterr().err
