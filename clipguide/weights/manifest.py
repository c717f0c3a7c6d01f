"""The manifest of known checkpoints: ``weights/manifest.toml``, parsed and validated.

Two tables: ``[weights.NAME]`` for generators (kinds and their file roles come from
:data:`clipguide.registry.GENERATORS`) and ``[clips.NAME]`` for CLIP models in open_clip's hub
layout. A file lists its download sources (``urls``, in order of preference) or, for files that
ship with clipguide (the demo models), a ``path`` relative to the manifest's folder.
"""

from __future__ import annotations

import os
import re
import sys
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import errors
from ..errors import UserError
from ..registry import GENERATORS

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised only on 3.10
    import tomli as tomllib

URL_SCHEMES = ("https", "http", "hf", "s3")
SECTIONS = ("weights", "clips")
#: The roles a CLIP entry's files play (open_clip's hub layout).
CLIP_ROLES = ("config", "weights")

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
SHA256_RE = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class WeightFile:
    """One file of a checkpoint: its role, local name, mirrors (or shipped path), and its hash."""

    role: str
    filename: str
    urls: tuple[str, ...]
    size: int | None = None
    sha256: str | None = None
    path: Path | None = None  # shipped with clipguide: no download, no cache


@dataclass(frozen=True)
class Entry:
    """A named checkpoint from the manifest."""

    name: str
    kind: str
    description: str
    licence: str
    homepage: str
    files: tuple[WeightFile, ...]
    section: str = "weights"

    def file(self, role: str) -> WeightFile:
        """The file playing ``role`` (e.g. ``"checkpoint"``)."""
        for f in self.files:
            if f.role == role:
                return f
        raise errors.unknown(f"role of {self.name!r}", role, [f.role for f in self.files])

    @property
    def size(self) -> int | None:
        """Total bytes, when every file's size is known."""
        sizes = [f.size for f in self.files]
        return None if None in sizes else sum(sizes)  # type: ignore[arg-type]

    @property
    def shipped(self) -> bool:
        """Every file ships with clipguide (nothing to download)."""
        return all(f.path is not None for f in self.files)


def data_dir(name: str) -> Path:
    """A data folder shipped with clipguide (``weights``, ``presets``).

    A wheel carries it as ``clipguide/_data/<name>``; an editable install reads it from the
    top of the repository, beside the package.
    """
    package = Path(__file__).resolve().parent.parent
    for candidate in (package / "_data" / name, package.parent / name):
        if candidate.is_dir():
            return candidate
    raise UserError(
        f"clipguide's {name!r} data folder is missing (looked in {package / '_data' / name} and "
        f"{package.parent / name}): reinstall clipguide"
    )


def manifest_path() -> Path:
    """The shipped manifest."""
    return data_dir("weights") / "manifest.toml"


def manifest_paths() -> list[Path]:
    """The manifests read, later ones adding to or replacing entries of earlier ones: the shipped
    manifest, then ``$CLIPGUIDE_WEIGHTS_MANIFEST`` if set (an internal mirror, say)."""
    paths = [manifest_path()]
    override = os.environ.get("CLIPGUIDE_WEIGHTS_MANIFEST")
    if override:
        paths.append(Path(override).expanduser())
    return paths


def load_manifest(path: Path | None = None, *, section: str = "weights") -> dict[str, Entry]:
    """Parse and validate the manifest(s); name → :class:`Entry` of ``section``, in file order."""
    entries: dict[str, Entry] = {}
    for p in [Path(path)] if path is not None else manifest_paths():
        entries.update(_read(p)[section])
    return entries


def _read(path: Path) -> dict[str, dict[str, Entry]]:
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"weights manifest {path} does not exist: check CLIPGUIDE_WEIGHTS_MANIFEST") from None
    except tomllib.TOMLDecodeError as e:
        raise UserError(f"weights manifest {path} is not valid TOML: {e}") from None

    def bad(where: str, problem: str) -> UserError:
        return UserError(f"weights manifest {path}: {where}: {problem}")

    unknown_top = set(raw) - {"version", *SECTIONS}
    if unknown_top:
        raise bad("top level", f"unknown keys {sorted(unknown_top)} (expected 'version', 'weights', 'clips')")
    if raw.get("version", 1) != 1:
        raise bad("version", f"format {raw['version']!r} is newer than this clipguide reads (1): upgrade clipguide")
    return {section: {name: _parse_entry(name, table, bad, section, path.parent)
                      for name, table in raw.get(section, {}).items()} for section in SECTIONS}


