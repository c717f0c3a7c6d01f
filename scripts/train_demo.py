#!/usr/bin/env python
"""Train clipguide's offline demo models on the shapes world (clipguide.demo.shapes).

Two models, each reproducible from this script and its seed, CPU only:

* a tiny open_clip CLIP  -> weights/demo/clip/{open_clip_config.json, open_clip_model.safetensors}
* a tiny taming VQGAN    -> weights/demo/vqgan.safetensors  (clipguide-vqgan format)

(The steering judge, clipguide.demo.judge, reads pixels and outlines and has no weights to train.)

Usage (from the repository root; clipguide must be importable, e.g. `pip install -e .` or PYTHONPATH=.):
        nice -n 5 python scripts/train_demo.py --part all --vq-fp16 --out weights/demo
        (--part clip|vqgan trains one; the parts are independent and can run in parallel;
        --part eval-clip|eval-vqgan re-measures saved weights). The defaults are the shipped run's.
        One thread per process: on 2 shared cores, 2-thread OpenMP runs were ~9x slower per step.

Every part logs to <out>/logs/<part>.log and writes its metrics to <out>/logs/<part>.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from clipguide.demo import shapes as S

CLIP_NAME = "clipguide-demo-shapes"
CLIP_CFGS = {
    # 64 px in 8 px patches: an 8x8 token grid, fine enough for nine positions and four shapes.
    "vit": {
        "embed_dim": 64,
        "vision_cfg": {"image_size": 64, "patch_size": 8, "width": 96, "layers": 3, "head_width": 32,
                       "mlp_ratio": 2.0, "pool_type": "avg"},
        # The standard open_clip tokenizer (49408 tokens); a narrow text tower keeps the file small.
        "text_cfg": {"context_length": 32, "vocab_size": 49408, "width": 64, "heads": 4, "layers": 2,
                     "mlp_ratio": 2.0},
    },
    # open_clip's ModifiedResNet (the RN50 family) at width 16: 64 px -> a 2x2 map read by attention
    # pooling with a position embedding.
    "resnet": {
        "embed_dim": 64,
        "vision_cfg": {"image_size": 64, "layers": [1, 1, 1, 1], "width": 16, "head_width": 32},
        "text_cfg": {"context_length": 32, "vocab_size": 49408, "width": 64, "heads": 4, "layers": 2,
                     "mlp_ratio": 2.0},
    },
}
# The same tower at twice the width (run 24): at width 16 shape competes with colour and position for
# 16 stem channels, and the runs that held a shape margin lost colour (17d) or drew fewer clear
# shapes (18a).
CLIP_CFGS["resnet-wide"] = {**CLIP_CFGS["resnet"],
                            "vision_cfg": {**CLIP_CFGS["resnet"]["vision_cfg"], "width": 32}}
# taming normalises with GroupNorm(32 groups): at 32 channels every channel is normalised on its own
# over the whole image, which erases the absolute level of flat colours (the probe's washed-out
# 12.8 dB). 64 channels (2 per group) let a channel be read against its partner, so colours survive.
VQ_DDCONFIG = {"double_z": False, "z_channels": 32, "resolution": 64, "in_channels": 3, "out_ch": 3,
               "ch": 64, "ch_mult": [1, 1, 1], "num_res_blocks": 1, "attn_resolutions": [], "dropout": 0.0}
VQ_EMBED_DIM = 32
VQ_N_EMBED = 1024

FIELDS = ("shape", "colour", "size", "position", "background")
_OPTIONS = {"shape": S.SHAPES, "colour": tuple(S.COLOURS), "size": tuple(S.SIZES),
            "position": tuple(S.POSITIONS), "background": S.BACKGROUNDS}


class Log:
    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.f = open(path, "w", buffering=1)

    def __call__(self, *a):
        line = " ".join(str(x) for x in a)
        print(line, flush=True)
        self.f.write(line + "\n")


def cosine_lr(step: int, total: int, base: float, warmup: int) -> float:
    if step < warmup:
        return base * (step + 1) / warmup
    return base * 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))


def images_tensor(scenes, size=64) -> torch.Tensor:
    return S.to_tensor(S.render_batch(scenes, size))


# =========================================================================== CLIP

def shapes_mean_std(seed: int = 12345, n: int = 2000) -> tuple[list[float], list[float]]:
    x = images_tensor(S.make_scenes(seed, n))
    return [round(v, 3) for v in x.mean((0, 2, 3)).tolist()], [round(v, 3) for v in x.std((0, 2, 3)).tolist()]


def build_clip(cfg: dict):
    import open_clip

    with tempfile.TemporaryDirectory() as d:
        (Path(d) / f"{CLIP_NAME}.json").write_text(json.dumps(cfg))
        open_clip.add_model_config(d)
    model = open_clip.create_model(CLIP_NAME)
    tok = open_clip.get_tokenizer(CLIP_NAME)
    return model, tok


# Images that are not one shape, as negatives: gradient ascent through the loop otherwise satisfies
# "a red circle" with many red blobs on a mottled ground (VQGAN+CLIP's "many circles"), because a
# CLIP that has only ever seen one shape per image has no reason to score that lower. Clutter (many
# shapes) and noise (blotches of colour, like the loop's random start) get captions of their own and
# values outside the scene fields, so that no single-shape caption is true of them.
_EXTRA = {"shape": ("many", "none"), "colour": ("mixed",), "size": ("mixed",), "position": ("everywhere",),
          "background": ("noise",)}
_TRAIN_OPTIONS = {f: tuple(_OPTIONS[f]) + _EXTRA[f] for f in FIELDS}
_NOISE_CAPTIONS = ("noise", "random noise", "a noisy pattern", "a random pattern", "blotches of colour")


def clutter_image(rng: np.random.Generator, size: int = 64) -> tuple[np.ndarray, dict, str, tuple[str, ...]]:
    """3-8 smaller shapes scattered over a plain or gradient background."""
    base = S.sample_scene(rng)
    img = S.background_image(base.background, size)
    colours = rng.choice(S.allowed_colours(base.background), size=int(rng.integers(1, 4)))
    for _ in range(int(rng.integers(3, 9))):
        shape = S.Scene(shape=str(rng.choice(S.SHAPES)), colour=str(rng.choice(colours)), size="small",
                        position="centre", background=base.background, dx=float(rng.uniform(-0.42, 0.42)),
                        dy=float(rng.uniform(-0.42, 0.42)), scale=float(rng.uniform(0.35, 1.0)),
                        angle=float(rng.uniform(0, 90)))
        m = S.shape_mask(shape, size)[..., None]
        img = img * (1 - m) + np.array(S.COLOURS[shape.colour], dtype=float) * m
    attrs = {"shape": "many", "colour": "mixed", "size": "mixed", "position": "everywhere",
             "background": base.background}
    background = S.caption(base, "background", rng)
    kind = int(rng.integers(3))
    caption, mentions = [(f"many shapes on {background}", ("shape", "background")),
                         (str(rng.choice(["many shapes", "lots of shapes", "a pattern of shapes"])), ("shape",)),
                         (background, ("background",))][kind]
    return np.clip(np.rint(img), 0, 255).astype(np.uint8), attrs, caption, mentions


def noise_image(rng: np.random.Generator, size: int = 64) -> tuple[np.ndarray, dict, str, tuple[str, ...]]:
    """Blotches of 2-4 named colours from a smooth random field."""
    k, grid = int(rng.integers(2, 5)), int(rng.integers(3, 13))
    palette = np.array([S.COLOURS[c] for c in rng.choice(list(S.COLOURS), size=k, replace=False)], dtype=np.float32)
    field = F.interpolate(torch.from_numpy(rng.normal(size=(1, k, grid, grid)).astype(np.float32)), size=(size, size),
                          mode="bicubic", align_corners=False)
    weights = (field * float(rng.uniform(2.0, 8.0))).softmax(1)[0]  # soft regions, sharper or blurrier
    img = torch.einsum("khw,kc->hwc", weights, torch.from_numpy(palette)).numpy()
    attrs = {"shape": "none", "colour": "mixed", "size": "mixed", "position": "everywhere", "background": "noise"}
    return np.clip(np.rint(img), 0, 255).astype(np.uint8), attrs, str(rng.choice(_NOISE_CAPTIONS)), ("background",)


def clip_batch(rng: np.random.Generator, n: int, n_clutter: int = 0, n_noise: int = 0):
    """Groups of 4 scenes that differ in one field each (shape, position, then one more), so the
    contrastive loss cannot rely on colour alone, then `n_clutter` clutter and `n_noise` noise images.
    Captions get random styles; `target[i, j]` marks every caption j that is true of image i (not
    only the diagonal). Returns uint8 images (N, H, W, 3), captions, target, attribute indices,
    which fields each caption mentions, and the scene of each one-shape image (None for the rest)."""
    images, attrs, caps, mentions, scenes = [], [], [], [], []
    for _ in range((n - n_clutter - n_noise) // 4):
        base = S.sample_scene(rng)
        extra = str(rng.choice(["colour", "background", "size", "shape", "position"]))
        group = [base, S.vary(base, "shape", rng), S.vary(base, "position", rng), S.vary(base, extra, rng)]
        # each variant gets its own small jitter so pixel-exact copies never occur
        group = [S.Scene(**{**g.to_dict(), **{k: v for k, v in S.sample_scene(rng).to_dict().items()
                                             if k in ("dx", "dy", "scale", "angle")}}) for g in group]
        for g in group:
            st = S.random_style(rng)
            images.append(S.render(g))
            attrs.append({f: getattr(g, f) for f in FIELDS})
            caps.append(S.caption(g, st, rng))
            mentions.append(S.STYLE_FIELDS[st])
            scenes.append(g)
    for make, count in ((clutter_image, n_clutter), (noise_image, n_noise)):
        for _ in range(count):
            img, a, c, m = make(rng)
            images.append(img)
            attrs.append(a)
            caps.append(c)
            mentions.append(m)
            scenes.append(None)
    idx = np.array([[_TRAIN_OPTIONS[f].index(a[f]) for f in FIELDS] for a in attrs])
    mention = np.array([[f in m for f in FIELDS] for m in mentions])
    same = idx[:, None, :] == idx[None, :, :]  # (image i, caption j, field)
    target = np.all(same | ~mention[None, :, :], axis=-1)
    return np.stack(images), caps, torch.from_numpy(target.astype(np.float32)), torch.from_numpy(idx), \
        torch.from_numpy(mention), scenes


# Caption styles that name each field, for the zero-shot loss below (canonical phrasing, as prompts).
_ZS_STYLES = {"shape": ("short", "shape", "placed", "full"), "position": ("placed", "position", "full"),
              "colour": ("short", "shape", "placed", "full"),
              # "binding": the caption with the shape's and the plain ground's colours swapped ("a black
              # circle on a yellow background" for a yellow circle on black), tried because run 17d drew
              # shapes in inverted colours. It did not change that: the CLIPs already had this margin on
              # clean pictures, the inversion is the loop's (MODEL_CARD run 21)
              "binding": ("short", "placed", "full")}


def _zero_shot_fields(text: str) -> tuple[str, ...]:
    fields = tuple(f.strip() for f in text.split(",") if f.strip())
    unknown = [f for f in fields if f not in _ZS_STYLES]
    if unknown or not fields:
        raise argparse.ArgumentTypeError(f"{'unknown field ' + ', '.join(unknown) if unknown else 'no field given'}: "
                                         f"choose from {', '.join(_ZS_STYLES)}")
    return fields


def _field_variants(scene, field: str) -> list:
    """The scene with `field` set to each of its options (the scene itself among them)."""
    if field == "binding":
        swapped = dataclasses.replace(scene, colour=scene.background, background=scene.colour)
        return [scene, swapped] if scene.background in S.COLOURS else [scene]
    return [dataclasses.replace(scene, **{field: o}) for o in _OPTIONS[field]]


def _field_choices(scenes, chosen, field: str, rng: np.random.Generator):
    """For each chosen image, its scene's caption among the captions that differ only in `field`
    (one random prompt style per image). Returns the distinct captions, an index (images, choices)
    into them, a mask of padding (fewer colours are valid on some grounds) and each true choice."""
    rows, caps, labels = [], [], []
    for i in chosen:
        scene = scenes[i]
        style = str(rng.choice(_ZS_STYLES[field]))
        variants = [v for v in _field_variants(scene, field) if _valid(v)]
        rows.append([S.caption(v, style) for v in variants])
        labels.append(variants.index(scene))
    unique = sorted({c for row in rows for c in row})
    at = {c: k for k, c in enumerate(unique)}
    width = max(len(row) for row in rows)
    index = torch.zeros(len(rows), width, dtype=torch.long)
    padding = torch.ones(len(rows), width, dtype=torch.bool)
    for r, row in enumerate(rows):
        index[r, :len(row)] = torch.tensor([at[c] for c in row])
        padding[r, :len(row)] = False
    return unique, index, padding, torch.tensor(labels)


def _one_shape_sample(scenes, n_images: int, rng: np.random.Generator) -> np.ndarray:
    one_shape = [i for i, scene in enumerate(scenes) if scene is not None]
    return rng.choice(one_shape, size=min(n_images, len(one_shape)), replace=False)


def _encode_captions(model, tok, captions, bf16: bool) -> torch.Tensor:
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        return F.normalize(model.encode_text(tok(captions)).float(), dim=-1)


def _encode_images(model, x01: torch.Tensor, m_t, s_t, bf16: bool) -> torch.Tensor:
    """Unit image embeddings of [0, 1] pixels (normalised with the CLIP's own mean and std)."""
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        return F.normalize(model.encode_image((x01 - m_t) / s_t).float(), dim=-1)


def zero_shot_loss(model, tok, img: torch.Tensor, scenes, fields, rng: np.random.Generator, bf16: bool,
                   n_images: int) -> torch.Tensor:
    """Cross-entropy of each one-shape image over captions that differ only in `field`, scored by
    CLIP's own similarity: the text embeddings are the classifier.

    Why: generation climbs the similarity to one caption, so what steers is the *margin* between "a
    yellow circle …" and "a yellow square …" for the same image. The contrastive loss meets its
    target with a margin of a few hundredths for shape (run 13: 98% zero-shot, margins ±0.05), and
    auxiliary linear heads can encode a field in a direction no caption points to."""
    total = img.new_zeros(())
    # a few images per step: every option of every field is a caption to embed (about 20 per image)
    chosen = _one_shape_sample(scenes, n_images, rng)
    for field in fields:
        unique, index, padding, labels = _field_choices(scenes, chosen, field, rng)
        txt = _encode_captions(model, tok, unique, bf16)
        sims = (txt[index] * img[chosen][:, None, :]).sum(-1)
        logits = (model.logit_scale.exp() * sims).masked_fill(padding, -1e4)
        total = total + F.cross_entropy(logits, labels)
    return total


def pair_margin_loss(model, tok, x01: torch.Tensor, scenes, fields, margin: float, eps: float, m_t, s_t,
                     rng: np.random.Generator, g: torch.Generator, bf16: bool, n_images: int) -> torch.Tensor:
    """Hinge loss on the cosine margin between each one-shape image's caption and every caption that
    differs from it only in one of `fields`: max(0, margin - (cos(true) - cos(other))), averaged,
    measured on an adversarial copy of the images (one FGSM step within `eps` that attacks these
    margins; eps 0: the clean images).

    Why: generation steers a field only if the CLIP gives its pair of prompts a margin on clean
    pictures *and* that margin's gradient draws the thing asked for. Runs 10-16 had shape margins of
    ~0 (colour, background and position: 0.2-0.4), and their adversarial step attacked the
    contrastive loss, where shape is a small part; the zero-shot loss's cross-entropy is met at a
    few hundredths of cosine once the logit scale is large. A hinge sets the margin in cosine units,
    and attacking exactly that margin makes it robust, which is what makes its gradient a drawing."""
    chosen = _one_shape_sample(scenes, n_images, rng)
    x = x01[chosen]
    pairs = []
    for field in fields:
        unique, index, padding, labels = _field_choices(scenes, chosen, field, rng)
        others = ~padding
        others[torch.arange(len(labels)), labels] = False
        pairs.append((_encode_captions(model, tok, unique, bf16), index, others, labels))

    def hinge(images: torch.Tensor, detach_text: bool = False) -> torch.Tensor:
        img = _encode_images(model, images, m_t, s_t, bf16)
        total = img.new_zeros(())
        for txt, index, others, labels in pairs:
            sims = ((txt.detach() if detach_text else txt)[index] * img[:, None, :]).sum(-1)
            gap = sims.gather(1, labels[:, None]) - sims
            if others.any():  # a batch of gradient grounds has no "binding" pair
                total = total + F.relu(margin - gap)[others].mean()
        return total

    if eps > 0:
        x = fgsm(lambda images: hinge(images, detach_text=True), x, eps, g)
    return hinge(x)


def augment(x: torch.Tensor, g: torch.Generator, loop_augments=None) -> torch.Tensor:
    """Pixel noise and a slight blur on some images; with `loop_augments` (the generation loop's own
    kornia affine/perspective, which shift a shape by at most ~10% of the side, less than the
    distance between two named positions) the CLIP learns to read what its cutouts will show."""
    b = x.shape[0]
    if loop_augments is not None:
        x = loop_augments(x)
    noise = torch.randn(x.shape, generator=g) * 0.03 * (torch.rand(b, 1, 1, 1, generator=g) < 0.5)
    blur = F.avg_pool2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), 3, stride=1)
    use_blur = torch.rand(b, 1, 1, 1, generator=g) < 0.25
    x = torch.where(use_blur, 0.5 * x + 0.5 * blur, x)
    return (x + noise).clamp(0, 1)


