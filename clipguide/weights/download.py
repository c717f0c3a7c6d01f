"""Downloading one checkpoint file from its mirrors, verified, resumable.

The public homes of these checkpoints keep dying (the VQGAN+CLIP notebooks are full of dead
links), so every file has mirrors, and a download moves on to the next one when a mirror is
down, answers with an error page, or serves bytes that fail the checksum. Sources on the Hugging
Face Hub (``hf://OWNER/REPO[@REVISION]/PATH``) are fetched by the hub's own client: its cache is
shared with other tools, it resumes, and it honours the hub's offline mode. Plain URLs (and
``s3://`` through boto3, anonymously) go to ``<file>.part``, resume with an HTTP Range request,
and are renamed into place only once verified: a file under its final name is always complete.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import re
import shutil
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import MissingWeightsError

log = logging.getLogger("clipguide.weights")

CHUNK = 1 << 20
_TIMEOUT = 60  # seconds without a byte before a mirror counts as failed
_RESUMES_PER_MIRROR = 3  # a flaky connection resumes this often before the next mirror is tried


class _MirrorFailed(Exception):
    """This source cannot give us the file; the message says why."""


class _Dropped(_MirrorFailed):
    """The connection ended after some bytes arrived: worth resuming from the same source."""


class _RangeRefused(_MirrorFailed):
    """The server answered 416: our partial file does not fit the file it serves."""


def display_url(url: str) -> str:
    """A URL a person can paste in a browser (``hf://`` becomes its https address)."""
    return _hf_to_https(url) if split_hf(url) else url


def split_hf(url: str) -> tuple[str, str | None, str] | None:
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
    split = split_hf(url)
    if split is None:
        raise _MirrorFailed(f"malformed hf:// URL {url!r} (expected hf://OWNER/REPO[@REVISION]/PATH)")
    from huggingface_hub import hf_hub_url

    repo_id, revision, filename = split
    return hf_hub_url(repo_id, filename, revision=revision, endpoint=_hf_endpoint())


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
    return download(urls, Path(dest), sha256=sha256, size=size, progress=progress)[0]


def download(
    urls: Sequence[str], dest: Path, *, sha256: str | None, size: int | None, progress: bool
) -> tuple[Path, str]:
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    failures = []
    for url in urls:
        try:
            if url.startswith("hf://"):
                _fetch_hf(url, part, sha256=sha256, size=size)
            else:
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


def _fetch_hf(url: str, part: Path, *, sha256: str | None, size: int | None) -> None:
    """Get a hub file through ``huggingface_hub`` (into the hub's shared cache), check it, and put
    a link to it (a copy where links are impossible) at ``part``."""
    split = split_hf(url)
    if split is None:
        raise _MirrorFailed(f"malformed hf:// URL {url!r} (expected hf://OWNER/REPO[@REVISION]/PATH)")
    from huggingface_hub import hf_hub_download

    repo_id, revision, filename = split
    try:
        cached = Path(hf_hub_download(repo_id, filename, revision=revision, endpoint=_hf_endpoint())).resolve()
    except Exception as e:  # the hub client's errors (HTTP, offline mode, missing entry) all mean "not here"
        lines = str(e).strip().splitlines()
        raise _MirrorFailed(f"Hugging Face hub: {lines[0] if lines else type(e).__name__}") from None
    problem = _verify_part(cached, sha256=sha256, size=size)
    if problem is not None:
        raise _MirrorFailed(problem)
    part.unlink(missing_ok=True)
    try:
        os.link(cached, part)  # no second copy of a gigabyte file when both caches share a disk
    except OSError:
        shutil.copyfile(cached, part)


def _hf_endpoint() -> str:
    # Read HF_ENDPOINT now: huggingface_hub reads it once, at import.
    return (os.environ.get("HF_ENDPOINT") or "https://huggingface.co").rstrip("/")


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
            while chunk := body.read(CHUNK):
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


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()
