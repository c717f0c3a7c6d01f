"""The classic VQGAN+CLIP loop, built from the recipe, as the yardstick for clipguide's speed and memory.

    python benchmarks/reference_loop.py --size 256 256 --cutn 32 --steps 8 --warmup 2 --json ref.json

Written from the recipe in the design notes (not from any notebook's code): fp32 throughout; z a
(1, 256, H/16, W/16) tensor of random codebook rows; each step snaps z to its nearest codebook
vectors with a straight-through gradient, decodes with taming's Decoder, maps to [0, 1] with a
clamp whose gradient only points back into the range, cuts ``cutn`` random squares (sides
``rand()**cut_pow`` between min(W, H, 224) and min(W, H)) each resized by adaptive average pooling,
augments them with kornia (affine, perspective, colour jitter, erasing, as clipguide's defaults)
and per-cutout Gaussian noise, normalises with CLIP's mean and std, embeds with a stock open_clip
ViT-B-32 (no clipguide speed-ups), and takes an Adam step (lr 0.1) on the spherical distance to one
text embedding, then clamps z to the codebook's range. Same random-weight architectures as
``clipguide bench``: timing does not depend on weight values.

Prints s/it (median of the timed steps) and peak RSS; ``--json`` writes them.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import resource
import statistics
import sys
import time

import kornia.augmentation as K
import torch
import torch.nn.functional as F

#: taming's published ddconfig of VQGAN ImageNet f16_16384 (as clipguide.bench.VQGAN_F16_16384)
DDCONFIG = {"double_z": False, "z_channels": 256, "resolution": 256, "in_channels": 3, "out_ch": 3, "ch": 128,
            "ch_mult": [1, 1, 2, 2, 4], "num_res_blocks": 2, "attn_resolutions": [16], "dropout": 0.0}
EMBED_DIM, N_EMBED = 256, 16384
TINY_DDCONFIG = {"double_z": False, "z_channels": 4, "resolution": 32, "in_channels": 3, "out_ch": 3, "ch": 32,
                 "ch_mult": [1, 2], "num_res_blocks": 1, "attn_resolutions": [], "dropout": 0.0}
PROMPT = "a watercolour painting of a lighthouse at dawn"


class ClampInRange(torch.autograd.Function):
    """clamp(x, 0, 1) whose gradient is kept only where a step would move x back toward the range."""

    @staticmethod
    def forward(ctx, x):  # type: ignore[override]
        ctx.save_for_backward(x)
        return x.clamp(0, 1)

    @staticmethod
    def backward(ctx, grad):  # type: ignore[override]
        (x,) = ctx.saved_tensors
        return grad * (grad * (x - x.clamp(0, 1)) >= 0)


def build(tiny: bool):
    import open_clip
    from taming.modules.diffusionmodules.model import Decoder

    torch.manual_seed(0)
    dd = TINY_DDCONFIG if tiny else DDCONFIG
    embed_dim, n_embed = (4, 32) if tiny else (EMBED_DIM, N_EMBED)
    with contextlib.redirect_stdout(io.StringIO()):  # taming prints the z shape
        decoder = Decoder(**dd)
    post_quant = torch.nn.Conv2d(embed_dim, dd["z_channels"], 1)
    codebook = torch.randn(n_embed, embed_dim)
    if tiny:
        clip = open_clip.CLIP(embed_dim=32, vision_cfg={"image_size": 32, "layers": 2, "width": 32, "patch_size": 8,
                                                         "head_width": 16},
                              text_cfg={"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 2})
    else:
        clip = open_clip.create_model("ViT-B-32", pretrained=None)
    for module in (decoder, post_quant, clip):
        module.eval().requires_grad_(False)
    return decoder, post_quant, codebook, clip, 2 ** (len(dd["ch_mult"]) - 1)


def run(size: tuple[int, int], cutn: int, steps: int, warmup: int, tiny: bool) -> dict:
    import open_clip

    decoder, post_quant, codebook, clip, factor = build(tiny)
    cut_size = clip.visual.image_size[0] if isinstance(clip.visual.image_size, tuple) else clip.visual.image_size
    mean = torch.tensor(open_clip.OPENAI_DATASET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(open_clip.OPENAI_DATASET_STD).view(1, 3, 1, 1)
    tokenizer = open_clip.get_tokenizer("ViT-B-32")
    with torch.no_grad():
        text = F.normalize(clip.encode_text(tokenizer([PROMPT])), dim=-1)
    augments = K.AugmentationSequential(
        K.RandomAffine(degrees=15, translate=(0.1, 0.1), p=0.7, padding_mode="border"),
        K.RandomPerspective(0.2, p=0.7), K.ColorJitter(hue=0.01, saturation=0.01, p=0.7),
        K.RandomErasing(scale=(0.1, 0.4), ratio=(0.3, 1 / 0.3), value=0.5, p=0.7))
    width, height = size
    z = codebook[torch.randint(len(codebook), (height // factor * (width // factor),))]
    z = z.T.reshape(1, -1, height // factor, width // factor).clone().requires_grad_(True)
    low, high = codebook.min(0).values.view(1, -1, 1, 1), codebook.max(0).values.view(1, -1, 1, 1)
    optimizer = torch.optim.Adam([z], lr=0.1)
    side_low, side_high = min(width, height, cut_size), min(width, height)
    times = []
    for _ in range(warmup + steps):
        start = time.perf_counter()
        optimizer.zero_grad()
        flat = z.movedim(1, -1).reshape(-1, z.shape[1])
        nearest = torch.cdist(flat, codebook).argmin(1)
        z_q = codebook[nearest].view(z.shape[0], z.shape[2], z.shape[3], -1).movedim(-1, 1)
        z_q = z + (z_q - z).detach()  # straight through
        image = ClampInRange.apply(decoder(post_quant(z_q)).add(1).div(2))
        cutouts = []
        for _ in range(cutn):
            side = int(torch.rand(()) ** 1.0 * (side_high - side_low) + side_low)
            x0 = int(torch.randint(0, width - side + 1, ()))
            y0 = int(torch.randint(0, height - side + 1, ()))
            cutouts.append(F.adaptive_avg_pool2d(image[:, :, y0:y0 + side, x0:x0 + side], cut_size))
        batch = augments(torch.cat(cutouts))
        batch = batch + torch.rand(cutn, 1, 1, 1) * 0.1 * torch.randn_like(batch)
        embeds = F.normalize(clip.encode_image((batch - mean) / std), dim=-1)
        distance = (embeds - text).norm(dim=-1).div(2).arcsin().pow(2).mul(2)
        distance.mean().backward()
        optimizer.step()
        with torch.no_grad():
            z.copy_(torch.maximum(torch.minimum(z, high), low))
        times.append(time.perf_counter() - start)
    timed = times[warmup:] or times
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"size": list(size), "cutn": cutn, "steps": len(timed), "warmup": warmup, "tiny": tiny,
            "median_s_per_it": statistics.median(timed), "min_s_per_it": min(timed),
            "peak_rss_mib": peak / 2**20 if sys.platform == "darwin" else peak / 1024,
            "threads": torch.get_num_threads()}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", nargs=2, type=int, default=(256, 256), metavar=("W", "H"))
    p.add_argument("--cutn", type=int, default=32)
    p.add_argument("--steps", type=int, default=8)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--tiny", action="store_true", help="test-size models of the same architectures")
    p.add_argument("--json", default=None)
    ns = p.parse_args(argv)
    result = run(tuple(ns.size), ns.cutn, ns.steps, ns.warmup, ns.tiny)
    print(f"reference fp32 loop {ns.size[0]}x{ns.size[1]} cutn {ns.cutn}: {result['median_s_per_it']:.3f} s/it "
          f"(median of {result['steps']}), peak RSS {result['peak_rss_mib']:.0f} MiB")
    if ns.json:
        with open(ns.json, "w", encoding="utf-8") as f:
            json.dump(result, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