def adversarial(model, x01: torch.Tensor, tokens: torch.Tensor, target: torch.Tensor, m_t, s_t, eps: float,
                g: torch.Generator, bf16: bool) -> torch.Tensor:
    """One FGSM step from a random start inside the L-inf ball of radius `eps` ("fast adversarial
    training", Wong et al. 2020) against the contrastive loss.

    Why: generation is gradient ascent on CLIP's image-text similarity. A CLIP that is only
    accurate answers that ascent with adversarial texture (the first shapes-world runs drew noise
    that this CLIP called "a red circle"); a CLIP that is also robust to small perturbations has
    input gradients that look like the thing asked for (Santurkar et al. 2019), so the loop draws
    shapes."""
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        txt = F.normalize(model.encode_text(tokens).float(), dim=-1)

    def loss_of(images: torch.Tensor) -> torch.Tensor:
        img = _encode_images(model, images, m_t, s_t, bf16)
        return soft_clip_loss(model.logit_scale.exp().detach() * img @ txt.T, target)

    return fgsm(loss_of, x01, eps, g)


def fgsm(loss_of, x01: torch.Tensor, eps: float, g: torch.Generator) -> torch.Tensor:
    """One signed-gradient step that raises `loss_of(images)`, from a random start inside the L-inf
    ball of radius `eps` around `x01`; the result stays in the ball and in [0, 1]."""
    delta = ((torch.rand(x01.shape, generator=g) * 2 - 1) * eps).requires_grad_(True)
    (grad,) = torch.autograd.grad(loss_of((x01 + delta).clamp(0, 1)), delta)
    delta = (delta.detach() + 1.25 * eps * grad.sign()).clamp(-eps, eps)
    return (x01 + delta).clamp(0, 1)


