"""The Gradio web UI: ``python app.py`` or ``clipguide ui``.

* :mod:`.app` — the page, its events and ``clipguide ui``;
* :mod:`.jobs` — widget values → settings, runs in a worker thread, Stop, saving;
* :mod:`.widgets` — widgets derived from the settings' declarations;
* :mod:`.limits` — the operator's caps, uploads, model choices;
* one module per tab beyond Generate (:mod:`.compare_tab`, :mod:`.telephone_tab`, :mod:`.animate_tab`, …).
"""

from __future__ import annotations

from .animate_tab import animate_inputs
from .app import build_app, main, parser
from .compare_tab import compare_inputs, metric_headers
from .telephone_tab import telephone_inputs
from .jobs import PREVIEW_SIDE, WebApp, generate_inputs, shared_inputs
from .limits import DEFAULT_CLIPS, Limits, check_upload, default_clips, default_generators

__all__ = ["Limits", "WebApp", "build_app", "main", "parser", "check_upload", "default_generators", "default_clips",
           "DEFAULT_CLIPS", "metric_headers", "generate_inputs", "compare_inputs", "telephone_inputs", "animate_inputs",
           "shared_inputs", "PREVIEW_SIDE"]
