"""Command-line flags derived from a settings class, and the shared pieces of every subcommand.

One flag per field (``--cut-pow`` for ``cut_pow``): its type, choices, metavar and help come from
the field's declaration (:func:`clipguide.specs.setting`), its default is shown from there too.
Defaults are SUPPRESSed so the parsed namespace holds only what the user typed: that is how
presets know which settings the user chose themselves.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import fields
from typing import Any

from . import specs
from .errors import UserError


class Parser(argparse.ArgumentParser):
    """argparse that reports mistakes in our one-line style with exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UserError(f"{message} (see `{self.prog} --help`)")


def flag_name(name: str) -> str:
    return "--" + name.replace("_", "-")


def add_flags(parser: argparse.ArgumentParser, cls: type, *, skip: Sequence[str] = (), title: str = "settings") -> None:
    """One flag per field of ``cls`` (a settings dataclass), except ``skip``."""
    group = parser.add_argument_group(title)
    kinds = specs.kinds(cls)
    for f in fields(cls):
        if f.name in skip:
            continue
        meta, kind = f.metadata, kinds[f.name]
        kwargs: dict[str, Any] = {"dest": f.name, "default": argparse.SUPPRESS}
        choices = specs.choices_of(cls, f.name)
        if kind.base is bool:
            kwargs["action"] = "store_true"
        elif kind.shape == "pair":
            kwargs.update(nargs=2, type=kind.base)
        elif kind.shape == "list":
            if meta.get("metavar") == "A,B":  # one comma-separated argument
                kwargs["type"] = lambda s: tuple(c.strip() for c in s.split(",") if c.strip())
            elif meta.get("flag"):  # a repeatable flag in the singular: --image-prompt A --image-prompt B
                kwargs["action"] = "append"
            else:
                kwargs["nargs"] = "+"
        elif meta.get("schedule"):
            kwargs["type"] = str  # a number or keyframes; checked with the other settings
        else:
            kwargs["type"] = kind.base
        if choices is not None and kind.base is str:
            kwargs["choices"] = choices
        if meta.get("metavar"):
            kwargs["metavar"] = meta["metavar"]
        group.add_argument(meta.get("flag") or flag_name(f.name), help=_help(cls, f.name), **kwargs)


def _help(cls: type, name: str) -> str:
    text = specs.help_of(cls, name)
    default = specs.default_of(cls, name)
    if default not in (None, (), "", False):
        shown = " ".join(map(str, default)) if isinstance(default, tuple) else default
        text += f" (default: {shown})"
    return text.replace("%", "%%")


def given(ns: argparse.Namespace, cls: type) -> dict[str, Any]:
    """The fields of ``cls`` the user typed a flag for."""
    return {f.name: getattr(ns, f.name) for f in fields(cls) if hasattr(ns, f.name)}


def add_run_flags(parser: argparse.ArgumentParser, *, out: str = "outputs") -> None:
    """The flags every command that runs the loop has (besides the settings)."""
    parser.add_argument("--out", default=out, help=f"Output folder (default: {out}).")
    parser.add_argument("--demo", action="store_true", help="Use the shipped offline demo models (shapes world): "
                        "the settings of presets/demo.toml, where you set nothing else.")
    parser.add_argument("--presets", action="append", default=[], metavar="DIR", help="Extra style preset folder.")
    parser.add_argument("--no-limits", action="store_true", help="Allow sizes/steps/seeds/cutn past the safety limits.")
    parser.add_argument("--quiet", action="store_true", help="No progress bar.")


def settings_from_args(ns: argparse.Namespace, base: dict[str, Any] | None = None):
    """Settings from parsed flags over ``base`` (and the demo preset); returns them with the names
    the user set."""
    from .presets import demo_settings
    from .settings import Settings, check_limits, from_dict

    typed = given(ns, Settings)
    values = dict(base or {})
    if getattr(ns, "demo", False):
        values.update({k: v for k, v in demo_settings().items() if k not in typed})
    values.update(typed)
    settings = from_dict(values)
    if not getattr(ns, "no_limits", False):
        check_limits(settings)
    return settings, frozenset(typed)


def progress_bar(total: int, unit: str = "step"):
    from tqdm import tqdm

    return tqdm(total=total, unit=unit, dynamic_ncols=True, file=sys.stderr)


def notice(message: str) -> None:
    print(f"clipguide: {message}", file=sys.stderr)


__all__ = ["Parser", "add_flags", "add_run_flags", "given", "settings_from_args", "flag_name", "progress_bar",
           "notice"]