def soft_clip_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    ti = target / target.sum(1, keepdim=True)
    tt = target / target.sum(0, keepdim=True)
    li = -(ti * logits.log_softmax(1)).sum(1).mean()
    lt = -(tt * logits.log_softmax(0)).sum(0).mean()
    return (li + lt) / 2


@torch.no_grad()
def clip_zero_shot(model, tok, mean, std, seed: int, n: int, bf16: bool) -> dict:
    """Zero-shot accuracy per field: for each held-out image, the canonical caption of the true
    scene is ranked against captions that change only that field (other fields stay true).
    `full` uses full captions; `short` the short forms users type ("a red circle on a blue
    background", "a red circle in the top left", "a blue background")."""
    model.eval()
    scenes = S.make_scenes(seed, n)
    x = (images_tensor(scenes) - torch.tensor(mean)[:, None, None]) / torch.tensor(std)[:, None, None]
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        img = F.normalize(model.encode_image(x).float(), dim=-1)
    short_style = {"shape": "short", "colour": "short", "background": "background", "position": "position",
                   "size": "sized"}
    jobs = []  # (key, image index, options, captions)
    for mode in ("full", "short"):
        for field in FIELDS:
            style = "full" if mode == "full" else short_style[field]
            for i, s in enumerate(scenes):
                opts = [o for o in _OPTIONS[field] if _valid(S.Scene(**{**s.to_dict(), field: o}))]
                caps = [S.caption(S.Scene(**{**s.to_dict(), field: o}), style) for o in opts]
                jobs.append((f"{mode}/{field}", i, opts, caps, getattr(s, field)))
    unique = sorted({c for j in jobs for c in j[3]})
    emb = []
    for k in range(0, len(unique), 512):  # every distinct caption is embedded once
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            emb.append(F.normalize(model.encode_text(tok(unique[k:k + 512])).float(), dim=-1))
    row = {c: n for n, c in enumerate(unique)}
    emb = torch.cat(emb)
    hits: dict[str, list[int]] = {}
    for key, i, opts, caps, truth in jobs:
        sims = emb[[row[c] for c in caps]] @ img[i]
        hits.setdefault(key, []).append(int(opts[int(sims.argmax())] == truth))
    out = {k: round(sum(v) / len(v), 4) for k, v in hits.items()}
    model.train()
    return out


