"""Writing files so that a long run never ends in a lost or half-written file.

Guarantees, because a long run must never end in a lost or half-written file:

* Every file is written to a hidden temporary file in the *same* folder (``.NAME.RANDOM.tmp``),
  flushed and fsynced, then moved into place in one step. On any exception, Ctrl-C included,
  the temporary file is removed and no partial file is left. (Only a hard kill, e.g. SIGKILL or
  a power cut, can leave a ``.*.tmp`` file behind; the real name is never half-written.)
* Unless ``overwrite=True``, an existing file is never replaced, even when another process
  creates it while we write: the move is done with ``os.link`` (which fails if the name exists)
  and then the temporary name is unlinked. On file systems without hard links we fall back to
  an existence check followed by ``os.rename``; that rename refuses to replace a file on
  Windows, but on such POSIX file systems a file created in the instant between check and
  rename could be replaced.
* Disk full and permission problems become one-line :class:`~clipguide.errors.UserError`\\ s.
"""

from __future__ import annotations

import errno
import json
import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

from ..errors import UserError


class OutputExistsError(UserError, FileExistsError):
    """The target file exists and ``overwrite`` was not asked for.

    Both a :class:`UserError` (the front ends print it) and a :class:`FileExistsError` (code
    that picks names, like :func:`save_png`, catches it and tries the next name).
    """


_NO_SPACE = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}
_NO_PERMISSION = {errno.EACCES, errno.EPERM, errno.EROFS}


def _user_error(exc: BaseException, path: Path) -> UserError | None:
    """The one-line UserError for an OSError a user can fix, or None for anything else."""
    if not isinstance(exc, OSError) or isinstance(exc, FileExistsError):
        return None
    if exc.errno in _NO_SPACE:
        return _no_space(path)
    if exc.errno in _NO_PERMISSION:
        return _not_writable(path.parent)
    return None


def _no_space(path: Path) -> UserError:
    return UserError(
        f"no space left on the device while saving {path}: free some space or choose another output folder (--out)"
    )


def _not_writable(folder: Path) -> UserError:
    return UserError(f"cannot write to folder {folder}: choose a writable output folder (--out)")


def _create_temp(path: Path) -> tuple[int, Path]:
    """Create and open a new hidden temporary file beside ``path``; never reuses a name.

    ``os.open`` with mode 0o666 lets the umask decide the final permissions, so a saved file
    gets the same permissions as any other new file (``mkstemp`` would make it private).
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        tmp = path.with_name(f".{path.name[:100]}.{secrets.token_hex(6)}.tmp")
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "could not find a free temporary name", str(path))


def _remove_quietly(path: Path | None) -> None:
    if path is not None:
        try:
            os.unlink(path)
        except OSError:
            pass


def _fsync_dir(directory: Path) -> None:
    """Make the rename itself durable (POSIX); harmless where folders cannot be opened."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _publish(tmp: Path, path: Path, overwrite: bool) -> None:
    """Move the finished temporary file to ``path`` in one step (see the module docstring)."""
    if overwrite:
        os.replace(tmp, path)
        return
    try:
        os.link(tmp, path)  # atomic, and fails with EEXIST when the name is taken
    except FileExistsError:
        raise OutputExistsError(
            f"refusing to replace {path}: it already exists; choose another name or remove it"
        ) from None
    except (OSError, AttributeError, NotImplementedError):
        # No hard links here (FAT, some network and FUSE file systems): check, then rename.
        if os.path.lexists(path):
            raise OutputExistsError(
                f"refusing to replace {path}: it already exists; choose another name or remove it"
            ) from None
        os.rename(tmp, path)
        return
    os.unlink(tmp)


def atomic_write(path: Path, write: Callable[[BinaryIO], None], *, overwrite: bool = False) -> Path:
    """Create ``path`` with the bytes ``write(file)`` writes, all or nothing.

    ``write`` gets a binary file open on a temporary file in the same folder; afterwards the
    data is flushed, fsynced and moved into place. If ``write`` (or anything else) raises,
    KeyboardInterrupt included, the temporary file is removed and ``path`` is untouched.
    Without ``overwrite`` an existing ``path`` is never replaced (:class:`OutputExistsError`),
    even if it appears while writing. A full disk or an unwritable folder raises a one-line
    :class:`UserError`; other errors propagate unchanged. Returns ``path``.
    """
    path = Path(path)
    if not overwrite and os.path.lexists(path):  # fail before doing the work
        raise OutputExistsError(
            f"refusing to replace {path}: it already exists; choose another name or remove it"
        )
    tmp: Path | None = None
    try:
        try:
            fd, tmp = _create_temp(path)
        except FileNotFoundError:
            raise UserError(
                f"cannot write to folder {path.parent}: it does not exist; choose an existing output folder (--out)"
            ) from None
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        _publish(tmp, path, overwrite)
    except BaseException as exc:
        _remove_quietly(tmp)
        friendly = _user_error(exc, path)
        if friendly is not None:
            raise friendly from exc
        raise
    _fsync_dir(path.parent)
    return path


def atomic_write_bytes(path: Path, data: bytes, *, overwrite: bool = False) -> Path:
    """:func:`atomic_write` of ``data``."""
    return atomic_write(path, lambda f: f.write(data), overwrite=overwrite)


def atomic_write_text(path: Path, text: str, overwrite: bool = False) -> Path:
    """:func:`atomic_write` of ``text`` as UTF-8 (line endings written as given)."""
    return atomic_write_bytes(path, text.encode("utf-8"), overwrite=overwrite)


def read_folder_record(path: Path, fmt: str, command: str, table: str | None = None) -> dict[str, Any]:
    """The JSON record a resumable command keeps in its folder (``compare.json``, ``telephone.json``,
    ``batch.json``), checked to be of format ``fmt`` (and to hold the object ``table``); anything else is
    the one-line error, so that a folder of something else is never written into."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        ok = isinstance(data, dict) and data.get("format") == fmt and (table is None or isinstance(data.get(table), dict))
    except (OSError, ValueError):
        ok = False
    if not ok:
        raise UserError(f"{path} is not a clipguide {command} record; choose a new --out or delete the folder")
    return data


def ensure_out_dir(path: Path) -> Path:
    """Create the output folder (and its parents) if needed and check we can write in it.

    Writability is tested by creating and removing a small probe file, because permission
    bits alone do not tell (read-only mounts, ACLs, running as root). Returns the folder.
    """
    path = Path(path).expanduser()
    if path.exists() and not path.is_dir():
        raise UserError(f"cannot use {path} as the output folder: it is a file; choose another output folder (--out)")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise UserError(
            f"cannot create output folder {path}: part of that path is a file; choose another output folder (--out)"
        ) from None
    except OSError as exc:
        if exc.errno in _NO_PERMISSION:
            raise UserError(f"cannot create output folder {path}: choose a writable output folder (--out)") from exc
        if exc.errno in _NO_SPACE:
            raise UserError(f"cannot create output folder {path}: no space left on the device") from exc
        raise
    probe: Path | None = None
    try:
        fd, probe = _create_temp(path / "clipguide-write-test")
        os.close(fd)
    except OSError as exc:
        if exc.errno in _NO_SPACE:
            raise UserError(
                f"no space left on the device holding {path}: free some space or choose another output folder (--out)"
            ) from exc
        raise _not_writable(path) from exc
    finally:
        _remove_quietly(probe)
    return path

