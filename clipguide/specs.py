"""One setting, one place: a field's type, default, range, choices and help, declared once.

A settings class is a frozen dataclass whose fields are made with :func:`setting`. Everything
else is derived from those declarations by the functions here: coercion of values from TOML,
JSON, the web UI or the command line (:func:`coerce`), validation of ranges and choices
(:func:`check`), plain JSON values for PNG metadata and reports (:func:`to_dict`), and the CLI
flags (:func:`clipguide.cli_flags.add_flags`) and web UI widgets (:mod:`clipguide.webui.widgets`).

This module has no torch and does no I/O.
"""

from __future__ import annotations

import math
import types
import typing
from dataclasses import MISSING, Field, field, fields
from functools import lru_cache
from typing import Any, Union

from .errors import UserError, unknown


def setting(default: Any, help: str, *, choices: Any = None, low: float | None = None, high: float | None = None,
            low_open: bool = False, high_open: bool = False, schedule: bool = False, flag: str | None = None,
            metavar: Any = None, ui: str | None = None, label: str | None = None, group: str = "") -> Any:
    """A dataclass field with its rules beside its default.

    ``choices``: a tuple of names, or a :class:`~clipguide.registry.Registry` (read when checked, so
    plugins registered later count); for a tuple-of-texts field every element must be a choice.
    ``low``/``high`` bound numbers (``*_open``: strictly). ``schedule``: the value is a number or a
    keyframe string (:func:`clipguide.schedules.parse_schedule`), each key bounded by ``low``.
    ``flag``/``metavar``: the CLI spelling when the field name's does not fit. ``ui``: where the web
    UI shows it ("main", "advanced"; None: not shown). ``group``: the part it belongs to
    ("biggan", "pixel", …) for docs and for that part's options object.
    """
    meta = {"help": help, "choices": choices, "low": low, "high": high, "low_open": low_open,
            "high_open": high_open, "schedule": schedule, "flag": flag, "metavar": metavar, "ui": ui,
            "label": label, "group": group}
    if isinstance(default, list):
        default = tuple(default)
    return field(default=default, metadata=meta)


# --------------------------------------------------------------------------- types
class Kind(typing.NamedTuple):
    base: type  # bool, int, float, str
    optional: bool  # None allowed
    shape: str  # "scalar", "list" (tuple[X, ...]) or "pair" (tuple[X, X])


@lru_cache(maxsize=None)
def kinds(cls: type) -> dict[str, Kind]:
    """Field name → :class:`Kind`, from the class's annotations."""
    hints = typing.get_type_hints(cls)
    return {f.name: _kind(hints[f.name]) for f in fields(cls)}