def _valid(s: S.Scene) -> bool:
    return s.colour in S.allowed_colours(s.background)


@torch.no_grad()
def init_clip(model) -> None:
    # open_clip initialises the vision position embedding at std width**-0.5 (~0.1), small
    # against the patch embeddings: in short runs the tower then stays position-blind
    # (position at chance in the probe and in our first two runs; a position-only probe of
    # the tower: chance at std 0.1, 97% after 200 steps at std 1). So start it at std ~1.
    if hasattr(model.visual, "positional_embedding"):  # the ViT's (ResNet's sits in its attnpool)
        model.visual.positional_embedding.mul_(10.0)
    # a sharper start than 1/0.07: a short run cannot wait for the temperature to grow
    model.logit_scale.fill_(math.log(25.0))


def load_clip_weights(model, directory: Path) -> None:
    """Start from a CLIP this script saved (fine-tuning); its architecture must be --clip-arch's."""
    from safetensors.torch import load_file

    path = directory / "open_clip_model.safetensors"
    state = {k: v.float() for k, v in load_file(str(path)).items()}
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
        fits = not missing and not unexpected
    except RuntimeError:  # same names, other sizes
        fits = False
    if not fits:
        raise SystemExit(f"--clip-init: {path} does not fit the --clip-arch model; pass the --clip-arch it was trained with")


