"""``clipguide telephone``: one start prompt's loop, or a study over many start prompts.

    clipguide telephone "a lighthouse in a storm" --rounds 100 --out DIR [--seeds 4] [--style baroque]
    clipguide telephone --prompts FILE --rounds 20 --seeds 3 [--style baroque] --out DIR

A study runs every start prompt without a style and, when ``--style`` names one, with it too.
Running the same command again goes on where the folder stops (Ctrl-C keeps the finished rounds).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..cli_flags import Parser, add_flags, add_run_flags, given, notice, progress_bar, settings_from_args
from ..errors import UserError
from ..scale.cluster import add_scale_flags, cluster_from_args

#: Start-prompt lists shipped with clipguide, by the name --prompts takes.
SHIPPED_PROMPTS = {"diverse": "prompts.txt", "shapes": "prompts-shapes.txt"}
STUDY_SEEDS = 3
INITS = ("random", "mean", "previous")


def parser() -> argparse.ArgumentParser:
    from ..settings import Settings
    from .settings import TelephoneSettings

    p = Parser(prog="clipguide telephone", description="Prompt → image → caption → image …: where does the loop go?")
    p.add_argument("start_prompt", nargs="?", default=None, metavar="prompt",
                   help="The start prompt (or --prompts FILE for a study).")
    p.add_argument("--prompts", dest="prompts_file", default=None, metavar="FILE",
                   help="A study: one start prompt per line, or a shipped list: " + ", ".join(SHIPPED_PROMPTS)
                   + f" (trajectories per prompt: --seeds, default {STUDY_SEEDS}).")
    p.add_argument("--init", dest="init_choice", choices=INITS, default=None,
                   help="Start of every round: random codes, the codebook mean, or (rounds after the first) the "
                   "previous round's image.")
    p.add_argument("--report-only", action="store_true",
                   help="Rebuild the report from the rounds in --out; generate nothing.")
    add_run_flags(p, out="")
    add_flags(p, Settings, skip=("prompt", "init", "save_every"))
    add_flags(p, TelephoneSettings, skip=("start",), title="telephone")
    add_scale_flags(p)
    return p


def prompts_file(name: str) -> Path:
    path = Path(name).expanduser()
    if not path.exists() and name in SHIPPED_PROMPTS:
        return Path(__file__).resolve().parent.parent / "data" / "telephone" / SHIPPED_PROMPTS[name]
    return path


def main(argv: list[str]) -> int:
    from ..compare.cli import read_prompts
    from ..output import slugify
    from ..presets import is_none
    from ..session import Session
    from .plan import TrajectoryTask, make_describers, make_plan, record_plan
    from .report import build_report
    from .settings import TelephoneSettings
    from .settings import from_dict as telephone_from

    ns = parser().parse_args(argv)
    study = ns.prompts_file is not None
    if study and ns.start_prompt:
        raise UserError("give a start prompt or --prompts FILE, not both")
    if not study and not (ns.start_prompt or "").strip():
        raise UserError("telephone needs a start prompt: clipguide telephone \"a lighthouse in a storm\" "
                        "(or --prompts FILE for a study)")
    prompts = read_prompts(prompts_file(ns.prompts_file)) if study else [ns.start_prompt]
    if ns.init_choice in ("random", "mean"):
        ns.init = ns.init_choice
    if study and "seeds" not in vars(ns):
        ns.seeds = STUDY_SEEDS
    settings, explicit = settings_from_args(ns, {"prompt": prompts[0]})
    loop = given(ns, TelephoneSettings)
    if ns.init_choice == "previous":
        loop["start"] = "previous"
    telephone = telephone_from(loop)
    styles = ["none", settings.style] if study and not is_none(settings.style) else ["none"] if study \
        else [settings.style]
    stem = Path(ns.prompts_file).stem if study else slugify(prompts[0], 40)
    out = Path(ns.out or Path("outputs") / "telephone" / (f"study-{stem}" if study else stem))
    if ns.ray is not None and not study:
        raise UserError("--ray splits a study into its trajectories: give --prompts FILE (a single start prompt runs "
                        "its trajectories together, in one batch)")
    session = Session(settings.device, settings.offline)
    plan = make_plan(prompts, styles, settings, telephone, out, explicit=explicit, style_dirs=tuple(ns.presets),
                     must_exist=ns.report_only)
    with cluster_from_args(ns, settings.threads, notice) as cluster:  # before anything is written
        if not ns.report_only:
            describers = make_describers(plan, session)  # a describer that cannot load fails before anything is made
            record_plan(plan)
            if cluster is not None:
                from ..scale import run_on

                tasks = [TrajectoryTask(plan, task) for task in plan.tasks()]
                run_on(cluster, [t for t in tasks if t.unfinished()], out_dir=out, quiet=ns.quiet)
            else:
                code = _run_here(plan, session, describers, not study, ns.quiet, out)
                if code:
                    return code
    report = build_report(plan, session, progress=None if ns.quiet else notice)
    for name in ("report.md", "report.json", "strip.png", "convergence.png", "motifs.png"):
        if name in report["files"]:
            print(out / report["files"][name])
    return 0


def _run_here(plan, session, describers, together: bool, quiet: bool, out: Path) -> int:
    """Every unfinished trajectory in this process, with a step bar and a line per round; the exit code."""
    from .loop import LoopStopped
    from .plan import run_plan

    progress = Progress(quiet)
    try:
        run_plan(plan, session=session, together=together, describers=describers, hook=progress.step,
                 on_round=progress.round, progress=None if quiet else notice, notify=notice)
    except LoopStopped as stopped:
        print(f"clipguide: interrupted in round {stopped.round}; the finished rounds are kept in {out}: run the "
              "same command again to go on", file=sys.stderr)
        return 130
    finally:
        progress.close()
    return 0


class Progress:
    """A step bar per round and a line per finished round (nothing with --quiet)."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.bar = None

    def step(self, step) -> None:
        if self.quiet:
            return
        if self.bar is None:
            self.bar = progress_bar(step.steps)
        self.bar.update(1)
        if step.i == step.steps:
            self.close()

    def round(self, trajectory, done) -> None:
        if not self.quiet:
            notice(f"t{trajectory.index} round {done.round}: {done.caption}")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def again(record, ns: argparse.Namespace) -> int:
    """``clipguide again`` on a round's PNG: make that round again, alone, from the text it was made from."""
    from ..cli import run_and_save

    source = record.source
    stored = dict(record.settings)
    if hasattr(ns, "prompt"):
        stored["prompt"] = ns.prompt
    settings, explicit = settings_from_args(ns, stored)
    notice(f"{ns.image} is round {source.get('round')} of telephone trajectory {source.get('trajectory')} from "
           f"{source.get('start_prompt')!r}: making that round again, alone, from the text it was generated from "
           f"({source.get('generated_from')!r}); it does not go on with the loop (clipguide telephone does)")
    batch = int(source.get("batch_of", 1) or 1)
    if batch > 1:
        notice(f"it was made in a batch of {batch} trajectories: alone, its pixels may differ a little")
    if settings.init_image and not Path(settings.init_image).exists():
        raise UserError(f"round {source.get('round')} started from the round before it, {settings.init_image}, which "
                        "is not there: run again from the folder the telephone ran in, or give --init-image")
    same = not explicit and not hasattr(ns, "prompt") and batch == 1
    return run_and_save(settings, explicit | record.explicit | {"prompt"}, ns, source=dict(source) if same else None)


__all__ = ["main", "again", "parser", "SHIPPED_PROMPTS"]
