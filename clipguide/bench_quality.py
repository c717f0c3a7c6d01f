"""``clipguide bench --quality``: does a lower precision change what the loop makes?

Loss curves and steering rates of each precision on the shipped demo models, against fp32,
through the product's own ``generate``; the images are judged by the demo judge (pixel
statistics, not CLIP).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from .presets import demo_settings
from .settings import Settings


QUALITY_BACKGROUNDS = ("red", "blue", "green", "yellow")


def quality_check(precisions: Sequence[str] = ("fp32", "bf16", "fp16"), *, steps: int = 30, seeds: int = 4,
                  size: int = 64, cutn: int = 16, device: str = "cpu") -> dict[str, Any]:
    """Loss curves and steering rates of each precision on the shipped demo models, against fp32.

    For each background colour, ``seeds`` images are steered toward "a <colour> background" with
    the product's ``generate``; per step the mean loss is recorded, and at the end the demo judge
    (pixel statistics, not CLIP) names each image's background. Same seeds for every precision.
    """
    import numpy as np

    from . import api
    from .demo.judge import background_name

    session = api.Session(device)
    demo = {k: v for k, v in demo_settings().items() if k in ("generator", "clip")}
    curves: dict[str, list[list[float]]] = {p: [] for p in precisions}
    hits: dict[str, int] = {p: 0 for p in precisions}
    seconds: dict[str, float] = {p: 0.0 for p in precisions}
    for colour in QUALITY_BACKGROUNDS:
        settings = Settings(prompt=f"a {colour} background", **demo, size=(size, size),
                            steps=steps, cutn=cutn, seeds=seeds, seed=0, device=device)
        for precision in precisions:
            curve: list[float] = []
            start = time.perf_counter()
            result = api.generate(settings.replace(precision=precision), lambda s: curve.append(s.loss / seeds),
                                  session=session)
            seconds[precision] += time.perf_counter() - start
            curves[precision].append(curve)
            pixels = (result.images.permute(0, 2, 3, 1).numpy() * 255.0).astype(float)
            hits[precision] += sum(background_name(img) == colour for img in pixels)
    reference = np.array(curves[precisions[0]])
    out: dict[str, Any] = {"steps": steps, "seeds": seeds, "size": size, "cutn": cutn,
                           "backgrounds": list(QUALITY_BACKGROUNDS), "reference": precisions[0], "precisions": {}}
    for precision in precisions:
        c = np.array(curves[precision])
        rel = np.abs(c - reference) / np.abs(reference)
        out["precisions"][precision] = {
            "mean_curve": c.mean(0).round(5).tolist(),
            "max_rel_diff": float(rel.max()), "mean_rel_diff": float(rel.mean()),
            "final_rel_diff": float(np.abs(c[:, -1].mean() - reference[:, -1].mean()) / abs(reference[:, -1].mean())),
            "loss_drop": float(c[:, 0].mean() - c[:, -1].mean()),
            "steering_hits": int(hits[precision]), "steering_trials": len(QUALITY_BACKGROUNDS) * seeds,
            "seconds": seconds[precision],
        }
    return out


__all__ = ["quality_check", "QUALITY_BACKGROUNDS"]
