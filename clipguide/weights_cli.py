"""``clipguide weights …``: list, download, verify and locate the known checkpoints.

The main CLI hands everything after ``weights`` to :func:`main`. Mistakes a user can fix end
as one ``clipguide: error: …`` line and exit code 2; a failed verification exits with 1.
"""

from __future__ import annotations

import argparse
import sys

from . import weights
from .errors import UserError


def _human(n: int | None) -> str:
    if n is None:
        return "?"
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"


def _cached(entry: weights.Entry) -> str:
    """'shipped', 'yes', 'partial' or 'no' by presence alone (hashing every file would make listing slow)."""
    present = sum(weights.file_path(entry, f).is_file() for f in entry.files)
    if entry.shipped and present == len(entry.files):
        return "shipped"
    return "yes" if present == len(entry.files) else "partial" if present else "no"


def _entry(name: str) -> weights.Entry:
    """A generator or CLIP entry of the manifest by name (generators first)."""
    for section in weights.SECTIONS:
        entries = weights.load_manifest(section=section)
        if name in entries:
            return entries[name]
    return weights.get_entry(name)  # the "unknown … did you mean" error


def _list(_: argparse.Namespace) -> int:
    rows = [("NAME", "KIND", "SIZE", "CACHED", "LICENCE")]
    for entry in [*weights.load_manifest().values(), *weights.load_manifest(section="clips").values()]:
        rows.append((entry.name, entry.kind, _human(entry.size), _cached(entry), entry.licence))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)) + "  " + row[-1])
    print(f"\ncache: {weights.home() / 'weights'}")
    return 0


def _download(args: argparse.Namespace) -> int:
    for name in args.names:
        entry = _entry(name)
        paths = weights.fetch(name, offline=args.offline, progress=not args.no_progress, section=entry.section)
        print(f"{name}: ready in {next(iter(paths.values())).parent}")
        for role, path in paths.items():
            print(f"  {role}: {path}")
    return 0


def _verify(args: argparse.Namespace) -> int:
    names = args.names or [n for n in weights.load_manifest() if weights.entry_dir(n).is_dir()]
    if not names:
        print(f"nothing cached in {weights.home() / 'weights'}")
        return 0
    failed = False
    for name in names:
        for filename, ok, message in weights.verify(name, section=_entry(name).section):
            failed |= not ok
            print(f"{'OK  ' if ok else 'FAIL'} {name}/{filename}: {message}")
    return 1 if failed else 0


def _path(args: argparse.Namespace) -> int:
    entry = _entry(args.name)
    if args.role:
        print(weights.file_path(entry, entry.file(args.role)))
    else:
        print(weights.file_path(entry, entry.files[0]).parent)
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="clipguide weights",
        description="Known checkpoints: list them, download and verify them, find them on disk.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("list", help="table of known checkpoints: size, cached?, licence")
    p.set_defaults(run=_list)

    p = sub.add_parser("download", help="download (or check) checkpoints into the cache")
    p.add_argument("names", nargs="+", metavar="NAME")
    p.add_argument("--offline", action="store_true", help="never use the network; only check the cache")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(run=_download)

    p = sub.add_parser("verify", help="hash cached files against the manifest / first download")
    p.add_argument("names", nargs="*", metavar="NAME", help="default: every cached checkpoint")
    p.set_defaults(run=_verify)

    p = sub.add_parser("path", help="print the cache folder of a checkpoint (or one file's path)")
    p.add_argument("name", metavar="NAME")
    p.add_argument("role", nargs="?", metavar="ROLE", help="e.g. checkpoint, config, weights")
    p.set_defaults(run=_path)
    return parser


def main(argv: list[str]) -> int:
    """Run ``clipguide weights ARGV``; returns the exit code."""
    try:
        args = _parser().parse_args(argv)
    except SystemExit as e:  # argparse has printed usage or help already
        return e.code if isinstance(e.code, int) else 2
    try:
        return args.run(args)
    except UserError as e:
        print(f"clipguide: error: {e}", file=sys.stderr)
        return e.exit_code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main(sys.argv[1:]))
