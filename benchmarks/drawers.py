"""The drawers and loss terms on the offline demo CLIP: how often they steer colour, and a picture grid.

    python benchmarks/drawers.py steering --seeds 16            # the rates in docs/drawers.md and the README
    python benchmarks/drawers.py grid docs/drawers.png          # the README's picture grid

``steering``: for each drawer, "a white circle on a red background" and "... on a blue background"
on the same seeds (``--demo --generator DRAWER``: the demo settings, lr 0.15 included), judged by pixel
statistics, not CLIP: the demo judge's background colour (``background_name``: the colour of the
picture's outer ring), and, plainer, whether the red prompt's picture is redder (mean R - B) than
the blue prompt's on the same seed. A seed counts when both pictures are right.

``grid``: one picture per drawer and per loss term, 64x64 with ``--demo``, enlarged to 128 px.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from clipguide import api
from clipguide.demo.judge import background_name
from clipguide.demo.steering import demo_settings
from clipguide.output import atomic_write_bytes, atomic_write_text

DRAWERS = ("pixel", "fft")
COLOURS = ("red", "blue")
PROMPT = "a white circle on a {} background"

#: (label, settings changes) of every picture in the grid; the demo VQGAN first, as the reference
GRID = (
    ("demo VQGAN", {}),
    ("pixel", {"generator": "pixel"}),
    ("pixel, pico-8 snap", {"generator": "pixel", "palette": "pico-8", "palette_snap": True}),
    ("fft", {"generator": "fft"}),
    ("symmetry", {"losses": ("symmetry:20",)}),
    ("smoothness", {"losses": ("smoothness:5",)}),
    ("saturation +", {"losses": ("saturation:5",)}),
    ("saturation -", {"losses": ("saturation:-5",)}),
    ("palette gameboy", {"losses": ("palette:20",), "palette": "gameboy"}),
    ("edge white", {"losses": ("edge:20",), "edge_colour": "white", "edge_width": 6}),
    ("mse-latent", {"losses": ("mse-latent:20",)}),
    ("fft + symmetry", {"generator": "fft", "losses": ("symmetry:20",)}),
)


def drawer_settings(generator: str, **changes):
    """``--demo --generator GENERATOR``: the demo settings (its lr 0.15 included), as a user gets them."""
    return demo_settings(generator=generator, **changes)


def steering(drawers, n_seeds: int, first_seed: int, steps: int | None, session) -> dict:
    results = {}
    for drawer in drawers:
        base = drawer_settings(drawer, **({"steps": steps} if steps else {}))
        images = {}
        for colour in COLOURS:
            result = api.generate(base.replace(prompt=PROMPT.format(colour), seed=first_seed, seeds=n_seeds),
                                  session=session)
            images[colour] = result.images
            print(f"  {drawer}: {PROMPT.format(colour)!r} done", file=sys.stderr, flush=True)
        named = {c: [background_name(p) for p in images[c].permute(0, 2, 3, 1).numpy() * 255.0] for c in COLOURS}
        judged = sum(r == "red" and b == "blue" for r, b in zip(named["red"], named["blue"]))
        redness = {c: (images[c][:, 0] - images[c][:, 2]).mean(dim=(1, 2)) for c in COLOURS}
        redder = int((redness["red"] > redness["blue"]).sum())
        results[drawer] = {"seeds": n_seeds, "first_seed": first_seed, "steps": base.steps, "lr": base.lr,
                           "judged_pairs": judged, "redder_pairs": redder, "backgrounds": named}
    return results


def grid(path: Path, session, seed: int) -> None:
    from PIL import Image, ImageDraw

    side, label_h = 128, 14
    cells = []
    for label, changes in GRID:
        settings = demo_settings(seed=seed, **changes).replace(prompt=PROMPT.format("red"))
        cells.append((label, api.generate(settings, session=session).pil()[0]))
        print(f"  {label} done", file=sys.stderr, flush=True)
    columns = 4
    rows = (len(cells) + columns - 1) // columns
    sheet = Image.new("RGB", (columns * side, rows * (side + label_h)), "white")
    draw = ImageDraw.Draw(sheet)
    for k, (label, image) in enumerate(cells):
        x, y = (k % columns) * side, (k // columns) * (side + label_h)
        sheet.paste(image.resize((side, side), Image.NEAREST), (x, y + label_h))
        draw.text((x + 3, y + 1), label, fill="black")
    import io

    buffer = io.BytesIO()
    sheet.save(buffer, format="PNG", optimize=True)
    atomic_write_bytes(path, buffer.getvalue())
    print(path)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("steering", help="colour steering rates of the drawers")
    s.add_argument("--seeds", type=int, default=16)
    s.add_argument("--first-seed", type=int, default=1000, help="first seed (default 1000: away from test seeds)")
    s.add_argument("--steps", type=int, default=None, help="override the demo's steps")
    s.add_argument("--drawers", default=",".join(DRAWERS))
    s.add_argument("--json", type=Path, default=None, help="write every verdict here (a new file)")
    g = sub.add_parser("grid", help="the README's picture grid")
    g.add_argument("path", type=Path)
    g.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    session = api.Session("cpu", offline=True, progress=False)
    torch.set_grad_enabled(True)
    if args.command == "grid":
        grid(args.path, session, args.seed)
        return 0
    if args.json and args.json.exists():
        p.error(f"--json {args.json} exists: choose a new name")
    start = time.perf_counter()
    results = steering([d.strip() for d in args.drawers.split(",") if d.strip()], args.seeds, args.first_seed,
                       args.steps, session)
    print("| drawer | lr | steps | background judged right, both prompts | red prompt redder than blue |")
    print("|---|---|---|---|---|")
    for drawer, r in results.items():
        n = r["seeds"]
        print(f"| {drawer} | {r['lr']:g} | {r['steps']} | {r['judged_pairs']}/{n} = {r['judged_pairs'] / n:.0%} "
              f"| {r['redder_pairs']}/{n} = {r['redder_pairs'] / n:.0%} |")
    print(f"\n{time.perf_counter() - start:.0f} s")
    if args.json:
        atomic_write_text(args.json, json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
