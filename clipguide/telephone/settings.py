"""The telephone loop's own knobs, declared once (flags, web UI and report metadata follow)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .. import specs
from ..errors import UserError
from ..specs import setting

STYLE_MODES = ("every", "start")
STARTS = ("fresh", "previous")
RESEEDS = ("round", "fixed")
#: The automatic settle distance: this share of the median distance between the round-0 images.
SETTLE_SHARE = 0.25
#: Round r of trajectory j uses seed ``seed + j + SEED_STRIDE·r`` (with reseed "round"), so no two
#: rounds or trajectories of a start prompt share a seed while there are fewer than this many trajectories.
SEED_STRIDE = 10_000


@dataclass(frozen=True)
class TelephoneSettings:
    """How the loop goes: prompt → image → caption → image … (the image settings are Settings)."""

    rounds: int = setting(10, "Rounds: round r is generated from the caption of round r-1 (round 0 from the "
                          "start prompt).", low=1, ui="main")
    style_mode: str = setting("every", "Where the style applies: 'every' re-applies its suffix to every round's "
                              "caption, 'start' only to the start prompt (round 0).", choices=STYLE_MODES,
                              ui="main", label="Style in")
    start: str = setting("fresh", "Where rounds after the first start: 'fresh' (new random codes, as the init "
                         "setting says) or 'previous' (the previous round's image; --init previous).",
                         choices=STARTS, ui="main", label="Each round starts from")
    reseed: str = setting("round", "Seeds: 'round' draws a new seed every round (seed + trajectory + "
                          f"{SEED_STRIDE}·round), like a diffusion model's fresh noise; 'fixed' keeps the "
                          "trajectory's seed, which makes the loop a fixed map caption → caption.",
                          choices=RESEEDS)
    describer: str = setting("clip", "Image → caption: 'clip' (CLIP ranking over a vocabulary), another "
                             "registered describer (clipguide.registry.DESCRIBERS), or module:function.")
    describer_model: str = setting("", "The captioning model a describer loads, e.g. "
                                   "Salesforce/blip-image-captioning-base for 'blip' (its default).")
    vocabulary: str | None = setting(None, "The CLIP describer's phrases: a folder of SLOT.txt files or a "
                                     "built-in name (general, shapes). Default: the one for the first CLIP "
                                     "model (shapes for the demo CLIPs, general otherwise).")
    eval_clip: str | None = setting(None, "A CLIP model that did not guide the run, for the report's "
                                    "similarity, Vendi score and motifs (default: the first guiding CLIP).")
    settle_distance: float | None = setting(None, "A trajectory's images have settled once each round moves less "
                                            "than this cosine distance (eval CLIP) from the one before; final "
                                            "images all closer than this are one motif. Default: a quarter of the "
                                            "median distance between the round-0 images.", low=0, low_open=True)

    def replace(self, **changes: Any) -> "TelephoneSettings":
        return from_dict({**specs.to_dict(self), **changes})


def from_dict(values: dict[str, Any]) -> TelephoneSettings:
    settings = specs.from_dict(TelephoneSettings, values, where="telephone settings")
    validate(settings)
    return settings


def validate(settings: TelephoneSettings) -> None:
    """Ranges and choices, and a describer that is registered or spelled module:function."""
    from ..registry import DESCRIBERS

    specs.check(settings)
    name = settings.describer
    if ":" not in name:
        DESCRIBERS.check(name)
    elif not all(part.strip() for part in name.split(":", 1)):
        raise UserError(f"describer {name!r} must be a registered name or module:function")


__all__ = ["TelephoneSettings", "from_dict", "validate", "STYLE_MODES", "STARTS", "RESEEDS", "SEED_STRIDE", "SETTLE_SHARE"]