def _saved_clip_dir(text: str) -> str:
    path = Path(text) / "open_clip_model.safetensors"
    if not path.is_file():
        raise argparse.ArgumentTypeError(f"no {path}; give a directory this script wrote with --part clip")
    return text  # a string: the arguments are logged as JSON


def train_clip(args, log: Log) -> dict:
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    g = torch.Generator().manual_seed(args.seed)
    mean, std = shapes_mean_std()
    cfg = CLIP_CFGS[args.clip_arch]
    model, tok = build_clip(cfg)
    n_params = sum(p.numel() for p in model.parameters())
    log(f"clip params {n_params:,}  mean {mean} std {std}")
    if args.clip_init:
        load_clip_weights(model, Path(args.clip_init))
        log(f"clip starts from {args.clip_init}")
    else:
        init_clip(model)
    # Auxiliary linear heads (training only, not shipped): both embeddings must say which shape,
    # position, colour... an image/caption shows. Contrastive learning alone picks up colour
    # first and, in a short run, leaves shape and position near chance (the probe; our first run).
    heads = torch.nn.ModuleDict({
        side: torch.nn.ModuleList([torch.nn.Linear(cfg["embed_dim"], len(_TRAIN_OPTIONS[f])) for f in FIELDS])
        for side in ("image", "text")})
    named = list(model.named_parameters()) + list(heads.named_parameters())
    decay = [p for n, p in named if p.ndim >= 2 and "embedding" not in n]
    no_decay = [p for n, p in named if not (p.ndim >= 2 and "embedding" not in n)]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.05}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=args.clip_lr, betas=(0.9, 0.98), eps=1e-6)
    m_t, s_t = torch.tensor(mean)[:, None, None], torch.tensor(std)[:, None, None]
    loop_augments = None
    if args.clip_loop_augments:
        import kornia.augmentation as K

        from clipguide.cutouts import build_augments

        loop_augments = K.AugmentationSequential(*build_augments(("affine", "perspective")))
    t0 = time.time()
    for step in range(min(args.clip_steps, args.clip_stop_after or args.clip_steps)):
        for pg in opt.param_groups:
            pg["lr"] = cosine_lr(step, args.clip_steps, args.clip_lr, 100)
        images, caps, target, attrs, mention, scenes = clip_batch(rng, args.clip_batch, args.clip_clutter,
                                                                  args.clip_noise)
        clean01 = augment(S.to_tensor(images), g, loop_augments)
        tokens = tok(caps)
        adversarial_step = args.clip_adv_eps > 0 and step >= args.clip_adv_from
        x01 = clean01
        if adversarial_step:
            x01 = adversarial(model, clean01, tokens, target, m_t, s_t, args.clip_adv_eps / 255, g, args.bf16)
        x = (x01 - m_t) / s_t
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.bf16):
            img, txt, scale = model(x, tokens)
            logits = scale.float() * img.float() @ txt.float().T
        loss = soft_clip_loss(logits, target)
        aux, aux_acc = 0.0, []
        for k, field in enumerate(FIELDS):
            weight = args.clip_shape_aux if field == "shape" else 1.0
            pred = heads["image"][k](img.float())
            aux = aux + weight * F.cross_entropy(pred, attrs[:, k])
            aux_acc.append(round((pred.argmax(1) == attrs[:, k]).float().mean().item(), 2))
            m = mention[:, k]
            if m.any():  # a caption only tells what it mentions
                aux = aux + weight * F.cross_entropy(heads["text"][k](txt.float()[m]), attrs[m, k])
        loss = loss + args.clip_aux * aux / len(FIELDS)
        if args.clip_zs > 0:
            loss = loss + args.clip_zs * zero_shot_loss(model, tok, F.normalize(img.float(), dim=-1), scenes,
                                                        args.clip_zs_fields, rng, args.bf16,
                                                        args.clip_zs_images)
        margin_loss = torch.zeros(())
        if args.clip_margin_weight > 0 and step >= args.clip_margin_from:
            eps = args.clip_adv_eps / 255 if adversarial_step else 0.0
            margin_loss = pair_margin_loss(model, tok, clean01, scenes, args.clip_margin_fields, args.clip_margin,
                                           eps, m_t, s_t, rng, g, args.bf16, args.clip_margin_images)
            loss = loss + args.clip_margin_weight * margin_loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_([p for _, p in named], 1.0)
        opt.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, math.log(100))
        if step % 25 == 0 or step == args.clip_steps - 1:
            log(f"clip step {step} loss {loss.item():.4f} margin loss {margin_loss.item():.4f} scale {scale.item():.1f} "
                f"image-head acc {dict(zip(FIELDS, aux_acc))} {time.time() - t0:.0f}s")
        if step % 100 == 99:
            save_clip(model, cfg, mean, std, Path(args.out) / "clip")
    train_s = time.time() - t0
    save_clip(model, cfg, mean, std, Path(args.out) / "clip")
    acc = clip_zero_shot(model, tok, mean, std, seed=args.seed + 1_000_000, n=args.eval_n, bf16=args.bf16)
    log("clip zero-shot", json.dumps(acc))
    return {"params": n_params, "train_seconds": round(train_s, 1), "steps": args.clip_steps,
            "batch": args.clip_batch, "zero_shot": acc, "mean": mean, "std": std}


