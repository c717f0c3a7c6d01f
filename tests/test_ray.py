"""Scale-out on a local Ray cluster: the same files as in-process, retried workers, one-line errors."""

from __future__ import annotations

import hashlib
import socket
import sys
from pathlib import Path

import pytest
import torch

from clipguide.cli import main
from clipguide.scale.cluster import Cluster, _size
from clipguide.scale.worker import EXIT_ONCE

#: A tiny comparison on the demo models (2 styles × 2 seeds, a few steps): seconds per batch.
SMALL = ["--demo", "--seeds", "2", "--steps", "3", "--size", "32", "32", "--cutn", "4", "--quiet"]


@pytest.fixture(scope="module")
def ray_cluster():
    """One local cluster for the module (starting one takes seconds), shut down after it."""
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield ray
    ray.shutdown()


@pytest.fixture
def one_thread():
    """In-process runs here compute on one thread, as each of two workers on two CPUs does: on a CPU the
    pictures depend on the thread count (docs/scale-out.md)."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def digests(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` (hidden ones included) by its bytes."""
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_compare_on_ray_writes_the_files_the_in_process_compare_writes(tmp_path, ray_cluster, one_thread):
    command = ["compare", "a red circle on a blue background", "--styles", "none,baroque", "--threads", "1", *SMALL]
    assert main([*command, "--out", str(tmp_path / "here")]) == 0
    assert main([*command, "--out", str(tmp_path / "ray"), "--ray", "local", "--workers", "2"]) == 0
    here, on_ray = digests(tmp_path / "here"), digests(tmp_path / "ray")
    assert len(here) >= 4 + 4 and here == on_ray  # 4 images, report.json/.md, grid, figure, compare.json


def test_a_worker_that_dies_mid_task_is_retried_and_the_output_is_complete(tmp_path, ray_cluster, one_thread,
                                                                          monkeypatch):
    jobs = tmp_path / "jobs.toml"
    jobs.write_text('[defaults]\ndemo = true\nsteps = 3\nsize = [32, 32]\ncutn = 4\nthreads = 1\n\n'
                    '[[job]]\nprompt = "a red circle"\nseeds = 2\n\n[[job]]\nprompt = "a blue square"\n', "utf-8")
    assert main(["batch", str(jobs), "--out", str(tmp_path / "here"), "--quiet"]) == 0
    marker = tmp_path / "died"
    monkeypatch.setenv(EXIT_ONCE, str(marker))
    assert main(["batch", str(jobs), "--out", str(tmp_path / "ray"), "--quiet", "--ray", "local", "--workers", "2"]) == 0
    assert marker.exists()  # a worker process did exit in the middle of a task
    assert digests(tmp_path / "ray") == digests(tmp_path / "here")
    assert len(digests(tmp_path / "ray")) == 3 + 1  # three images and batch.json, no temporary files


def test_a_telephone_study_on_ray_is_the_in_process_study(tmp_path, ray_cluster, one_thread):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a red circle\na blue square\n", "utf-8")
    command = ["telephone", "--prompts", str(prompts), "--rounds", "2", "--threads", "1", *SMALL]
    assert main([*command, "--out", str(tmp_path / "here")]) == 0
    assert main([*command, "--out", str(tmp_path / "ray"), "--ray", "local", "--workers", "2"]) == 0
    here = digests(tmp_path / "here")
    assert sum(name.endswith(".png") and "round-" in name for name in here) == 2 * 2 * 2  # prompts × seeds × rounds
    assert digests(tmp_path / "ray") == here


def test_ray_not_installed_is_one_line_and_writes_nothing(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray raises ImportError
    out = tmp_path / "out"
    assert main(["compare", "a sunset", "--styles", "none", *SMALL, "--out", str(out), "--ray", "local"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and 'pip install "clipguide[ray]"' in err
    assert not out.exists()


def test_an_address_nobody_answers_is_one_line_exit_2_and_nothing_written(tmp_path, capsys):
    pytest.importorskip("ray")
    with socket.socket() as s:  # a port that was free a moment ago: nothing listens there
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    jobs = tmp_path / "jobs.toml"
    jobs.write_text('[[job]]\nprompt = "a red circle"\ndemo = true\n', "utf-8")
    out = tmp_path / "out"
    assert main(["batch", str(jobs), "--out", str(out), "--ray", f"127.0.0.1:{port}"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and f"127.0.0.1:{port}" in err
    assert not out.exists()


def test_workers_without_ray_is_refused(tmp_path, capsys):
    assert main(["compare", "a sunset", *SMALL, "--out", str(tmp_path / "c"), "--workers", "2"]) == 2
    assert "--ray" in capsys.readouterr().err
    assert not (tmp_path / "c").exists()


def test_worker_count_one_per_gpu_else_one_per_threads_cpus_capped_by_workers():
    def sized(resources, threads, cap):
        return _size(Cluster("x", 1, threads, 0.0, 1.0, False), resources, cap)

    gpu = sized({"CPU": 16, "GPU": 4}, 8, None)
    assert (gpu.workers, gpu.gpus_per_worker, gpu.cpus_per_worker) == (4, 1.0, 1.0)
    assert sized({"CPU": 16, "GPU": 4}, 8, 2).workers == 2
    cpu = sized({"CPU": 8}, 2, None)
    assert (cpu.workers, cpu.gpus_per_worker, cpu.cpus_per_worker) == (4, 0.0, 2.0)
    capped = sized({"CPU": 2}, 2, 2)  # a 2-core machine at its default 2 threads holds one worker
    assert capped.workers == 1 and "--threads 1" in capped.notes[0]
    assert sized({"CPU": 2}, 8, None).cpus_per_worker == 2.0  # a worker never asks for more than a node has
