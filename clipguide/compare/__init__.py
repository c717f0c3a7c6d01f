"""What does a style do to the images? The paired style-versus-diversity comparison.

* :mod:`.run` — planning, making (or reusing) the images, and writing the report files;
* :mod:`.stats` — the paired bootstrap statistics;
* :mod:`.report` — the report's data, Markdown and plot;
* :mod:`.cli` — ``clipguide compare``.
"""

from __future__ import annotations

from ..figures import make_grid
from ..output import slugify
from .report import Report, StyleResult, plot_alignment_vs_diversity, render_markdown
from .run import Item, run_compare
from .stats import METRIC_NAMES, Estimate

__all__ = ["run_compare", "Item", "Report", "StyleResult", "Estimate", "METRIC_NAMES", "make_grid", "render_markdown",
           "plot_alignment_vs_diversity", "slugify"]