def save_clip(model, cfg: dict, mean, std, out: Path) -> None:
    """open_clip's hub layout, loadable with create_model_and_transforms("local-dir:<out>")."""
    from safetensors.torch import save_file

    out.mkdir(parents=True, exist_ok=True)
    cfg = {"model_cfg": cfg,
           "preprocess_cfg": {"mean": mean, "std": std, "size": cfg["vision_cfg"]["image_size"],
                              "interpolation": "bicubic", "resize_mode": "shortest"}}
    (out / "open_clip_config.json").write_text(json.dumps(cfg, indent=2) + "\n")
    # fp16 on disk halves the file (the 49408-token embedding dominates); open_clip casts on load.
    sd = {k: v.detach().to(torch.float16).contiguous() for k, v in model.state_dict().items()}
    save_file(sd, str(out / "open_clip_model.safetensors"), metadata={"format": "pt"})


# =========================================================================== VQGAN

class TinyVQGAN(torch.nn.Module):
    """taming's Encoder/Decoder + VectorQuantizer2 with taming's state-dict names."""

    def __init__(self, ddconfig: dict, n_embed: int, embed_dim: int):
        super().__init__()
        from taming.modules.diffusionmodules.model import Decoder, Encoder
        from taming.modules.vqvae.quantize import VectorQuantizer2

        self.encoder = Encoder(**ddconfig)
        self.decoder = Decoder(**ddconfig)
        self.quantize = VectorQuantizer2(n_embed, embed_dim, beta=0.25)
        self.quant_conv = torch.nn.Conv2d(ddconfig["z_channels"], embed_dim, 1)
        self.post_quant_conv = torch.nn.Conv2d(embed_dim, ddconfig["z_channels"], 1)

    def encode(self, x):  # x in [-1, 1], as taming
        return self.quant_conv(self.encoder(x))

    def decode(self, zq):
        return self.decoder(self.post_quant_conv(zq))


def sobel(x: torch.Tensor) -> torch.Tensor:
    k = torch.tensor([[1.0, 0, -1], [2, 0, -2], [1, 0, -1]])
    kx = k.view(1, 1, 3, 3).repeat(3, 1, 1, 1)
    ky = k.T.contiguous().view(1, 1, 3, 3).repeat(3, 1, 1, 1)
    return torch.cat([F.conv2d(x, kx, padding=1, groups=3), F.conv2d(x, ky, padding=1, groups=3)], 1)