def _kind(tp: Any) -> Kind:
    optional = False
    if typing.get_origin(tp) in (Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        optional = len(args) < len(typing.get_args(tp))
        tp = args[0]
    if typing.get_origin(tp) is tuple:
        args = typing.get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            return Kind(args[0], optional, "list")
        return Kind(args[0], optional, "pair")
    return Kind(tp, optional, "scalar")


def spec(cls: type, name: str) -> Field:
    return next(f for f in fields(cls) if f.name == name)


def names(cls: type) -> tuple[str, ...]:
    return tuple(f.name for f in fields(cls))


def help_of(cls: type, name: str) -> str:
    return spec(cls, name).metadata.get("help", "")


def choices_of(cls: type, name: str) -> tuple[str, ...] | None:
    choices = spec(cls, name).metadata.get("choices")
    if choices is None:
        return None
    return tuple(choices.names()) if hasattr(choices, "names") else tuple(choices)


def default_of(cls: type, name: str) -> Any:
    f = spec(cls, name)
    return None if f.default is MISSING else f.default


# --------------------------------------------------------------------------- values
def coerce(cls: type, name: str, value: Any) -> Any:
    """Bring a value from TOML/JSON/UI/CLI into the field's type, or raise a one-line UserError."""
    kind = kinds(cls)[name]
    if value is None:
        if kind.optional or default_of(cls, name) is None:
            return None
        raise UserError(f"{name} needs a value, got nothing")
    if kind.shape == "pair":
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = (value, value)
        if not (isinstance(value, (list, tuple)) and len(value) == 2):
            raise UserError(f"{name} must be two numbers, got {value!r}")
        return tuple(_scalar(kind.base, name, v) for v in value)
    if kind.shape == "list":
        if isinstance(value, str):
            value = [p.strip() for p in value.split(",") if p.strip()]
        if not isinstance(value, (list, tuple)):
            raise UserError(f"{name} must be a list, got {value!r}")
        return tuple(_scalar(kind.base, name, v) for v in value)
    if spec(cls, name).metadata.get("schedule") and isinstance(value, str):
        return value.strip()
    return _scalar(kind.base, name, value)


def _scalar(base: type, name: str, value: Any) -> Any:
    if base is bool:
        if isinstance(value, bool):
            return value
        raise UserError(f"{name} must be true or false, got {value!r}")
    if base is int:
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise UserError(f"{name} must be an integer, got {value!r}")
        try:
            number = float(value)
        except ValueError:
            raise UserError(f"{name} must be an integer, got {value!r}") from None
        if not math.isfinite(number) or number != int(number):
            raise UserError(f"{name} must be an integer, got {value!r}")
        return int(number)
    if base is float:
        if isinstance(value, bool):
            raise UserError(f"{name} must be a number, got {value!r}")
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise UserError(f"{name} must be a number, got {value!r}") from None
        if not math.isfinite(number):
            raise UserError(f"{name} must be a finite number, got {value!r}")
        return number
    if not isinstance(value, str):
        raise UserError(f"{name} must be text, got {value!r}")
    return value


def to_dict(obj: Any) -> dict[str, Any]:
    """Plain JSON-able values (tuples become lists)."""
    return {f.name: (list(v) if isinstance(v := getattr(obj, f.name), tuple) else v) for f in fields(obj)}


def from_dict(cls: type, values: dict[str, Any], *, where: str = "settings") -> Any:
    """Build a validated ``cls`` from plain values; an unknown key names the known ones."""
    known = names(cls)
    for key in values:
        if key not in known:
            raise unknown(f"setting in {where}:", key, known)
    obj = cls(**{k: coerce(cls, k, v) for k, v in values.items()})
    check(obj)
    return obj


def check(obj: Any) -> None:
    """Raise a UserError for any value outside its declared range or choices."""
    from .schedules import check_schedule

    cls = type(obj)
    for f in fields(obj):
        value, meta = getattr(obj, f.name), f.metadata
        if value is None:
            continue
        choices = choices_of(cls, f.name)
        if choices is not None:
            for item in value if isinstance(value, tuple) else (value,):
                if item not in choices:
                    raise unknown(f.name.replace("_", " "), item, choices)
        if meta.get("schedule") and isinstance(value, str):
            check_schedule(value, what=f.name, low=meta.get("low"), low_open=meta.get("low_open", False))
            continue
        for number in value if isinstance(value, tuple) else (value,):
            if isinstance(number, (int, float)) and not isinstance(number, bool):
                _bounded(f.name, number, meta)


def _bounded(name: str, value: float, meta: dict[str, Any]) -> None:
    low, high = meta.get("low"), meta.get("high")
    too_low = low is not None and (value < low or (meta.get("low_open") and value == low))
    too_high = high is not None and (value > high or (meta.get("high_open") and value == high))
    if too_low or too_high:
        raise UserError(f"{name} must be {describe_range(meta)}, got {value:g}")


def describe_range(meta: dict[str, Any]) -> str:
    low, high = meta.get("low"), meta.get("high")
    if low == 0 and high is None:
        return "positive" if meta.get("low_open") else "0 or more"
    lo = f"{'above' if meta.get('low_open') else 'at least'} {low:g}" if low is not None else ""
    hi = f"{'below' if meta.get('high_open') else 'at most'} {high:g}" if high is not None else ""
    return " and ".join(p for p in (lo, hi) if p) or "a number"


__all__ = ["setting", "Kind", "kinds", "spec", "names", "help_of", "choices_of", "default_of", "coerce",
           "to_dict", "from_dict", "check", "describe_range"]
