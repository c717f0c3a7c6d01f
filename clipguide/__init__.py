"""clipguide: CLIP-guided GAN art (VQGAN+CLIP, Big Sleep) with style presets and diversity reports.

    >>> from clipguide import Settings, generate
    >>> result = generate(Settings(prompt="a red circle on a blue background", generator="demo", clip=("demo",)))
    >>> result.pil()[0].save("circle.png")

Importing the package is cheap: torch and the models load only when a function needs them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .errors import UserError
from .settings import Settings

__version__ = "0.1.0"

__all__ = ["Settings", "UserError", "generate", "compare", "list_styles", "Session", "__version__"]

if TYPE_CHECKING:  # pragma: no cover
    from .api import Session, generate
    from .presets import list_styles


def __getattr__(name: str) -> Any:
    # Lazy so that `import clipguide` (and `clipguide --help`) does not import torch.
    if name in ("generate", "Session"):
        from . import api

        return getattr(api, name)
    if name == "list_styles":
        from .presets import list_styles

        return list_styles
    if name == "compare":
        from .compare import run_compare

        return run_compare
    raise AttributeError(f"module 'clipguide' has no attribute {name!r}")
