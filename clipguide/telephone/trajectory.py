"""A trajectory on disk: its rounds' PNGs (the truth), and the summaries written beside them.

``FOLDER/t<j>/round-000.png``, ``round-001.png``, …: each PNG's record (``kind: telephone``) says
which start prompt, trajectory and round it is, the text it was generated from and the caption
the describer gave it. ``trajectory.json`` and ``captions.txt`` summarise them and are rewritten
(atomically) after every round; a resume reads the PNGs, so an interrupt between the two writes
loses nothing.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import UserError
from ..output import atomic_write_text, read_record

_ROUND = re.compile(r"round-(\d+)")
FORMAT = "clipguide-telephone-trajectory"


def round_stem(r: int) -> str:
    return f"round-{r:03d}"


def trajectory_dir(folder: Path, index: int) -> Path:
    return Path(folder) / f"t{index}"


@dataclass(frozen=True)
class Round:
    round: int
    seed: int
    prompt: str  # the text it was generated from: the start prompt, or the caption of the round before
    caption: str  # what the describer said of its image
    image: Path

    def to_dict(self, root: Path) -> dict[str, Any]:
        return {"round": self.round, "seed": self.seed, "prompt": self.prompt, "caption": self.caption,
                "image": _relative(self.image, root)}


@dataclass
class Trajectory:
    start_prompt: str
    index: int
    folder: Path  # t<j>/
    rounds: list[Round] = field(default_factory=list)

    @property
    def captions(self) -> list[str]:
        return [r.caption for r in self.rounds]

    def to_dict(self, root: Path) -> dict[str, Any]:
        return {"start_prompt": self.start_prompt, "trajectory": self.index,
                "rounds": [r.to_dict(root) for r in self.rounds]}


def _relative(path: Path, root: Path) -> str:
    try:
        return Path(path).relative_to(root).as_posix()
    except ValueError:
        return Path(path).as_posix()


def round_files(folder: Path) -> dict[int, Path]:
    if not folder.is_dir():
        return {}
    return {int(m[1]): p for p in folder.glob("round-*.png") if (m := _ROUND.fullmatch(p.stem))}


def read_trajectory(folder: Path, start_prompt: str, index: int) -> Trajectory:
    """The rounds a trajectory folder holds, checked to be one unbroken chain from ``start_prompt``."""
    tdir = trajectory_dir(folder, index)
    files = round_files(tdir)
    trajectory = Trajectory(start_prompt, index, tdir)
    previous = start_prompt
    for r in range(len(files)):
        if r not in files:
            raise UserError(f"{tdir} has rounds after a missing {round_stem(r)}.png: the trajectory is broken; "
                            "delete the rounds after the gap (or the folder) and run again")
        record = read_record(files[r])
        source = record.source
        if (source.get("kind") != "telephone" or source.get("round") != r or source.get("trajectory") != index
                or source.get("start_prompt") != start_prompt):
            raise UserError(f"{files[r]} is not round {r} of trajectory {index} from {start_prompt!r}: "
                            "choose a new --out or delete the folder")
        if source.get("generated_from") != previous:
            raise UserError(f"{files[r]} was generated from {source.get('generated_from')!r}, not from the caption "
                            f"before it ({previous!r}): the trajectory is broken; delete it and run again")
        previous = str(source.get("caption", ""))
        trajectory.rounds.append(Round(r, int(record.settings.get("seed", 0)), source["generated_from"], previous,
                                       files[r]))
    return trajectory


def load_trajectory(folder: Path, start_prompt: str, index: int) -> Trajectory:
    """Like :func:`read_trajectory`, from ``trajectory.json`` when it lists every round PNG there is
    (reading thousands of PNG records makes a big study's report slow)."""
    tdir = trajectory_dir(folder, index)
    summary = tdir / "trajectory.json"
    files = round_files(tdir)
    if summary.is_file():
        try:
            data = json.loads(summary.read_text(encoding="utf-8"))
            rounds = [Round(int(r["round"]), int(r["seed"]), str(r["prompt"]), str(r["caption"]),
                            tdir / Path(r["image"]).name) for r in data["rounds"]]
            if (data.get("format") == FORMAT and data.get("start_prompt") == start_prompt
                    and [r.round for r in rounds] == sorted(files) == list(range(len(files)))
                    and all(files[r.round] == r.image for r in rounds)):
                return Trajectory(start_prompt, index, tdir, rounds)
        except (OSError, ValueError, KeyError, TypeError):
            pass  # damaged or stale: the PNGs say what is there
    return read_trajectory(folder, start_prompt, index)


def write_summary(trajectory: Trajectory) -> None:
    """trajectory.json (the rounds, image paths relative to the folder) and captions.txt."""
    data = {"format": FORMAT, **trajectory.to_dict(trajectory.folder)}
    atomic_write_text(trajectory.folder / "trajectory.json", json.dumps(data, indent=1, ensure_ascii=False) + "\n",
                      overwrite=True)
    lines = "".join(f"{r.round}\t{r.caption}\n" for r in trajectory.rounds)
    atomic_write_text(trajectory.folder / "captions.txt", lines, overwrite=True)


__all__ = ["Round", "Trajectory", "read_trajectory", "load_trajectory", "write_summary", "trajectory_dir",
           "round_stem", "round_files"]
