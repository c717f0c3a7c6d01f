"""Known checkpoints: the manifest, the download cache, and integrity checks.

* :mod:`.manifest` — ``weights/manifest.toml``: every checkpoint by name, its files and mirrors;
* :mod:`.cache` — where files live, whether they are sound, and :func:`fetch`;
* :mod:`.download` — getting one file from its mirrors, verified and resumable.

This package does I/O (downloads, a progress bar on stderr, warnings through ``logging``); the
engine never imports it.
"""

from __future__ import annotations

from .cache import OFFLINE_HINT, entry_dir, fetch, file_path, home, is_offline, verify
from .download import display_url, download_file, sha256_file
from .manifest import SECTIONS, URL_SCHEMES, Entry, WeightFile, data_dir, get_entry, load_manifest, manifest_path

__all__ = ["Entry", "WeightFile", "URL_SCHEMES", "SECTIONS", "OFFLINE_HINT", "data_dir", "manifest_path", "load_manifest",
           "get_entry", "home", "entry_dir", "file_path", "is_offline", "sha256_file", "verify", "fetch",
           "display_url", "download_file"]
