"""Style presets: data files that add a suffix to the prompt and may adjust a few settings.

A preset is one TOML file::

    name = "pixel art"
    kind = "style"                       # or "models": a set of settings such as `--demo`'s
    suffix = ", pixel art"               # appended to every positive text prompt
    description = "why it looks like it does, and why it overrides anything"
    negative = ["blurry"]                # optional extra negative prompts
    [settings]                           # optional overrides, checked against Settings
    cut_pow = 0.7

Built-in presets live in ``presets/`` at the top of the repository (``clipguide/_data/presets``
in an installed wheel). Users add folders through ``$CLIPGUIDE_PRESETS`` (``os.pathsep``
separated) or ``--presets DIR``; a user preset with the same name replaces the built-in one.
Names match case-insensitively, with ``-``, ``_`` and spaces equivalent ("Unreal_Engine" is
"unreal engine").
"""

from __future__ import annotations

import math
import os
import re
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import UserError, unknown
from .prompts import Prompt, StoryPart, format_prompts, join_story, parse_prompts, split_story
from .settings import FIELD_NAMES, Settings, from_dict

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

ENV_VAR = "CLIPGUIDE_PRESETS"
NONE = "none"

#: Keys a preset file may have at its top level.
PRESET_KEYS = ("name", "kind", "suffix", "description", "negative", "settings")
#: What a preset is: a look (listed by `clipguide styles`, compared by `compare`) or a choice of
#: models and their settings (``--demo`` applies the ``demo`` one).
KINDS = ("style", "models")
#: Settings a style may not change: they say *what* to make and *where* to run, not how it looks.
NOT_OVERRIDABLE = ("prompt", "style", "negative", "seed", "seeds", "device", "threads", "offline", "save_every")


@dataclass(frozen=True)
class Style:
    name: str
    suffix: str = ""
    negative: tuple[str, ...] = ()
    overrides: dict[str, Any] = field(default_factory=dict, hash=False)
    description: str = ""
    source: Path | None = None
    kind: str = "style"

    @property
    def key(self) -> str:
        return normalize_name(self.name)


def normalize_name(name: str) -> str:
    """The lookup key of a style name: lower case, ``-``/``_``/runs of spaces become one space."""
    return " ".join(re.sub(r"[-_\s]+", " ", name).lower().split())


# --------------------------------------------------------------------------- folders
def builtin_dir() -> Path:
    """The shipped presets: inside the installed package if there, else the repository's folder."""
    package = Path(__file__).resolve().parent
    installed = package / "_data" / "presets"
    return installed if installed.is_dir() else package.parent / "presets"


def preset_dirs(extra_dirs: Iterable[str | os.PathLike[str]] = ()) -> list[Path]:
    """Folders searched, lowest priority first: built-in, then $CLIPGUIDE_PRESETS, then extra_dirs."""
    dirs = [builtin_dir()]
    for entry in os.environ.get(ENV_VAR, "").split(os.pathsep):
        if entry.strip():
            path = Path(entry.strip()).expanduser()
            if not path.is_dir():
                raise UserError(f"${ENV_VAR} names {str(path)!r}, which is not a folder; fix or unset ${ENV_VAR}")
            dirs.append(path)
    for entry in extra_dirs:
        path = Path(entry).expanduser()
        if not path.is_dir():
            raise UserError(f"preset folder {str(path)!r} does not exist; pass an existing folder to --presets")
        dirs.append(path)
    return dirs


