"""The local cache of checkpoint files: where they live, whether they are sound, and fetching them.

Files live in ``$CLIPGUIDE_HOME/weights/<name>/<filename>`` (default: the user cache folder).
Where no trustworthy hash is published, the hash of the first download is recorded beside the
file (``<file>.sha256``, JSON) and every later check compares against it (trust on first use).
The same record carries the file's size and mtime, so an unchanged file is not re-hashed on every
load; ``verify`` always hashes in full. Files that ship with clipguide (the demo models) are
used where they lie. Offline use (``offline=True``, ``HF_HUB_OFFLINE=1`` or
``CLIPGUIDE_OFFLINE=1``) never touches the network and says exactly which file to put where.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any

from ..errors import MissingWeightsError
from .download import display_url, download, sha256_file
from .manifest import SHA256_RE, Entry, WeightFile, get_entry

log = logging.getLogger("clipguide.weights")

_TRUE = {"1", "true", "yes", "on"}
#: Appended to a failed download's message: the demo models need no network at all.
OFFLINE_HINT = "; without a network, `--demo` runs on the shipped offline demo models"


def home() -> Path:
    """clipguide's cache root: ``$CLIPGUIDE_HOME``, else the platform's user cache folder."""
    env = os.environ.get("CLIPGUIDE_HOME")
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("clipguide"))


def entry_dir(name: str, section: str = "weights") -> Path:
    """Where the files of checkpoint ``name`` are cached."""
    return home() / section / get_entry(name, section=section).name


def file_path(entry: Entry, wf: WeightFile) -> Path:
    """Where one file of ``entry`` is read from: its shipped path, or its place in the cache."""
    return wf.path if wf.path is not None else home() / entry.section / entry.name / wf.filename


def is_offline(offline: bool = False) -> bool:
    """True when downloads are forbidden, by argument or by environment."""
    return offline or any(
        os.environ.get(var, "").strip().lower() in _TRUE for var in ("HF_HUB_OFFLINE", "CLIPGUIDE_OFFLINE")
    )


def _record_path(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def _read_record(path: Path) -> dict[str, Any] | None:
    try:
        record = json.loads(_record_path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    ok = isinstance(record, dict) and SHA256_RE.match(str(record.get("sha256", "")))
    return record if ok else None


def _write_record(path: Path, sha: str, source: str) -> None:
    """Write ``<file>.sha256`` atomically: the hash, and a stamp of the file it was taken from.

    A cache on a read-only mount cannot take the record; that only costs a re-hash next time.
    """
    try:
        _write_record_unchecked(path, sha, source)
    except OSError as e:
        log.debug("could not record the hash of %s: %s", path, e)


def _write_record_unchecked(path: Path, sha: str, source: str) -> None:
    stat = path.stat()
    record = {
        "sha256": sha,
        "size": stat.st_size,
        "mtime_ns": stat.st_mtime_ns,
        "source": source,
        "recorded": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    tmp = _record_path(path).with_name(_record_path(path).name + ".tmp")
    tmp.write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    os.replace(tmp, _record_path(path))


def _check_cached(wf: WeightFile, path: Path, *, full: bool) -> tuple[bool, str]:
    """Is the cached ``path`` a good copy of ``wf``? Returns (ok, message).

    The reference hash is the manifest's, else the one recorded at first download. A file
    with neither (put there by hand) is accepted and its hash recorded. Unless ``full``, a file
    whose size and mtime match the record of an earlier successful check is not re-hashed.
    """
    if not path.is_file():
        return False, f"missing: {path}"
    size = path.stat().st_size
    if wf.size is not None and size != wf.size:
        return False, f"size is {size} bytes, expected {wf.size}"
    record = _read_record(path)
    expected = wf.sha256 or (record["sha256"] if record else None)
    origin = "manifest" if wf.sha256 else "hash recorded at first download"
    if (
        not full
        and record is not None
        and record["sha256"] == expected
        and record.get("size") == size
        and record.get("mtime_ns") == path.stat().st_mtime_ns
    ):
        return True, f"ok (unchanged since checked against the {origin})"
    actual = sha256_file(path)
    if expected is None:
        _write_record(path, actual, "found in cache")
        return True, "ok (no published hash; recorded this file's sha256 for later checks)"
    if actual != expected:
        return False, f"sha256 {actual[:12]}… does not match the {origin} ({expected[:12]}…)"
    _write_record(path, actual, (record or {}).get("source", "found in cache"))
    return True, f"ok (sha256 matches the {origin})"


def verify(name: str, section: str = "weights") -> list[tuple[str, bool, str]]:
    """Hash every cached (or shipped) file of ``name`` in full: ``[(filename, ok, message)]``."""
    entry = get_entry(name, section=section)
    return [(wf.filename, *(_check_shipped(wf) if wf.path is not None else
                            _check_cached(wf, file_path(entry, wf), full=True))) for wf in entry.files]


def _check_shipped(wf: WeightFile) -> tuple[bool, str]:
    """A file that ships with clipguide, against the manifest's size and sha256 (nothing is written)."""
    assert wf.path is not None
    if not wf.path.is_file():
        return False, f"missing: {wf.path} (reinstall clipguide)"
    actual = sha256_file(wf.path)
    if wf.sha256 is not None and actual != wf.sha256:
        return False, f"sha256 {actual[:12]}… does not match the manifest ({wf.sha256[:12]}…): reinstall clipguide"
    return True, "ok (shipped with clipguide; sha256 matches the manifest)"


