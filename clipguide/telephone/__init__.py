"""The telephone loop: prompt → image → caption → image …, and the study of where it goes.

Background: Hintze, Proschinger Åström and Schossau, "Autonomous language-image generation loops
converge to generic visual motifs", Patterns 7(1), 2026. Here the image half is a CLIP-guided GAN
and the caption half a describer (CLIP ranking over a vocabulary by default).

* :mod:`.settings` — :class:`TelephoneSettings`, the loop's knobs;
* :mod:`.vocabulary`, :mod:`.describe`, :mod:`.clip_describer`, :mod:`.captioner` — image → caption;
* :mod:`.trajectory`, :mod:`.loop` — one trajectory's rounds, on disk and run;
* :mod:`.plan` — many start prompts × trajectories × styles, resumable task by task;
* :mod:`.analysis`, :mod:`.report`, :mod:`.plots` — the study's numbers and figures;
* :mod:`.cli` — ``clipguide telephone``.
"""

from __future__ import annotations

from .describe import CallableDescriber, Describer, DescriberContext, clean_caption, load_describer
from .settings import TelephoneSettings

__all__ = ["TelephoneSettings", "Describer", "DescriberContext", "CallableDescriber", "clean_caption",
           "load_describer"]
