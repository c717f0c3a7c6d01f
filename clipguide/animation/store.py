"""Where an animation's frames live, and how a run finds the frames it already made.

One folder per seed: ``DIR/<name>/00000.png, 00001.png, …`` (each PNG with the settings record:
``source = {"kind": "animation", "frame": f, …}``) and its video ``DIR/<name>.mp4`` (``.gif`` on
request), where ``<name>`` is ``<slug>-<seed>`` or, when that name holds a different animation,
the next free ``<slug>-<seed>-N``. A frame is written once and never replaced. With ``--smooth``
the moving average of the latents after frame f is kept beside it (``state-0000f.safetensors``,
written before the frame, the one before it removed after), so a resumed run goes on exactly.

Running the same command again finds the folder whose first frame's record matches the run (the
same settings, seeds, animation and story; the frame count, fps and GIF may differ) and goes on at
the first frame that is missing.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from PIL import Image

from ..errors import UserError
from ..output import OutputExistsError, VideoWriter, atomic_write_bytes, read_png_metadata, write_png
from .settings import OUTPUT_ONLY

#: Names tried for one seed's folder: <stem>, <stem>-1, … (as output.unique_path numbers files).
MAX_NAMES = 1000


def identity(record: dict[str, Any]) -> dict[str, Any]:
    """What must match for a run to go on from a folder's frames: the record of its first frame
    without what differs from frame to frame, between versions, or only in the written video."""
    source = {k: v for k, v in record.get("source", {}).items() if k not in ("frame", "frames")}
    source["animation"] = {k: v for k, v in (source.get("animation") or {}).items() if k not in OUTPUT_ONLY}
    return {**{k: v for k, v in record.items() if k not in ("version", "steps_done")}, "source": source}


class FrameFolder:
    """One seed's frames and videos."""

    def __init__(self, out_dir: Path, name: str) -> None:
        self.name = name
        self.folder = Path(out_dir) / name
        self.video = Path(out_dir) / f"{name}.mp4"
        self.gif = Path(out_dir) / f"{name}.gif"

    def frame_path(self, frame: int) -> Path:
        return self.folder / f"{frame:05d}.png"

    def state_path(self, frame: int) -> Path:
        return self.folder / f"state-{frame:05d}.safetensors"

    def done(self) -> int:
        """How many frames, 0, 1, 2, … in a row, are already here."""
        n = 0
        while self.frame_path(n).is_file():
            n += 1
        return n

    def load(self, frame: int) -> Image.Image:
        with Image.open(self.frame_path(frame)) as im:
            return im.convert("RGB")

    def save(self, frame: int, image: Image.Image, chunks: dict[str, str]) -> Path:
        """Write frame ``frame`` unless it is already there (a resumed batch remakes it identically)."""
        path = self.frame_path(frame)
        if not path.exists():
            self.folder.mkdir(parents=True, exist_ok=True)
            try:
                write_png(image, path, chunks)
            except OutputExistsError:
                pass  # written meanwhile by another run of the same animation: the same bytes
        return path

    # ------------------------------------------------------------------ --smooth state
    def save_state(self, frame: int, latent: dict[str, Any]) -> None:
        from safetensors.torch import save

        self.folder.mkdir(parents=True, exist_ok=True)
        data = save({k: v.detach().float().cpu().contiguous() for k, v in latent.items()})
        atomic_write_bytes(self.state_path(frame), data, overwrite=True)

    def load_state(self, frame: int) -> dict[str, Any]:
        from safetensors.torch import load_file

        path = self.state_path(frame)
        if not path.is_file():
            raise UserError(f"{self.folder} has frame {frame} but not its smoothing state {path.name}: go on in a "
                            "new folder (--out), or remove the frames after the last state")
        return load_file(str(path))

    def drop_states(self, keep: int) -> None:
        """Remove the smoothing states of every frame but ``keep`` (the next frame needs only that one)."""
        for path in self.folder.glob("state-*.safetensors"):
            if path != self.state_path(keep):
                path.unlink(missing_ok=True)

    # ------------------------------------------------------------------ videos
    def write_videos(self, frames: int, fps: float, gif: bool) -> list[Path]:
        """The MP4 (and GIF) of frames 0…frames-1, replacing this animation's earlier, shorter one."""
        written = []
        for path in (self.video, self.gif) if gif else (self.video,):
            with VideoWriter(path, fps=fps, overwrite=True) as video:
                for frame in range(frames):
                    video.append(self.load(frame))
            written.append(path)
        return written


def stored_record(path: Path) -> dict[str, Any] | None:
    """The clipguide record of a PNG as JSON, or None when there is none to read."""
    try:
        return json.loads(read_png_metadata(path).get("clipguide", "null"))
    except (UserError, json.JSONDecodeError):
        return None


def find_folder(out_dir: Path, stem: str, expected: dict[str, Any]) -> FrameFolder:
    """The folder of the animation whose record is ``expected`` (its first frame's): the one that has
    its frames already, else the first free name."""
    out_dir = Path(out_dir)
    want = identity(expected)
    for n in range(MAX_NAMES):
        name = stem if n == 0 else f"{stem}-{n}"
        candidate = FrameFolder(out_dir, name)
        if candidate.folder.is_dir():
            first = candidate.frame_path(0)
            if first.is_file():
                stored = stored_record(first)
                if stored is not None and identity(stored) == want:
                    return candidate
            elif not any(candidate.folder.glob("*.png")):
                return candidate  # started but no frame finished: nothing there to keep
            continue
        if not candidate.folder.exists() and not candidate.video.exists():
            return candidate
    raise UserError(f"{out_dir} has {MAX_NAMES} animations named {stem}: choose another output folder (--out)")


def frames_done(folders: Sequence[FrameFolder]) -> int:
    """Frames every seed has: where a resumed batch starts."""
    return min(folder.done() for folder in folders)


__all__ = ["FrameFolder", "find_folder", "frames_done", "identity", "stored_record", "MAX_NAMES"]