# --------------------------------------------------------------------------- loading
def load_style(path: str | os.PathLike[str]) -> Style:
    """Read and validate one preset file; every problem is a UserError naming the file."""
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8")
    except OSError as exc:
        raise UserError(f"cannot read preset {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise UserError(f"preset {path} is not UTF-8 text; save it as UTF-8") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        # tomllib's message ends with "(at line L, column C)", which is what the user needs.
        raise UserError(f"malformed preset {path}: {exc}") from None
    return _style_from_dict(data, path)


def _style_from_dict(data: dict[str, Any], path: Path) -> Style:
    for key in data:
        if key not in PRESET_KEYS:
            raise unknown(f"key in preset {path}:", key, PRESET_KEYS)
    name = data.get("name", path.stem)
    if not isinstance(name, str) or not normalize_name(name) or "," in name:
        raise UserError(f"preset {path}: name must be non-empty text without commas, got {name!r}")
    suffix = data.get("suffix", "")
    if not isinstance(suffix, str):
        raise UserError(f"preset {path}: suffix must be text such as ', oil painting', got {suffix!r}")
    _check_suffix(suffix, path)
    description = data.get("description", "")
    if not isinstance(description, str):
        raise UserError(f"preset {path}: description must be text, got {description!r}")
    negative = data.get("negative", [])
    if isinstance(negative, str):
        negative = [negative]
    if not isinstance(negative, list) or not all(isinstance(n, str) for n in negative):
        raise UserError(f"preset {path}: negative must be a list of texts like [\"blurry\"], got {negative!r}")
    negative = [n.strip() for n in negative if n.strip()]
    for n in negative:
        if "|" in n:
            raise UserError(f"preset {path}: negative prompt {n!r} contains '|'; list each prompt separately")
    kind = data.get("kind", "style")
    if kind not in KINDS:
        raise unknown(f"kind in preset {path}:", str(kind), KINDS)
    overrides = data.get("settings", {})
    if not isinstance(overrides, dict):
        raise UserError(f"preset {path}: [settings] must be a table of setting = value lines")
    return Style(name=name.strip(), suffix=suffix, negative=tuple(negative),
                 overrides=_check_overrides(overrides, path), description=description.strip(), source=path,
                 kind=kind)


def _check_suffix(suffix: str, path: Path) -> None:
    """A suffix must survive the prompt syntax: no '|' and no trailing ':number' read as a weight."""
    if "|" in suffix:
        raise UserError(f"preset {path}: suffix {suffix!r} contains '|', which separates prompts")
    probe = "x" + suffix
    try:
        parsed = parse_prompts(format_prompts([Prompt(probe, 2.0)]))
    except UserError:
        parsed = []
    if [p.text for p in parsed] != [probe.strip()]:
        raise UserError(f"preset {path}: suffix {suffix!r} would be read as a prompt weight; drop the trailing ':…'")


def _check_overrides(overrides: dict[str, Any], path: Path) -> dict[str, Any]:
    """Validate overrides through Settings itself, so presets can never disagree with it."""
    for key in overrides:
        if key not in FIELD_NAMES:
            raise unknown(f"setting in preset {path} [settings]:", key, FIELD_NAMES)
        if key in NOT_OVERRIDABLE:
            raise UserError(f"preset {path}: a style cannot set {key!r}; remove it from [settings]")
        value = overrides[key]
        if isinstance(value, float) and not math.isfinite(value):
            raise UserError(f"preset {path}: {key} must be a finite number, got {value!r}")
    try:
        checked = from_dict(overrides, where=f"preset {path}")
    except UserError as exc:
        raise UserError(f"preset {path} [settings]: {exc}") from None
    except (TypeError, ValueError, OverflowError) as exc:  # e.g. an integer setting given 'inf'
        raise UserError(f"preset {path} [settings]: invalid value ({exc})") from None
    return {key: getattr(checked, key) for key in overrides}


def list_styles(extra_dirs: Iterable[str | os.PathLike[str]] = (), *, kind: str = "style") -> dict[str, Style]:
    """Every available preset of ``kind`` by normalised name; later folders replace earlier ones."""
    styles: dict[str, Style] = {}
    for folder in preset_dirs(extra_dirs):
        if not folder.is_dir():
            continue
        seen: dict[str, Path] = {}
        for path in sorted(folder.glob("*.toml")):
            style = load_style(path)
            if style.key in seen:
                raise UserError(f"presets {seen[style.key]} and {path} both define style {style.name!r}; rename one")
            seen[style.key] = path
            if style.kind == kind:
                styles[style.key] = style
    if kind == "style":
        styles.setdefault(NONE, Style(name=NONE, description="No style."))
    return styles


def model_preset(name: str, extra_dirs: Iterable[str | os.PathLike[str]] = ()) -> dict[str, Any]:
    """The settings a models preset (``demo``) sets, as plain values."""
    presets = list_styles(extra_dirs, kind="models")
    key = normalize_name(name)
    if key not in presets:
        raise unknown("models preset", name, [p.name for p in presets.values()])
    return dict(presets[key].overrides)


def demo_settings() -> dict[str, Any]:
    """What ``--demo`` sets: the shipped offline models at the size they were trained for."""
    return model_preset("demo")


def get_style(name: str, extra_dirs: Iterable[str | os.PathLike[str]] = (), *,
              styles: dict[str, Style] | None = None) -> Style:
    """One style by name (matched loosely); an unknown name lists the close matches."""
    styles = list_styles(extra_dirs) if styles is None else styles
    key = normalize_name(name) or NONE
    if key not in styles:
        raise unknown("style", name, [s.name for s in styles.values()])
    return styles[key]


def is_none(style: str) -> bool:
    """True for the empty style spec and for any spelling of ``none`` (alone or repeated)."""
    return all(normalize_name(n) == NONE for n in split_style_names(style) or [NONE])


def split_style_names(spec: str) -> list[str]:
    """``"baroque, unreal engine"`` → ``["baroque", "unreal engine"]`` (empty parts dropped)."""
    return [part.strip() for part in spec.split(",") if part.strip()]


# --------------------------------------------------------------------------- applying
def apply_style(settings: Settings, *, explicit: frozenset[str] | Sequence[str] = frozenset(),
                extra_dirs: Iterable[str | os.PathLike[str]] = ()) -> Settings:
    """Settings with ``settings.style`` applied (names comma-separated, applied in order).

    Each style appends its suffix to every text prompt with a positive weight (weights and
    stops kept), adds its negatives to ``settings.negative``, and sets its overrides on every
    field not in ``explicit`` (what the user set themselves wins). Applying twice changes
    nothing more: a suffix or negative already present is not added again. ``style`` itself is
    kept, so the resolved settings still say which style made them.
    """
    names = split_style_names(settings.style)
    if not names:
        return settings
    styles = list_styles(extra_dirs)
    parts = split_story(settings.prompt)
    original = [parse_prompts(part.text) for part in parts]
    prompts = [list(p) for p in original]
    negatives = [n.strip() for n in settings.negative.split("|") if n.strip()]
    added_negative = False
    changes: dict[str, Any] = {}
    for name in names:
        style = get_style(name, styles=styles)
        if style.suffix.strip():
            prompts = [[_with_suffix(p, style.suffix) for p in part] for part in prompts]
        for n in style.negative:
            if n not in negatives:
                negatives.append(n)
                added_negative = True
        changes.update({k: v for k, v in style.overrides.items() if k not in explicit})
    # Rewrite the prompt/negative text only when a style changed it, so the user's own spelling
    # ("a:2.0") is kept otherwise.
    if prompts != original:
        changes["prompt"] = join_story([StoryPart(format_prompts(new), part.start) for new, part in zip(prompts, parts)])
    if added_negative:
        changes["negative"] = " | ".join(negatives)
    return settings.replace(**changes) if changes else settings


def _with_suffix(prompt: Prompt, suffix: str) -> Prompt:
    if prompt.weight <= 0 or prompt.text.endswith(suffix.strip()):
        return prompt
    return Prompt((prompt.text + suffix).strip(), prompt.weight, prompt.stop)


__all__ = ["Style", "list_styles", "get_style", "model_preset", "demo_settings", "KINDS", "apply_style", "load_style", "normalize_name",
           "preset_dirs", "builtin_dir", "split_style_names", "is_none", "ENV_VAR"]
