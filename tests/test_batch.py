"""``clipguide batch JOBS.toml`` in-process: what it makes, what it skips, what it refuses."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from clipguide.cli import main
from clipguide.output import read_record

TINY = 'demo = true\nsteps = 2\nsize = [32, 32]\ncutn = 2\n'


def write_jobs(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "jobs.toml"
    path.write_text(text, "utf-8")
    return path


def test_a_generate_and_an_animate_job_make_their_files_and_a_second_run_skips_them(tmp_path, capsys):
    jobs = write_jobs(tmp_path, f'[defaults]\n{TINY}\n[[job]]\nprompt = "a red circle"\nseeds = 2\n\n'
                      '[[job]]\nkind = "animate"\nname = "zoom"\nprompt = "a castle"\nframes = 2\n'
                      'steps-per-frame = 1\nzoom = 1.05\ntranslate = [1, 0]\n')
    out = tmp_path / "out"
    assert main(["batch", str(jobs), "--out", str(out), "--quiet"]) == 0
    stills = sorted((out / "001-a-red-circle").glob("*.png"))
    assert [p.name for p in stills] == ["a-red-circle-0.png", "a-red-circle-1.png"]
    assert read_record(stills[1]).settings["seed"] == 1
    assert sorted(p.name for p in (out / "zoom" / "a-castle-0").glob("*.png")) == ["00000.png", "00001.png"]
    record = read_record(out / "zoom" / "a-castle-0" / "00001.png")
    assert record.source["animation"]["translate_x"] == 1.0
    state = json.loads((out / "batch.json").read_text("utf-8"))
    assert {name: job["done"] for name, job in state["jobs"].items()} == {"001-a-red-circle": True, "zoom": True}
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*.png")}
    capsys.readouterr()
    assert main(["batch", str(jobs), "--out", str(out), "--quiet"]) == 0
    assert "0 job(s) run" in capsys.readouterr().out
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.png")} == before


def test_a_job_deleted_from_the_folder_is_made_again_and_only_it(tmp_path, capsys):
    jobs = write_jobs(tmp_path, f'[defaults]\n{TINY}\n[[job]]\nprompt = "a red circle"\n\n[[job]]\nprompt = "a blue square"\n')
    out = tmp_path / "out"
    assert main(["batch", str(jobs), "--out", str(out), "--quiet"]) == 0
    lost = out / "002-a-blue-square" / "a-blue-square-0.png"
    kept = out / "001-a-red-circle" / "a-red-circle-0.png"
    data, stamp = lost.read_bytes(), kept.stat().st_mtime_ns
    lost.unlink()
    capsys.readouterr()
    assert main(["batch", str(jobs), "--out", str(out), "--quiet"]) == 0
    assert "1 job(s) run" in capsys.readouterr().out
    assert lost.read_bytes() == data and kept.stat().st_mtime_ns == stamp


def test_flags_on_the_command_line_win_over_the_file(tmp_path):
    jobs = write_jobs(tmp_path, f'[defaults]\n{TINY}\n[[job]]\nprompt = "a red circle"\nsteps = 5\n')
    assert main(["batch", str(jobs), "--out", str(tmp_path / "out"), "--steps", "1", "--quiet"]) == 0
    record = read_record(next((tmp_path / "out").rglob("*.png")))
    assert record.settings["steps"] == 1 and record.steps_done == 1


@pytest.mark.parametrize("text, expected", [
    ('[[job]]\nprompt = "a"\nstepz = 3\n', "did you mean 'steps'"),
    ('[[job]]\nseeds = 2\n', "has no prompt"),
    ('[[job]]\nprompt = "a"\nkind = "animat"\n', "unknown batch job kind 'animat'"),
    ('[[job]]\nprompt = "a"\nname = "x"\n[[job]]\nprompt = "b"\nname = "x"\n', "two jobs are named 'x'"),
    ('[[job]]\nprompt = "a"\nname = "../up"\n', "plain folder name"),
    ('[[job]]\nprompt = "a"\nframes = 3\n', "job 1 (generate): 'frames'"),
    ('[[job]]\nprompt = "a"\nkind = "animate"\nzoom = "0:1, x"\n', "zoom"),
    ('[jobs]\nprompt = "a"\n', "unknown table 'jobs'"),
    ('prompt = \n', "is not a TOML jobs file"),
    ('[defaults]\nsteps = 3\n', "lists no jobs"),
])
def test_mistakes_in_the_file_are_one_line_and_nothing_is_written(tmp_path, capsys, text, expected):
    jobs = write_jobs(tmp_path, text)
    out = tmp_path / "out"
    assert main(["batch", str(jobs), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and expected in err, err
    assert not out.exists()


def test_a_job_changed_after_it_was_made_is_refused(tmp_path, capsys):
    jobs = write_jobs(tmp_path, f'[defaults]\n{TINY}\n[[job]]\nname = "one"\nprompt = "a red circle"\n')
    out = tmp_path / "out"
    assert main(["batch", str(jobs), "--out", str(out), "--quiet"]) == 0
    files = sorted(out.rglob("*"))
    jobs.write_text(f'[defaults]\n{TINY}\n[[job]]\nname = "one"\nprompt = "a blue square"\n', "utf-8")
    assert main(["batch", str(jobs), "--out", str(out), "--quiet"]) == 2
    assert "'one'" in capsys.readouterr().err
    assert sorted(out.rglob("*")) == files


def test_a_folder_of_something_else_is_refused(tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "mine.txt").write_text("keep", "utf-8")
    jobs = write_jobs(tmp_path, f'[[job]]\nprompt = "a"\n{TINY}')
    assert main(["batch", str(jobs), "--out", str(out)]) == 2
    assert "not empty" in capsys.readouterr().err
    assert [p.name for p in out.iterdir()] == ["mine.txt"]


@pytest.mark.parametrize("command, text", [("batch", "{not json"), ("batch", '{"format": "clipguide-compare"}'),
                                           ("compare", '{"format": "clipguide-compare", "items": []}'),
                                           ("telephone", "[]")])
def test_a_folder_record_of_something_else_is_one_line_and_kept(tmp_path, command, text):
    from clipguide.errors import UserError
    from clipguide.output import read_folder_record

    path = tmp_path / "record.json"
    path.write_text(text, "utf-8")
    with pytest.raises(UserError, match=f"is not a clipguide {command} record; choose a new --out"):
        read_folder_record(path, f"clipguide-{command}", command, None if command == "telephone" else "items")
    assert path.read_text("utf-8") == text


def test_the_example_in_the_help_is_a_valid_jobs_file(tmp_path):
    from clipguide.batch.cli import EXAMPLE, parser, read_jobs

    path = write_jobs(tmp_path, EXAMPLE)
    jobs = read_jobs(path, parser().parse_args([str(path)]), tmp_path / "out")
    assert [(job.kind, job.name) for job in jobs] == [("generate", "001-a-red-circle-on-a-blue"), ("animate", "zoom")]
    assert jobs[0].settings.seeds == 4 and jobs[1].animation().frames == 12


def test_the_frame_cap_is_checked_before_anything_runs_and_no_limits_lifts_it(tmp_path, capsys):
    from clipguide.batch.cli import parser, read_jobs

    jobs = write_jobs(tmp_path, f'[defaults]\n{TINY}\n[[job]]\nprompt = "a"\n\n'
                      '[[job]]\nkind = "animate"\nprompt = "b"\nframes = 20000\n')
    out = tmp_path / "out"
    assert main(["batch", str(jobs), "--out", str(out)]) == 2
    assert "frames=20000 is over the limit" in capsys.readouterr().err
    assert not out.exists()
    lifted = read_jobs(jobs, parser().parse_args([str(jobs), "--no-limits"]), out)
    assert lifted[1].frame_limits()["frames"] > 20000
