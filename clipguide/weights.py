"""Known checkpoints: the manifest, the download cache, and integrity checks.

``weights/manifest.toml`` lists every checkpoint clipguide knows by name, each file with several
mirrors, and its size and sha256 where a public record of them exists. Files are cached outside
the package, in ``$CLIPGUIDE_HOME/weights/<name>/<filename>`` (default: the user cache folder).

Why it is shaped like this:

* The public homes of these checkpoints keep dying (the VQGAN+CLIP notebooks are full of dead
  links), so every file has mirrors, and a download moves on to the next one when a mirror is
  down, answers with an error page, or serves bytes that fail the checksum.
* Checkpoints are large and connections drop, so downloads go to ``<file>.part``, resume with an
  HTTP Range request, and are renamed into place only once verified: a file under its final
  name is always complete.
* Where no trustworthy hash is published, the hash of the first download is recorded beside the
  file (``<file>.sha256``, JSON) and every later check compares against it (trust on first use).
  The same record carries the file's size and mtime, so an unchanged file is not re-hashed on
  every load; ``verify`` always hashes in full.
* Offline use (``offline=True``, ``HF_HUB_OFFLINE=1`` or ``CLIPGUIDE_OFFLINE=1``) never touches
  the network and says exactly which file to put where.

This module does I/O (downloads, a tqdm progress bar on stderr, warnings through ``logging``);
the engine never imports it.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import logging
import os
import re
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import errors
from .errors import MissingWeightsError, UserError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised only on 3.10
    import tomli as tomllib

log = logging.getLogger(__name__)

#: The roles each kind of checkpoint must provide, exactly.
ROLES: dict[str, tuple[str, ...]] = {
    "vqgan": ("checkpoint", "config"),
    "biggan": ("config", "weights"),
}
URL_SCHEMES = ("https", "http", "hf", "s3")

_CHUNK = 1 << 20
_TIMEOUT = 60  # seconds without a byte before a mirror counts as failed
_RESUMES_PER_MIRROR = 3  # a flaky connection resumes this often before the next mirror is tried
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
_TRUE = {"1", "true", "yes", "on"}


# --------------------------------------------------------------------------------------------
# Manifest
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WeightFile:
    """One file of a checkpoint: its role, local name, mirrors, and what it must hash to."""

    role: str
    filename: str
    urls: tuple[str, ...]
    size: int | None = None
    sha256: str | None = None


@dataclass(frozen=True)
class Entry:
    """A named checkpoint from the manifest."""

    name: str
    kind: str
    description: str
    licence: str
    homepage: str
    files: tuple[WeightFile, ...]

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


def data_dir(name: str) -> Path:
    """A data folder shipped with clipguide (``weights``, ``presets``).

    A wheel carries it as ``clipguide/_data/<name>``; an editable install reads it from the
    top of the repository, beside the package.
    """
    package = Path(__file__).resolve().parent
    for candidate in (package / "_data" / name, package.parent / name):
        if candidate.is_dir():
            return candidate
    raise UserError(
        f"clipguide's {name!r} data folder is missing (looked in {package / '_data' / name} and "
        f"{package.parent / name}): reinstall clipguide"
    )


def manifest_path() -> Path:
    """The manifest in use: ``$CLIPGUIDE_WEIGHTS_MANIFEST`` if set, else the shipped one."""
    override = os.environ.get("CLIPGUIDE_WEIGHTS_MANIFEST")
    return Path(override).expanduser() if override else data_dir("weights") / "manifest.toml"


def load_manifest(path: Path | None = None) -> dict[str, Entry]:
    """Parse and validate the manifest; name → :class:`Entry`, in file order."""
    path = Path(path) if path is not None else manifest_path()
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"weights manifest {path} does not exist: check CLIPGUIDE_WEIGHTS_MANIFEST") from None
    except tomllib.TOMLDecodeError as e:
        raise UserError(f"weights manifest {path} is not valid TOML: {e}") from None

    def bad(where: str, problem: str) -> UserError:
        return UserError(f"weights manifest {path}: {where}: {problem}")

    unknown_top = set(raw) - {"version", "weights"}
    if unknown_top:
        raise bad("top level", f"unknown keys {sorted(unknown_top)} (expected 'version', 'weights')")
    if raw.get("version", 1) != 1:
        raise bad("version", f"format {raw['version']!r} is newer than this clipguide reads (1): upgrade clipguide")
    entries: dict[str, Entry] = {}
    for name, table in raw.get("weights", {}).items():
        entries[name] = _parse_entry(name, table, bad)
    return entries


def _parse_entry(name: str, table: Any, bad: Any) -> Entry:
    if not _NAME_RE.match(name):
        raise bad(name, "names may hold only letters, digits, '.', '_' and '-'")
    if not isinstance(table, dict):
        raise bad(name, "must be a table")
    fields = {"kind", "description", "licence", "homepage", "files"}
    extra, missing = set(table) - fields, fields - set(table)
    if extra or missing:
        raise bad(name, f"unknown keys {sorted(extra)}, missing keys {sorted(missing)}")
    kind = table["kind"]
    if kind not in ROLES:
        raise bad(name, f"unknown kind {kind!r} (choose from {sorted(ROLES)})")
    for key in ("description", "licence", "homepage"):
        if not isinstance(table[key], str) or not table[key].strip():
            raise bad(name, f"{key} must be a non-empty string")
    files = tuple(_parse_file(f"{name}.files[{i}]", f, bad) for i, f in enumerate(table["files"]))
    roles = sorted(f.role for f in files)
    if roles != sorted(ROLES[kind]):
        raise bad(name, f"a {kind} entry needs exactly the roles {list(ROLES[kind])}, got {roles}")
    if len({f.filename for f in files}) != len(files):
        raise bad(name, "two files share a filename")
    return Entry(name, kind, table["description"], table["licence"], table["homepage"], files)


def _parse_file(where: str, table: Any, bad: Any) -> WeightFile:
    if not isinstance(table, dict):
        raise bad(where, "must be a table")
    extra = set(table) - {"role", "filename", "urls", "size", "sha256"}
    if extra:
        raise bad(where, f"unknown keys {sorted(extra)}")
    filename = table.get("filename")
    # The filename becomes a path under the cache: keep it a plain name.
    if not isinstance(filename, str) or not _NAME_RE.match(filename):
        raise bad(where, f"filename {filename!r} must be a plain file name")
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
    if sha is not None and (not isinstance(sha, str) or not _SHA256_RE.match(sha)):
        raise bad(where, f"sha256 {sha!r} must be 64 lowercase hex digits")
    role = table.get("role")
    if not isinstance(role, str):
        raise bad(where, "role must be a string")
    return WeightFile(role, filename, tuple(urls), size, sha)


def _url_problem(url: str) -> str | None:
    """Why ``url`` cannot be a source, or None."""
    scheme = urllib.parse.urlsplit(url).scheme
    if scheme not in URL_SCHEMES:
        return f"URL {url!r} must start with one of {[s + '://' for s in URL_SCHEMES]}"
    if scheme == "hf" and _split_hf(url) is None:
        return f"URL {url!r} must look like hf://OWNER/REPO[@REVISION]/PATH"
    if scheme == "s3" and not all(url[len("s3://") :].partition("/")[::2]):
        return f"URL {url!r} must look like s3://BUCKET/KEY"
    return None


def get_entry(name: str) -> Entry:
    """The manifest entry called ``name``; an unknown name is a :class:`UserError`."""
    entries = load_manifest()
    if name not in entries:
        raise errors.unknown("weights", name, entries)
    return entries[name]


# --------------------------------------------------------------------------------------------
# Cache layout and checks
# --------------------------------------------------------------------------------------------


def home() -> Path:
    """clipguide's cache root: ``$CLIPGUIDE_HOME``, else the platform's user cache folder."""
    env = os.environ.get("CLIPGUIDE_HOME")
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("clipguide"))


def entry_dir(name: str) -> Path:
    """Where the files of checkpoint ``name`` are cached."""
    return home() / "weights" / get_entry(name).name


def is_offline(offline: bool = False) -> bool:
    """True when downloads are forbidden, by argument or by environment."""
    return offline or any(
        os.environ.get(var, "").strip().lower() in _TRUE for var in ("HF_HUB_OFFLINE", "CLIPGUIDE_OFFLINE")
    )


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _record_path(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def _read_record(path: Path) -> dict[str, Any] | None:
    try:
        record = json.loads(_record_path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    ok = isinstance(record, dict) and _SHA256_RE.match(str(record.get("sha256", "")))
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


def verify(name: str) -> list[tuple[str, bool, str]]:
    """Hash every cached file of ``name`` in full: ``[(filename, ok, message)]``."""
    entry, folder = get_entry(name), entry_dir(name)
    return [(wf.filename, *_check_cached(wf, folder / wf.filename, full=True)) for wf in entry.files]


def fetch(name: str, *, offline: bool = False, progress: bool = True) -> dict[str, Path]:
    """Make sure every file of checkpoint ``name`` is cached and sound; role → local path.

    Missing or corrupt files are downloaded (unless offline, where they are reported with the
    exact path to put them at).
    """
    entry, folder = get_entry(name), entry_dir(name)
    offline = is_offline(offline)
    paths: dict[str, Path] = {}
    for wf in entry.files:
        path = folder / wf.filename
        ok, message = _check_cached(wf, path, full=False)
        if not ok:
            if offline:
                raise _offline_error(entry, wf, path, message)
            if path.exists():
                log.warning("%s: %s; downloading it again", path, message)
                path.unlink()
            record = _read_record(path)
            expected = wf.sha256 or (record["sha256"] if record else None)
            try:
                _, source = _download(wf.urls, path, sha256=expected, size=wf.size, progress=progress)
            except MissingWeightsError as e:
                if record and not wf.sha256:
                    raise MissingWeightsError(
                        f"{e}; the reference hash is the one recorded at first download: if the "
                        f"file changed upstream on purpose, delete {_record_path(path)} to accept it"
                    ) from None
                raise
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


# --------------------------------------------------------------------------------------------
# Downloading
# --------------------------------------------------------------------------------------------


class _MirrorFailed(Exception):
    """This source cannot give us the file; the message says why."""


class _Dropped(_MirrorFailed):
    """The connection ended after some bytes arrived: worth resuming from the same source."""


class _RangeRefused(_MirrorFailed):
    """The server answered 416: our partial file does not fit the file it serves."""


def display_url(url: str) -> str:
    """A URL a person can paste in a browser (``hf://`` becomes its https address)."""
    return _hf_to_https(url) if _split_hf(url) else url


def _split_hf(url: str) -> tuple[str, str | None, str] | None:
    """``hf://OWNER/REPO[@REVISION]/PATH`` → (repo id, revision, path), or None if malformed."""
    if not url.startswith("hf://"):
        return None
    parts = url[len("hf://") :].split("/", 2)
    if len(parts) != 3 or not all(parts):
        return None
    owner, repo, filename = parts
    repo, _, revision = repo.partition("@")
    return (f"{owner}/{repo}", revision or None, filename) if repo else None


def _hf_to_https(url: str) -> str:
    """The hub's resolve URL for an ``hf://`` source (honours ``HF_ENDPOINT`` at call time)."""
    split = _split_hf(url)
    if split is None:
        raise _MirrorFailed(f"malformed hf:// URL {url!r} (expected hf://OWNER/REPO[@REVISION]/PATH)")
    from huggingface_hub import hf_hub_url

    repo_id, revision, filename = split
    # Read HF_ENDPOINT now: huggingface_hub reads it once, at import.
    endpoint = (os.environ.get("HF_ENDPOINT") or "https://huggingface.co").rstrip("/")
    return hf_hub_url(repo_id, filename, revision=revision, endpoint=endpoint)


def download_file(
    urls: Sequence[str],
    dest: Path,
    *,
    sha256: str | None = None,
    size: int | None = None,
    progress: bool = True,
) -> Path:
    """Download ``dest`` from the first of ``urls`` that yields a verified copy.

    Resumes ``<dest>.part`` with an HTTP Range request, moves on to the next mirror when one
    fails (connection or HTTP error, wrong size or sha256), and renames into place only after
    verification. If every mirror fails, raises :class:`MissingWeightsError` listing each one
    and why.
    """
    return _download(urls, Path(dest), sha256=sha256, size=size, progress=progress)[0]


def _download(
    urls: Sequence[str], dest: Path, *, sha256: str | None, size: int | None, progress: bool
) -> tuple[Path, str]:
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    failures = []
    for url in urls:
        try:
            _fetch_from(url, part, sha256=sha256, size=size, progress=progress, label=dest.name)
        except _MirrorFailed as e:
            log.warning("could not get %s from %s: %s", dest.name, display_url(url), e)
            failures.append(f"{display_url(url)}: {e}")
            continue
        os.replace(part, dest)
        return dest, url
    raise MissingWeightsError(
        f"could not download {dest.name} from any source ({'; '.join(failures)}); check the "
        f"connection and try again, or fetch it elsewhere and put it at {dest}"
    )


def _fetch_from(url: str, part: Path, *, sha256: str | None, size: int | None, progress: bool, label: str) -> None:
    """Complete and verify ``part`` from one source, or raise :class:`_MirrorFailed`."""
    resumes, restarts = _RESUMES_PER_MIRROR, 1
    while True:
        start = part.stat().st_size if part.exists() else 0
        if size is not None and start > size:
            part.unlink()
            start = 0
        try:
            if size is None or start < size:  # a .part of the full size only needs checking
                _stream(url, part, start, progress=progress, label=label, size=size)
        except _Dropped as e:
            if resumes:
                resumes -= 1
                log.warning("%s: %s; resuming", label, e)
                continue
            raise _MirrorFailed(f"connection kept dropping ({e})") from None
        except _RangeRefused as e:
            part.unlink(missing_ok=True)
            if restarts:
                restarts -= 1
                continue
            raise _MirrorFailed(str(e)) from None
        problem = _verify_part(part, sha256=sha256, size=size)
        if problem is None:
            return
        part.unlink()
        if start and restarts:
            # The bytes we resumed from may be a stale or foreign prefix: retry from scratch once.
            restarts -= 1
            continue
        raise _MirrorFailed(problem)


def _verify_part(part: Path, *, sha256: str | None, size: int | None) -> str | None:
    got = part.stat().st_size
    if size is not None and got != size:
        return f"got {got} bytes, expected {size}"
    if sha256 is not None:
        actual = sha256_file(part)
        if actual != sha256:
            return f"sha256 mismatch (got {actual[:12]}…, expected {sha256[:12]}…)"
    return None


def _stream(url: str, part: Path, start: int, *, progress: bool, label: str, size: int | None) -> None:
    """Append the rest of the file from ``start`` (or rewrite it, if the server ignores Range)."""
    body, offset, total = _open(url, start)
    if size is not None and total is not None and total != size:
        body.close()
        raise _MirrorFailed(f"serves {total} bytes, expected {size}")
    from tqdm.auto import tqdm

    written = offset
    try:
        with (
            open(part, "ab" if offset else "wb") as out,
            tqdm(total=total, initial=offset, unit="B", unit_scale=True, unit_divisor=1024,
                 desc=label, disable=not progress, leave=False) as bar,
        ):
            while chunk := body.read(_CHUNK):
                out.write(chunk)
                written += len(chunk)
                bar.update(len(chunk))
    except (OSError, http.client.HTTPException) as e:
        if written > offset:
            raise _Dropped(f"connection lost at byte {written}: {e}") from None
        raise _MirrorFailed(f"read failed: {e}") from None
    finally:
        body.close()
    if total is not None and written < total:
        exc = _Dropped if written > offset else _MirrorFailed
        raise exc(f"connection closed at byte {written} of {total}")


def _open(url: str, start: int) -> tuple[Any, int, int | None]:
    """Open ``url`` from byte ``start``: (readable body, offset it starts at, total size)."""
    if url.startswith("s3://"):
        return _open_s3(url, start)
    if url.startswith("hf://"):
        url = _hf_to_https(url)
    headers = {"User-Agent": "clipguide (weights downloader)"}
    if start:
        headers["Range"] = f"bytes={start}-"
    request = urllib.request.Request(url, headers=headers)
    try:
        response = urllib.request.urlopen(request, timeout=_TIMEOUT)
    except urllib.error.HTTPError as e:
        e.close()
        if e.code == 416:
            raise _RangeRefused("server refused to resume (HTTP 416)") from None
        raise _MirrorFailed(f"HTTP {e.code} {e.reason}") from None
    except (urllib.error.URLError, OSError, http.client.HTTPException) as e:
        reason = getattr(e, "reason", e)
        raise _MirrorFailed(f"cannot connect ({reason})") from None
    if "text/html" in response.headers.get("Content-Type", ""):
        # No checkpoint is HTML: this is a login, error or "file expired" page served as 200.
        response.close()
        raise _MirrorFailed("served an HTML page instead of the file (dead or expired link?)")
    length = response.headers.get("Content-Length")
    length = int(length) if length and length.isdigit() else None
    if response.status == 206:
        first, total = _parse_content_range(response.headers.get("Content-Range", ""))
        if first != start:
            response.close()
            raise _MirrorFailed(f"asked to resume at byte {start}, server answered from {first}")
        return response, start, total
    return response, 0, length  # 200: the whole file, whatever we asked for


def _parse_content_range(value: str) -> tuple[int | None, int | None]:
    """``bytes 100-199/1000`` → (100, 1000); unknown parts are None."""
    m = re.match(r"bytes\s+(\d+)-\d+/(\d+|\*)", value.strip())
    if not m:
        return None, None
    return int(m.group(1)), (int(m.group(2)) if m.group(2) != "*" else None)


def _s3_client() -> Any:
    """An anonymous S3 client (public buckets need no credentials)."""
    try:
        import boto3
        from botocore import UNSIGNED
        from botocore.config import Config
    except ImportError:
        raise _MirrorFailed("s3:// sources need boto3 (pip install boto3)") from None
    return boto3.client("s3", config=Config(signature_version=UNSIGNED, read_timeout=_TIMEOUT))


class _S3Body:
    """botocore's streaming body, with its errors turned into OSError like urllib's."""

    def __init__(self, body: Any) -> None:
        self._body = body

    def read(self, n: int) -> bytes:
        try:
            return self._body.read(n)
        except OSError:
            raise
        except Exception as e:  # botocore/urllib3 read errors have their own hierarchies
            raise OSError(f"S3 read failed: {e}") from None

    def close(self) -> None:
        self._body.close()


def _open_s3(url: str, start: int) -> tuple[Any, int, int | None]:
    bucket, _, key = url[len("s3://") :].partition("/")
    if not bucket or not key:
        raise _MirrorFailed(f"malformed s3:// URL {url!r} (expected s3://BUCKET/KEY)")
    client = _s3_client()
    kwargs = {"Range": f"bytes={start}-"} if start else {}
    try:
        reply = client.get_object(Bucket=bucket, Key=key, **kwargs)
    except Exception as e:  # ClientError (404, 403, InvalidRange) or a connection error
        code = getattr(e, "response", {}).get("Error", {}).get("Code", "")
        if code == "InvalidRange":
            raise _RangeRefused("S3 refused to resume (InvalidRange)") from None
        raise _MirrorFailed(f"S3 error: {code or e}") from None
    body = _S3Body(reply["Body"])
    content_range = reply.get("ContentRange")
    if content_range:
        first, total = _parse_content_range(content_range)
        if first != start:
            body.close()
            raise _MirrorFailed(f"asked to resume at byte {start}, S3 answered from {first}")
        return body, start, total
    return body, 0, reply.get("ContentLength")
