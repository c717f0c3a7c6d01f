"""The Colab notebook runs top to bottom (demo models, tiny sizes, CPU) with every cell succeeding,
and its picture shows what the prompt asks for.

The Colab-only install cell is skipped by its own guard (``"google.colab" in sys.modules``).
Needs nbclient, nbformat and ipykernel; skipped with the reason when they are missing.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from clipguide.presets import demo_settings

nbformat = pytest.importorskip("nbformat", reason="needs nbformat (pip install nbformat)")
nbclient = pytest.importorskip("nbclient", reason="needs nbclient (pip install nbclient)")
pytest.importorskip("ipykernel", reason="needs ipykernel (pip install ipykernel)")

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "clipguide.ipynb"


def demo_models_present() -> bool:
    from clipguide.demo import CLIP_DIR
    from clipguide.weights import data_dir

    return (data_dir("weights") / "demo" / "vqgan.safetensors").is_file() and \
        (CLIP_DIR / "open_clip_config.json").is_file()


@pytest.mark.skipif(not demo_models_present(), reason="the demo models (weights/demo) are not built")
def test_notebook_runs_top_to_bottom(tmp_path, monkeypatch):
    monkeypatch.setenv("CLIPGUIDE_NOTEBOOK_DEMO", "1")
    # The kernel is a new process: let it import this checkout even when clipguide is not installed.
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    # One torch thread in the kernel: with two on 2 cores that another process also uses, OpenMP threads
    # wait on each other and the demo cell ran over 300 s; with one, under the same load, the test took 47 s.
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    # a hang guard, not a speed target
    client = nbclient.NotebookClient(nb, kernel_name="python3", timeout=1200,
                                     resources={"metadata": {"path": str(tmp_path)}})
    client.execute()  # raises CellExecutionError naming the cell if any cell fails

    outputs = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]
    assert not [o for o in outputs if o.output_type == "error"]
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert f"done: {demo_settings()['steps']} steps" in text  # the demo's own, so the picture follows the prompt
    pngs = sorted((tmp_path / "outputs").glob("*.png"))
    assert [p.name for p in pngs] == ["a-red-circle-on-a-blue-background-0.png"]
    from conftest import judge_pngs

    verdict = judge_pngs(pngs)[0]  # judged without CLIP
    assert (verdict["shape_colour"], verdict["background"]) == ("red", "blue"), verdict
    assert list((tmp_path / "outputs").glob("*.mp4"))
    reports = list((tmp_path / "compare").glob("*/report.md"))
    assert len(reports) == 1 and "baroque" in reports[0].read_text(encoding="utf-8")
    images = [o for o in outputs if o.output_type in ("display_data", "update_display_data")
              and "image/png" in o.get("data", {})]
    assert len(images) >= 3  # live preview, grid, plot
    assert not (tmp_path / "google").exists()  # nothing Colab-only ran


def test_notebook_is_valid_and_imports_the_library():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    source = "\n".join(cell.source for cell in nb.cells if cell.cell_type == "code")
    assert "import clipguide" in source or "from clipguide" in source
    install = next(cell.source for cell in nb.cells if "pip" in cell.source)
    assert 'if IN_COLAB:' in install and '"google.colab" in sys.modules' in install
    assert all(not cell.get("outputs") for cell in nb.cells if cell.cell_type == "code")  # stored clean
