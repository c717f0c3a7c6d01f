"""``clipguide compare``: several styles over the same seeds; alignment and diversity reported."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..cli_flags import Parser, add_flags, notice, settings_from_args
from ..errors import UserError
from ..scale.cluster import add_scale_flags, cluster_from_args


def parser() -> argparse.ArgumentParser:
    from ..settings import Settings

    p = Parser(prog="clipguide compare",
               description="Run several styles over the same seeds; report alignment and diversity.")
    p.add_argument("prompt", nargs="?", default=None, help="Base prompt (or --prompts FILE).")
    p.add_argument("--styles", default="none,baroque,cyberpunk,unreal engine", help="Comma-separated style names.")
    p.add_argument("--prompts", dest="prompts_file", default=None, metavar="FILE", help="One base prompt per line.")
    p.add_argument("--eval-clip", default=None, help="A CLIP model that did not guide the run, for the CLIP score.")
    p.add_argument("--out", default="compare", help="Output folder (default: compare).")
    p.add_argument("--demo", action="store_true", help="Use the shipped offline demo models.")
    p.add_argument("--presets", action="append", default=[], metavar="DIR")
    p.add_argument("--no-limits", action="store_true")
    p.add_argument("--quiet", action="store_true")
    add_flags(p, Settings, skip=("prompt", "style"))
    add_scale_flags(p)
    return p


def main(argv: list[str]) -> int:
    from ..session import Session
    from .run import run_compare

    ns = parser().parse_args(argv)
    prompts = read_prompts(ns.prompts_file) if ns.prompts_file else [_one_prompt(ns.prompt)]
    if "seeds" not in vars(ns):
        ns.seeds = 16
    settings, explicit = settings_from_args(ns, {"prompt": prompts[0]})
    styles = [s.strip() for s in ns.styles.split(",") if s.strip()]
    if not styles:
        raise UserError("--styles is empty: name at least one style, e.g. --styles none,baroque")
    explicit = explicit | {"prompt", "seeds"}
    say = (lambda _m: None) if ns.quiet else notice
    with cluster_from_args(ns, settings.threads, say) as cluster:  # before anything is written
        produce_all = None
        if cluster is not None:
            from ..scale import run_on
            from .run import ProduceTask

            def produce_all(todo):
                run_on(cluster, [ProduceTask(it, explicit, tuple(ns.presets)) for it in todo], out_dir=Path(ns.out),
                       quiet=ns.quiet)

        session = Session(settings.device, settings.offline)
        report = run_compare(settings, styles, out_dir=Path(ns.out), eval_clip=ns.eval_clip, session=session,
                             explicit=explicit, style_dirs=tuple(ns.presets), prompts=prompts, progress=say,
                             produce_all=produce_all)
    print(f"compared {len(report.styles)} styles over {len(report.seeds)} seeds "
          f"({report.generated} images made, {report.loaded} reused)")
    for name in ("report.md", "report.json", "grid.png", "alignment_vs_diversity.png"):
        if name in report.files:
            print(report.files[name])
    return 0


def _one_prompt(prompt: str | None) -> str:
    if not prompt or not prompt.strip():
        raise UserError("compare needs a prompt: clipguide compare \"a sunset\" --styles none,baroque")
    return prompt


def read_prompts(file: str | Path, *, flag: str = "--prompts") -> list[str]:
    """One prompt per line (blank lines and lines starting with # skipped); one-line errors."""
    path = Path(file)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        why = e.strerror if isinstance(e, OSError) else "not UTF-8 text"
        raise UserError(f"cannot read {flag} {path}: {why}") from None
    prompts = [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
    if not prompts:
        raise UserError(f"{flag} {path} holds no prompts: write one per line")
    return prompts