def psnr(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-image PSNR (dB) of images in [0, 1]."""
    mse = ((a - b) ** 2).flatten(1).mean(1).clamp_min(1e-10)
    return 10 * torch.log10(1.0 / mse)


def train_vqgan(args, log: Log) -> dict:
    torch.manual_seed(args.seed + 1)
    rng = np.random.default_rng(args.seed + 1)
    model = TinyVQGAN(VQ_DDCONFIG, VQ_N_EMBED, VQ_EMBED_DIM)
    n_params = sum(p.numel() for p in model.parameters())
    log(f"vqgan params {n_params:,}")
    emb = model.quantize.embedding.weight
    emb.requires_grad_(False)  # the codebook follows an EMA of its assigned encoder outputs
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=args.vq_lr, betas=(0.9, 0.99))
    ema_count = torch.ones(VQ_N_EMBED)
    ema_sum = torch.zeros(VQ_N_EMBED, VQ_EMBED_DIM)
    decay = 0.95  # fast-moving EMA: the run is short and the encoder still changes
    warm = max(30, args.vq_steps // 10)
    t0 = time.time()
    for step in range(min(args.vq_steps, args.vq_stop_after or args.vq_steps)):
        for pg in opt.param_groups:
            pg["lr"] = cosine_lr(step, args.vq_steps, args.vq_lr, 50)
        x = images_tensor([S.sample_scene(rng) for _ in range(args.vq_batch)]) * 2 - 1
        if step < args.vq_steps * 0.8:  # a random 32x32 crop costs a quarter; full images at the end
            i, j = (int(v) for v in rng.integers(0, 33, 2))
            x = x[:, :, i:i + 32, j:j + 32]
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.bf16):
            z = model.encode(x)
        z = z.float()
        flat = z.permute(0, 2, 3, 1).reshape(-1, VQ_EMBED_DIM)
        if step < warm:  # plain autoencoder first, so the codebook starts from useful features
            zq, idx = z, torch.zeros(len(flat), dtype=torch.long)
        else:
            if step == warm:  # codebook initialised from current encoder outputs (a cheap k-means start)
                pick = flat[torch.randint(len(flat), (VQ_N_EMBED,))].detach()
                emb.data.copy_(pick + 0.01 * pick.std() * torch.randn_like(pick))
                ema_sum.copy_(emb.data)
                ema_count.fill_(1.0)
            zq, _, (_, _, idx) = model.quantize(z)
        commit = F.mse_loss(z, zq.detach())
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.bf16):
            rec = model.decode(zq)
        rec = rec.float()
        loss = (F.l1_loss(rec, x) + F.mse_loss(rec, x) + 0.5 * F.l1_loss(sobel(rec), sobel(x))
                + 0.25 * commit)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        if step >= warm:
            with torch.no_grad():  # EMA codebook update + restart of dead codes
                onehot = F.one_hot(idx.view(-1), VQ_N_EMBED).float()
                ema_count.mul_(decay).add_(onehot.sum(0), alpha=1 - decay)
                ema_sum.mul_(decay).add_(onehot.T @ flat.detach(), alpha=1 - decay)
                n = ema_count.sum()
                count = (ema_count + 1e-5) / (n + VQ_N_EMBED * 1e-5) * n
                emb.data.copy_(ema_sum / count[:, None])
                if step % 10 == 0 and step < args.vq_steps * 0.85:
                    dead = ema_count < 0.05
                    if dead.any():  # move unused codes onto encoder outputs seen now
                        pick = flat[torch.randint(len(flat), (int(dead.sum()),))].detach()
                        emb.data[dead] = pick
                        ema_sum[dead] = pick
                        ema_count[dead] = 1.0
        if step % 25 == 0 or step == args.vq_steps - 1:
            used = int(torch.unique(idx).numel())
            p = psnr((rec.detach() + 1) / 2, (x + 1) / 2).mean().item()
            log(f"vq step {step} loss {loss.item():.4f} commit {commit.item():.4f} psnr {p:.2f} "
                f"codes in batch {used} {time.time() - t0:.0f}s")
        if step % 100 == 99:
            save_vqgan(model, args)
    train_s = time.time() - t0
    metrics = {"params": n_params, "train_seconds": round(train_s, 1), "steps": args.vq_steps,
               "batch": args.vq_batch, **vqgan_heldout(model, args.seed + 2_000_000, args.eval_n)}
    log("vqgan held-out", json.dumps(metrics))
    save_vqgan(model, args)
    return metrics


@torch.no_grad()
def vqgan_heldout(model: TinyVQGAN, seed: int, n: int) -> dict:
    """PSNR of quantised reconstructions of `n` held-out 64x64 images, and codes used."""
    model.eval()
    x = images_tensor(S.make_scenes(seed, n))
    zq, _, (_, _, idx) = model.quantize(model.encode(x * 2 - 1))
    p = psnr(((model.decode(zq) + 1) / 2).clamp(0, 1), x)
    model.train()
    return {"psnr_db_mean": round(p.mean().item(), 2), "psnr_db_min": round(p.min().item(), 2),
            "codes_used_heldout": int(torch.unique(idx).numel())}


def eval_vqgan(args, log: Log) -> dict:
    """Held-out PSNR of the saved <out>/vqgan.safetensors."""
    from safetensors import safe_open

    with safe_open(str(Path(args.out) / "vqgan.safetensors"), "pt") as f:
        cfg = json.loads(f.metadata()["config"])
        sd = {k: f.get_tensor(k).float() for k in f.keys()}
    model = TinyVQGAN(cfg["ddconfig"], cfg["n_embed"], cfg["embed_dim"])
    model.load_state_dict(sd)
    m = vqgan_heldout(model, args.seed + 2_000_000, args.eval_n)
    log("vqgan held-out", json.dumps(m))
    return m


def eval_clip(args, log: Log) -> dict:
    """Zero-shot accuracy of the saved <out>/clip, loaded the way users load it."""
    import open_clip

    d = f"local-dir:{Path(args.out) / 'clip'}"
    model, _, _ = open_clip.create_model_and_transforms(d)
    pp = model.visual.preprocess_cfg
    acc = clip_zero_shot(model, open_clip.get_tokenizer(d), list(pp["mean"]), list(pp["std"]),
                         seed=args.seed + 1_000_000, n=args.eval_n, bf16=args.bf16)
    log("clip zero-shot", json.dumps(acc))
    return {"zero_shot": acc}


def save_vqgan(model: TinyVQGAN, args) -> None:
    """The clipguide-vqgan safetensors format: taming's tensor names, config in the metadata."""
    from safetensors.torch import save_file

    sd = {k: v.detach().float().contiguous() for k, v in model.state_dict().items()}
    if args.vq_fp16:
        sd = {k: v.half() for k, v in sd.items()}
    config = {"embed_dim": VQ_EMBED_DIM, "n_embed": VQ_N_EMBED, "ddconfig": VQ_DDCONFIG, "quantizer": "vq"}
    Path(args.out).mkdir(parents=True, exist_ok=True)
    save_file(sd, str(Path(args.out) / "vqgan.safetensors"),
              metadata={"format": "clipguide-vqgan", "config": json.dumps(config)})


# =========================================================================== main

def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--part", choices=["all", "clip", "vqgan", "eval-clip", "eval-vqgan"], default="all")
    ap.add_argument("--out", default="weights/demo")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--no-bf16", dest="bf16", action="store_false", help="disable bf16 autocast")
    ap.add_argument("--clip-steps", type=int, default=2400)
    ap.add_argument("--clip-stop-after", type=int, default=0,
                    help="stop after this many steps of the --clip-steps schedule (0: run it all)")
    ap.add_argument("--clip-batch", type=int, default=96)
    ap.add_argument("--clip-lr", type=float, default=2e-3)
    ap.add_argument("--clip-arch", choices=sorted(CLIP_CFGS), default="resnet")
    ap.add_argument("--clip-clutter", type=int, default=12, help="clutter images (many shapes) per batch")
    ap.add_argument("--clip-noise", type=int, default=8, help="noise images (colour blotches) per batch")
    ap.add_argument("--clip-loop-augments", action=argparse.BooleanOptionalAction, default=True,
                    help="also train under the loop's affine/perspective augments")
    ap.add_argument("--clip-adv-eps", type=float, default=8.0,
                    help="adversarial training radius in 0-255 pixel units (0: off)")
    ap.add_argument("--clip-adv-from", type=int, default=0,
                    help="first adversarial step; the steps before it are clean (shape is only learned in clean steps: MODEL_CARD run 12)")
    ap.add_argument("--clip-aux", type=float, default=2.0, help="weight of the auxiliary attribute losses")
    ap.add_argument("--clip-shape-aux", type=float, default=1.0,
                    help="extra factor on the shape field's auxiliary losses (shape is the field adversarial steps "
                         "erase first; 10 keeps it at eps 8: MODEL_CARD run 13b)")
    ap.add_argument("--clip-zs", type=float, default=0.0,
                    help="weight of the zero-shot loss: each image against captions that differ only in one field "
                         "(larger margins on clean images, but a worse guide: MODEL_CARD runs 14-15)")
    ap.add_argument("--clip-zs-images", type=int, default=16, help="images per step in the zero-shot loss")
    ap.add_argument("--clip-zs-fields", type=_zero_shot_fields, default=("shape", "position", "colour"),
                    help="comma-separated fields of the zero-shot loss: " + ", ".join(_ZS_STYLES))
    ap.add_argument("--clip-margin", type=float, default=0.2,
                    help="cosine margin the pair-margin loss asks between an image's caption and one that differs "
                         "only in a --clip-margin-fields field")
    ap.add_argument("--clip-margin-weight", type=float, default=0.0,
                    help="weight of the pair-margin loss (0: off); its images are attacked at --clip-adv-eps in "
                         "adversarial steps (from step 0 at weight 20 it stops colour and position being learned; "
                         "see --clip-margin-from: MODEL_CARD runs 17, 17d)")
    ap.add_argument("--clip-margin-from", type=int, default=0,
                    help="first step of the pair-margin loss (e.g. --clip-adv-from: after the clean steps, which "
                         "learn colour and position)")
    ap.add_argument("--clip-margin-images", type=int, default=16, help="images per step in the pair-margin loss")
    ap.add_argument("--clip-margin-fields", type=_zero_shot_fields, default=("shape",),
                    help="comma-separated fields of the pair-margin loss: " + ", ".join(_ZS_STYLES))
    ap.add_argument("--clip-init", type=_saved_clip_dir, default=None,
                    help="start from this saved CLIP directory (fine-tune) instead of a fresh initialisation")
    ap.add_argument("--vq-steps", type=int, default=600)
    ap.add_argument("--vq-stop-after", type=int, default=0,
                    help="stop after this many steps of the --vq-steps schedule (0: run it all)")
    ap.add_argument("--vq-batch", type=int, default=12)
    ap.add_argument("--vq-lr", type=float, default=1e-3)
    ap.add_argument("--vq-fp16", action="store_true", help="store the VQGAN in fp16 (half the size)")
    ap.add_argument("--eval-n", type=int, default=400)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    logs = Path(args.out) / "logs"
    parts = ["clip", "vqgan"] if args.part == "all" else [args.part]
    for part in parts:
        log = Log(logs / f"{part}.log")
        log(f"{part}: {' '.join(sys.argv)}  torch {torch.__version__} threads {args.threads}")
        t0 = time.time()
        metrics = {"clip": train_clip, "vqgan": train_vqgan,
                   "eval-clip": eval_clip, "eval-vqgan": eval_vqgan}[part](args, log)
        metrics["wall_seconds"] = round(time.time() - t0, 1)
        metrics["args"] = vars(args)
        (logs / f"{part}.json").write_text(json.dumps(metrics, indent=2) + "\n")
        log(f"{part} done in {metrics['wall_seconds']}s")


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()
