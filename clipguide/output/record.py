"""The one versioned schema of the settings record clipguide writes into every PNG it makes.

Chunk ``clipguide`` holds JSON::

    {"schema": 2, "version": "0.1.0",
     "settings": {...},      # as given, with this image's own seed and seeds=1: what `again` re-runs
     "resolved": {...},      # after the style preset was applied
     "explicit": [...],      # fields the user set themselves (they beat a style's overrides)
     "steps_done": 240,
     "source": {"kind": "generate", ...}}   # or "frame", "compare", "animation", "telephone", with
                                            # what that front end needs to re-run it

``prompt``, ``seed`` and ``Software`` chunks are for people and other tools. :func:`read_record`
also reads the two older layouts (schema 1: settings as the whole chunk, and compare's own), so
``clipguide again`` works on every PNG any clipguide wrote.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import UserError
from .images import read_png_metadata

SCHEMA = 2


@dataclass(frozen=True)
class Record:
    settings: dict[str, Any]
    explicit: frozenset[str] = frozenset()
    steps_done: int | None = None
    source: dict[str, Any] = field(default_factory=dict)
    version: str = ""

    @property
    def kind(self) -> str:
        return str(self.source.get("kind", "generate"))


def png_chunks(result: Any, k: int, *, steps_done: int | None = None, **source: Any) -> dict[str, str]:
    """The text chunks of image ``k`` of a run or its result (anything with ``settings``, ``resolved``,
    ``seeds`` and ``explicit``); ``source`` says what made it (``kind`` and what that kind needs)."""
    from .. import __version__
    from ..settings import to_dict

    seed = result.seeds[k]
    steps_done = steps_done if steps_done is not None else getattr(result, "steps_done", None)
    own = result.settings.replace(seed=seed, seeds=1)
    source = {"kind": "generate", **source}
    if len(result.seeds) > 1:
        # the batch it was made in: an exact rerun in another batch size is only guaranteed in fp32
        source.setdefault("batch", {"seed": result.seeds[0], "seeds": len(result.seeds)})
    record = {"schema": SCHEMA, "version": __version__, "settings": to_dict(own),
              "resolved": to_dict(result.resolved.replace(seed=seed, seeds=1)), "explicit": sorted(getattr(result, "explicit", ())),
              "steps_done": steps_done, "source": source}
    return {"clipguide": json.dumps(record, sort_keys=True, ensure_ascii=False, default=str),
            "prompt": result.resolved.prompt, "seed": str(seed), "Software": f"clipguide {__version__}"}


def read_record(path: str | Path) -> Record:
    """The settings record of a PNG clipguide made (any schema); one-line UserErrors otherwise."""
    meta = read_png_metadata(Path(path))
    if "clipguide" not in meta:
        raise UserError(f"{path} has no clipguide settings in its metadata: `again` needs a PNG clipguide made")
    try:
        data = json.loads(meta["clipguide"])
    except json.JSONDecodeError:
        raise UserError(f"the clipguide metadata in {path} is damaged: it is not valid JSON") from None
    if not isinstance(data, dict):
        raise UserError(f"the clipguide metadata in {path} is damaged: it is not a JSON object")
    schema = data.get("schema")
    if schema == SCHEMA:
        return Record(dict(data.get("settings") or {}), frozenset(data.get("explicit") or ()), data.get("steps_done"),
                      dict(data.get("source") or {}), str(data.get("version", "")))
    if schema is not None:
        raise UserError(f"{path} was written with settings schema {schema}, newer than this clipguide reads "
                        f"({SCHEMA}): upgrade clipguide")
    if "compare_style" in data and isinstance(data.get("settings"), dict):  # compare's own layout (schema 1)
        settings = {**data["settings"], "seed": data.get("seed", data["settings"].get("seed", 0)), "seeds": 1}
        return Record(settings, frozenset(), None, {"kind": "compare", "style": data["compare_style"]})
    try:  # schema 1: the settings were the whole chunk, the rest in chunks of their own
        explicit = frozenset(json.loads(meta.get("clipguide:explicit", "[]")))
    except json.JSONDecodeError:
        explicit = frozenset()
    steps = meta.get("clipguide:steps_done")
    return Record(data, explicit, int(steps) if steps and steps.isdigit() else None, {"kind": "generate"},
                  meta.get("clipguide:version", ""))


__all__ = ["SCHEMA", "Record", "png_chunks", "read_record"]
