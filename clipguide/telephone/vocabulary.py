"""The CLIP describer's vocabulary: phrase lists per slot and the template that makes a caption.

A vocabulary is a folder of plain-text files, one phrase a line (blank lines and ``#`` comments
skipped). ``SLOT.txt`` and ``SLOT.anything.txt`` hold the phrases of slot ``SLOT`` (``subject``,
``setting``, ``medium``, ``style``; any names work). An optional ``vocabulary.toml`` says how a
caption is put together::

    template = "{subject}[ {setting}][, {medium}][, {style}]"   # [a part] is left out while its slot is empty
    order = ["subject", "setting", "medium", "style"]          # the order slots are ranked in
    optional = ["setting", "medium", "style"]                  # slots that may stay empty

Without it the slots are joined with commas in the order above (known names first, then the
others alphabetically) and every slot but the first is optional. Built-in vocabularies live in
``clipguide/data/vocabulary`` (``general``, ``shapes``); ``index.toml`` there says which one a
CLIP model gets when none is named. This module reads files and does nothing else.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import UserError, unknown

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

BUILTIN = Path(__file__).resolve().parent.parent / "data" / "vocabulary"
KNOWN_ORDER = ("subject", "setting", "medium", "style")
#: Characters the prompt syntax reads ("a | b", "a ^ b", "text:weight"): no phrase may hold them.
RESERVED = re.compile(r"[|^:]")
_SLOT = re.compile(r"\{(\w+)\}")
_GROUP = re.compile(r"\[([^\[\]]*)\]")


@dataclass(frozen=True)
class Vocabulary:
    name: str
    folder: Path
    template: str
    slots: dict[str, tuple[str, ...]]  # slot → phrases, in file order
    order: tuple[str, ...]
    optional: frozenset[str]

    @property
    def size(self) -> int:
        return sum(len(p) for p in self.slots.values())

    def render(self, chosen: Mapping[str, str]) -> str:
        """The caption with the ``chosen`` phrases; a [part] whose slot has none is left out."""
        def group(match: re.Match) -> str:
            slot = _SLOT.search(match.group(1)).group(1)
            return _fill(match.group(1), chosen) if chosen.get(slot) else ""

        return " ".join(_fill(_GROUP.sub(group, self.template), chosen).split()).strip(" ,;")

    def describe(self) -> str:
        counts = " + ".join(f"{len(self.slots[s])} {s}" for s in self.order)
        return f"vocabulary {self.name!r} ({counts} phrases)"


def _fill(text: str, chosen: Mapping[str, str]) -> str:
    return _SLOT.sub(lambda m: chosen.get(m.group(1), ""), text)


def builtin_names() -> list[str]:
    return sorted(p.name for p in BUILTIN.iterdir() if p.is_dir())


def resolve(spec: str | None, clips: Sequence[str]) -> Path:
    """The folder a ``vocabulary`` setting names: a folder, a built-in name, or (None) the one
    ``index.toml`` gives the first CLIP model."""
    if spec is None:
        with open(BUILTIN / "index.toml", "rb") as f:
            index = tomllib.load(f)
        spec = index.get("clips", {}).get(clips[0] if clips else "", index["default"])
    path = Path(spec).expanduser()
    if path.is_dir():
        return path
    if (BUILTIN / spec).is_dir() and "/" not in spec:
        return BUILTIN / spec
    if path.exists():
        raise UserError(f"vocabulary {spec} is a file: give a folder of SLOT.txt phrase files (--vocabulary DIR)")
    raise unknown("vocabulary (a folder or a built-in name)", spec, builtin_names())


def load(folder: Path) -> Vocabulary:
    """Read a vocabulary folder; every problem is a one-line UserError naming the file."""
    folder = Path(folder)
    slots: dict[str, list[str]] = {}
    for path in sorted(folder.glob("*.txt")):
        phrases = slots.setdefault(path.name.split(".")[0], [])
        for number, line in enumerate(_read(path).splitlines(), 1):
            phrase = " ".join(line.split())
            if not phrase or phrase.startswith("#"):
                continue
            if RESERVED.search(phrase):
                raise UserError(f"{path}:{number}: the phrase {phrase!r} holds '|', '^' or ':', which prompts read "
                                "as syntax; rewrite it without them")
            if phrase not in phrases:
                phrases.append(phrase)
    slots = {slot: phrases for slot, phrases in slots.items() if phrases}
    if not slots:
        raise UserError(f"vocabulary folder {folder} holds no phrases: put one phrase a line in SLOT.txt files "
                        "(subject.txt, setting.txt, medium.txt, style.txt)")
    config = _config(folder)
    names = sorted(slots, key=lambda s: (KNOWN_ORDER.index(s) if s in KNOWN_ORDER else len(KNOWN_ORDER), s))
    template = config.get("template") or f"{{{names[0]}}}" + "".join(f"[, {{{s}}}]" for s in names[1:])
    used = _SLOT.findall(template)
    order = tuple(config.get("order") or used)
    optional = frozenset(config["optional"] if "optional" in config else order[1:])
    where = folder / "vocabulary.toml"
    if not isinstance(template, str) or not used:
        raise UserError(f"{where}: template must be text with {{slot}} parts, e.g. \"{{subject}}[, {{style}}]\"")
    for group in _GROUP.findall(template):
        if len(_SLOT.findall(group)) != 1:
            raise UserError(f"{where}: each [part] of the template holds exactly one {{slot}}, not {group!r}")
    missing = [s for s in (*used, *order, *optional) if s not in slots]
    if missing:
        raise UserError(f"{where}: slot {missing[0]!r} has no phrases: add {missing[0]}.txt to {folder} or drop it "
                        "from the template")
    if sorted(order) != sorted(set(used)):
        raise UserError(f"{where}: order must list every slot of the template once, got {list(order)}")
    unused = sorted(set(slots) - set(used))
    if unused:
        raise UserError(f"{where}: the template uses no {{{unused[0]}}}, yet {unused[0]}.txt holds phrases; add it "
                        "to the template or remove the file")
    return Vocabulary(folder.name, folder, template, {s: tuple(slots[s]) for s in used}, order, optional)


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise UserError(f"vocabulary file {path} is not UTF-8 text; save it as UTF-8") from None
    except OSError as e:
        raise UserError(f"cannot read vocabulary file {path}: {e.strerror}") from None


def _config(folder: Path) -> dict:
    path = folder / "vocabulary.toml"
    if not path.exists():
        return {}
    try:
        config = tomllib.loads(_read(path))
    except tomllib.TOMLDecodeError as e:
        raise UserError(f"malformed {path}: {e}") from None
    for key in config:
        if key not in ("template", "order", "optional"):
            raise unknown(f"key in {path}:", key, ("template", "order", "optional"))
    for key in ("order", "optional"):
        if key in config and not (isinstance(config[key], list) and all(isinstance(s, str) for s in config[key])):
            raise UserError(f"{path}: {key} must be a list of slot names")
    return config


__all__ = ["Vocabulary", "load", "resolve", "builtin_names", "BUILTIN", "RESERVED"]