def roles_of(section: str, kind: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(required roles, optional roles) of an entry of ``kind``."""
    if section == "clips":
        return CLIP_ROLES, ()
    info = GENERATORS.info.get(kind, {})
    return tuple(info.get("roles", ())), tuple(info.get("optional_roles", ()))


def _parse_entry(name: str, table: Any, bad: Any, section: str, folder: Path) -> Entry:
    if not _NAME_RE.match(name):
        raise bad(name, "names may hold only letters, digits, '.', '_' and '-'")
    if not isinstance(table, dict):
        raise bad(name, "must be a table")
    fields = {"kind", "description", "licence", "homepage", "files"}
    extra, missing = set(table) - fields, fields - set(table)
    if extra or missing:
        raise bad(name, f"unknown keys {sorted(extra)}, missing keys {sorted(missing)}")
    kind = table["kind"]
    kinds = ["open_clip"] if section == "clips" else [k for k in GENERATORS if GENERATORS.info.get(k, {}).get("roles")]
    if kind not in kinds:
        raise bad(name, f"unknown kind {kind!r} (choose from {sorted(kinds)})")
    for key in ("description", "licence", "homepage"):
        if not isinstance(table[key], str) or not table[key].strip():
            raise bad(name, f"{key} must be a non-empty string")
    files = tuple(_parse_file(f"{name}.files[{i}]", f, bad, folder) for i, f in enumerate(table["files"]))
    required, optional = roles_of(section, kind)
    roles = sorted(f.role for f in files)
    if not set(required) <= set(roles) or not set(roles) <= set(required) | set(optional) or len(set(roles)) < len(roles):
        wanted = list(required) + [f"{r} (optional)" for r in optional]
        raise bad(name, f"a {kind} entry needs the roles {wanted}, got {roles}")
    if len({f.filename for f in files}) != len(files):
        raise bad(name, "two files share a filename")
    return Entry(name, kind, table["description"], table["licence"], table["homepage"], files, section)


def _parse_file(where: str, table: Any, bad: Any, folder: Path) -> WeightFile:
    if not isinstance(table, dict):
        raise bad(where, "must be a table")
    extra = set(table) - {"role", "filename", "urls", "size", "sha256", "path"}
    if extra:
        raise bad(where, f"unknown keys {sorted(extra)}")
    local = table.get("path")
    filename = table.get("filename", Path(local).name if isinstance(local, str) else None)
    # The filename becomes a path under the cache: keep it a plain name.
    if not isinstance(filename, str) or not _NAME_RE.match(filename):
        raise bad(where, f"filename {filename!r} must be a plain file name")
    if local is not None:
        if not isinstance(local, str) or Path(local).is_absolute() or ".." in Path(local).parts:
            raise bad(where, f"path {local!r} must be relative to the manifest's folder, without '..'")
        if "urls" in table:
            raise bad(where, "a file has either a shipped path or download urls, not both")
        urls: list[str] = []
    else:
        urls = table.get("urls")
        if not isinstance(urls, list) or not urls or not all(isinstance(u, str) for u in urls):
            raise bad(where, "urls must be a non-empty list of strings")
        for url in urls:
            problem = _url_problem(url)
            if problem:
                raise bad(where, problem)
    size = table.get("size")
    if size is not None and (not isinstance(size, int) or isinstance(size, bool) or size <= 0):
        raise bad(where, f"size {size!r} must be a positive number of bytes")
    sha = table.get("sha256")
    if sha is not None and (not isinstance(sha, str) or not SHA256_RE.match(sha)):
        raise bad(where, f"sha256 {sha!r} must be 64 lowercase hex digits")
    role = table.get("role")
    if not isinstance(role, str):
        raise bad(where, "role must be a string")
    return WeightFile(role, filename, tuple(urls), size, sha, folder / local if local is not None else None)


def _url_problem(url: str) -> str | None:
    """Why ``url`` cannot be a source, or None."""
    from .download import split_hf

    scheme = urllib.parse.urlsplit(url).scheme
    if scheme not in URL_SCHEMES:
        return f"URL {url!r} must start with one of {[s + '://' for s in URL_SCHEMES]}"
    if scheme == "hf" and split_hf(url) is None:
        return f"URL {url!r} must look like hf://OWNER/REPO[@REVISION]/PATH"
    if scheme == "s3" and not all(url[len("s3://") :].partition("/")[::2]):
        return f"URL {url!r} must look like s3://BUCKET/KEY"
    return None


def get_entry(name: str, *, section: str = "weights") -> Entry:
    """The manifest entry called ``name``; an unknown name is a :class:`UserError`."""
    entries = load_manifest(section=section)
    if name not in entries:
        raise errors.unknown("weights" if section == "weights" else "CLIP model", name, entries)
    return entries[name]