def fetch(name: str, *, offline: bool = False, progress: bool = True, section: str = "weights") -> dict[str, Path]:
    """Make sure every file of checkpoint ``name`` is on disk and sound; role → local path.

    Missing or corrupt files are downloaded (unless offline, where they are reported with the
    exact path to put them at). Shipped files are used where they lie.
    """
    entry = get_entry(name, section=section)
    offline = is_offline(offline)
    paths: dict[str, Path] = {}
    for wf in entry.files:
        path = file_path(entry, wf)
        if wf.path is not None:
            if not path.is_file():
                raise MissingWeightsError(f"the shipped {entry.name} {wf.role} file is missing: expected {path} "
                                          "(reinstall clipguide)")
            paths[wf.role] = path
            continue
        ok, message = _check_cached(wf, path, full=False)
        if not ok:
            if offline:
                raise _offline_error(entry, wf, path, message)
            if path.exists() or path.is_symlink():
                log.warning("%s: %s; downloading it again", path, message)
                path.unlink()
            record = _read_record(path)
            expected = wf.sha256 or (record["sha256"] if record else None)
            try:
                _, source = download(wf.urls, path, sha256=expected, size=wf.size, progress=progress)
            except MissingWeightsError as e:
                if record and not wf.sha256:
                    raise MissingWeightsError(
                        f"{e}; the reference hash is the one recorded at first download: if the "
                        f"file changed upstream on purpose, delete {_record_path(path)} to accept it"
                    ) from None
                raise MissingWeightsError(f"{e}{OFFLINE_HINT}") from None
            _write_record(path, sha256_file(path) if expected is None else expected, source)
        paths[wf.role] = path
    return paths


def _offline_error(entry: Entry, wf: WeightFile, path: Path, problem: str) -> MissingWeightsError:
    url = display_url(wf.urls[0])
    if path.exists():
        return MissingWeightsError(
            f"{path} ({entry.name} {wf.role}) failed verification: {problem}; offline mode cannot "
            f"download it again: replace it with a good copy (from {url}) or run "
            f"`clipguide weights download {entry.name}` online"
        )
    return MissingWeightsError(
        f"missing weights file {wf.filename} ({wf.role}) of {entry.name!r}, and offline mode is on: "
        f"put it at {path} (on a connected machine get it from {url})"
    )
