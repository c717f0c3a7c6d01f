"""``clipguide batch JOBS.toml``: a list of generate and animate jobs, here or on a Ray cluster.

    clipguide batch jobs.toml --out DIR                       one job after another, in this process
    clipguide batch jobs.toml --out DIR --ray local           the jobs spread over this machine's workers
    clipguide batch jobs.toml --out DIR --ray 10.0.0.5:6379   … or over a running cluster's

The file (TOML) is shown by ``clipguide batch --help`` (:data:`EXAMPLE`).

Flags given on the command line (``--steps 20``, ``--device cuda``) win over the file. Every job is
checked before anything runs; ``batch.json`` records which jobs are finished, and the same
command again skips them (a job whose settings changed is refused: choose a new --out).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from ..cli_flags import Parser, add_flags, add_run_flags, given, notice
from ..errors import UserError, unknown
from ..scale.cluster import add_scale_flags, cluster_from_args

FORMAT = "clipguide-batch"
VERSION = 1
EXAMPLE = """\
[defaults]            # optional: settings of every job (any clipguide setting; demo = true)
demo = true
steps = 60

[[job]]
prompt = "a red circle on a blue background"
seeds = 4             # kind = "generate" is the default: stills, <prompt>-<seed>.png

[[job]]
kind = "animate"      # any `clipguide animate` setting: frames, zoom, angle, translate = [x, y], ...
name = "zoom"         # its folder in --out (default: 002-<prompt>)
prompt = "a castle ^ a forest"
frames = 12
zoom = "0:1.0, 6:1.05"
"""


def parser() -> argparse.ArgumentParser:
    from ..settings import Settings

    p = Parser(prog="clipguide batch", description="Run the generate and animate jobs a TOML file lists (on Ray with "
               "--ray); the same command again skips the finished ones. Flags given here win over the file.",
               epilog="JOBS.toml, for example:\n\n" + EXAMPLE, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("jobs", metavar="JOBS.toml", help="The jobs: [defaults] and one [[job]] table each.")
    add_run_flags(p, out="batch")
    add_flags(p, Settings, skip=("prompt", "save_every"))
    add_scale_flags(p)
    return p


def main(argv: list[str]) -> int:
    from ..scale import run_here, run_on

    ns = parser().parse_args(argv)
    out = Path(ns.out)
    jobs = read_jobs(Path(ns.jobs), ns, out)
    state = open_state(out, jobs)
    todo = [job for job in jobs if not (state["jobs"].get(job.name, {}).get("done") and job.finished())]
    threads = jobs[0].settings.threads
    say = (lambda _m: None) if ns.quiet else notice
    with cluster_from_args(ns, threads, say) as cluster:  # an unreachable cluster: nothing is written
        for job in jobs:
            entry = state["jobs"].setdefault(job.name, {"kind": job.kind, "hash": job.digest(), "done": False})
            entry["done"] = entry["done"] and job not in todo
        _write_state(out, state)
        if len(todo) < len(jobs):
            say(f"{len(jobs) - len(todo)} of {len(jobs)} jobs already finished in {out}: skipping them")

        def finished(job: Any, _images: int) -> None:
            state["jobs"][job.name]["done"] = True
            _write_state(out, state)

        if cluster is not None:
            made = run_on(cluster, todo, out_dir=out, quiet=ns.quiet, on_done=finished)
        else:
            made = run_here(todo, quiet=ns.quiet, on_done=finished)
    for job in jobs:
        print(job.folder)
    print(f"clipguide: {len(todo)} job(s) run, {made} image(s) made; {len(jobs) - len(todo)} skipped")
    return 0


def read_jobs(path: Path, ns: argparse.Namespace, out: Path) -> list[Any]:
    """Every job of the file, checked (settings, names, limits) before anything runs."""
    from ..output import slugify
    from ..presets import demo_settings
    from ..registry import JOBS
    from ..settings import FIELD_NAMES, Settings

    data = _load_toml(path)
    extra = set(data) - {"defaults", "job"}
    if extra:
        raise UserError(f"{path}: unknown table {sorted(extra)[0]!r}: the file holds [defaults] and [[job]] tables")
    defaults = _keys(data.get("defaults", {}), f"{path} [defaults]")
    entries = data.get("job", [])
    if not isinstance(entries, list) or not entries:
        raise UserError(f"{path} lists no jobs: add a [[job]] table with a prompt")
    flags = given(ns, Settings)
    jobs, names = [], set()
    for n, entry in enumerate(entries, 1):
        values = {**defaults, **_keys(entry, f"{path} job {n}")}
        kind = JOBS.check(str(values.pop("kind", "generate")))
        prompt = str(values.get("prompt") or "").strip()
        if not prompt:
            raise UserError(f"{path} job {n} has no prompt: add prompt = \"…\"")
        name = str(values.pop("name", "") or f"{n:03d}-{slugify(prompt, 32)}")
        if not _plain_name(name):
            raise UserError(f"{path} job {n}: name {name!r} must be a plain folder name (letters, digits, - and _)")
        if name in names:
            raise UserError(f"{path}: two jobs are named {name!r}: give each its own name")
        names.add(name)
        demo = bool(values.pop("demo", False)) or ns.demo
        known = (*FIELD_NAMES, *JOBS.get(kind).own_keys)
        for key in values:
            if key not in known:
                raise unknown(f"setting in {path} job {n} ({kind}):", key, known)
        image = {k: v for k, v in values.items() if k in FIELD_NAMES}
        own = {k: v for k, v in values.items() if k not in FIELD_NAMES}
        chosen = frozenset(image) | frozenset(flags)
        image = {**({k: v for k, v in demo_settings().items() if k not in chosen} if demo else {}), **image, **flags}
        job = JOBS.get(kind).from_values(name, out / name, image, own, explicit=chosen,
                                         style_dirs=tuple(ns.presets))
        job.no_limits = ns.no_limits
        job.check_limits()
        jobs.append(job)
    return jobs


def _load_toml(path: Path) -> dict[str, Any]:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise UserError(f"cannot read {path}: {e.strerror}") from None
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise UserError(f"{path} is not a TOML jobs file ({e}): see `clipguide batch --help`") from None


def _keys(table: Any, where: str) -> dict[str, Any]:
    if not isinstance(table, dict):
        raise UserError(f"{where} must be a table of settings (key = value lines)")
    return {str(k).replace("-", "_"): v for k, v in table.items()}


def _plain_name(name: str) -> bool:
    return bool(name) and name not in (".", "..") and all(c.isalnum() or c in "-_." for c in name)


def open_state(out: Path, jobs: list[Any]) -> dict[str, Any]:
    """``batch.json`` of an earlier run in ``out`` (every job that is in both must be unchanged), or a fresh one."""
    path = out / "batch.json"
    if not path.exists():
        if out.is_dir() and any(out.iterdir()):
            raise UserError(f"{out} is not empty and holds no batch run: choose a new --out")
        return {"format": FORMAT, "version": VERSION, "jobs": {}}
    from ..output import read_folder_record

    state = read_folder_record(path, FORMAT, "batch", "jobs")
    for job in jobs:
        entry = state["jobs"].get(job.name)
        if entry is not None and (entry.get("kind"), entry.get("hash")) != (job.kind, job.digest()):
            raise UserError(f"job {job.name!r} in {out} was made with other settings: choose a new --out, rename "
                            "the job, or delete its folder and its entry in batch.json")
    return state


def _write_state(out: Path, state: dict[str, Any]) -> None:
    from ..output import atomic_write_text, ensure_out_dir

    ensure_out_dir(out)
    atomic_write_text(out / "batch.json", json.dumps(state, indent=2, sort_keys=True) + "\n", overwrite=True)


__all__ = ["main", "parser", "read_jobs", "open_state"]
