"""Saving results safely: file names, atomic writes, PNGs with settings, videos.

* :mod:`.names` — slugs and free file names;
* :mod:`.files` — atomic writes that never leave half a file or replace a result;
* :mod:`.images` — tensors to pictures, PNG text chunks, reading image files;
* :mod:`.record` — the versioned settings record in every PNG (:func:`read_record` for `again`);
* :mod:`.save` — :func:`save_result`, the one function every front end saves with;
* :mod:`.video` — MP4 and GIF.

Only front ends call this package; the engine never does I/O.
"""

from __future__ import annotations

from .files import (OutputExistsError, atomic_write, atomic_write_bytes, atomic_write_text, ensure_out_dir,
                    read_folder_record)
from .images import load_image, png_bytes, read_png_metadata, save_png, to_pil, write_png
from .names import slugify, unique_path
from .record import SCHEMA, Record, png_chunks, read_record
from .save import default_stem, save_images, save_result
from .video import VideoWriter

__all__ = ["OutputExistsError", "VideoWriter", "Record", "SCHEMA", "atomic_write", "atomic_write_bytes",
           "atomic_write_text", "ensure_out_dir", "load_image", "png_bytes", "png_chunks", "read_png_metadata",
           "read_folder_record", "read_record", "save_images", "save_png", "save_result", "default_stem", "slugify", "to_pil", "unique_path",
           "write_png"]
