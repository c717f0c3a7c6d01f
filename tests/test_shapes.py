"""Shapes world, the shipped demo models (CLIP, VQGAN, judge) and their on-disk formats."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from clipguide.demo import CLIP_DIR, VQGAN_PATH, WIDE_CLIP_DIR
from clipguide.demo import shapes as S

# --------------------------------------------------------------------------- shapes world


def test_same_seed_same_pixels_and_captions():
    a, ca, sa = S.make_batch(3, 6, 48)
    b, cb, sb = S.make_batch(3, 6, 48)
    assert a.dtype == np.uint8 and a.shape == (6, 48, 48, 3)
    assert np.array_equal(a, b) and ca == cb and sa == sb
    c, _, _ = S.make_batch(4, 6, 48)
    assert not np.array_equal(a, c)


def test_render_any_size_and_every_option():
    rng = np.random.default_rng(0)
    base = S.sample_scene(rng)
    for shape in S.SHAPES:
        for size in S.SIZES:
            img = S.render(S.Scene(shape, "red", size, "centre", "blue"), 32)
            assert img.shape == (32, 32, 3)
            # the shape is there: some pixels are (close to) red, the corners are blue
            assert (np.abs(img.astype(int) - S.COLOURS["red"]).sum(-1) < 10).sum() > 10
            assert tuple(img[0, 0]) == S.COLOURS["blue"]
    for position in S.POSITIONS:
        assert S.render(S.Scene(base.shape, "white", "small", position, "black"), (40, 30)).shape == (30, 40, 3)
    for background in S.BACKGROUNDS:
        colour = S.allowed_colours(background)[0]
        img = S.render(S.Scene("circle", colour, "small", "centre", background), 16)
        top = S.COLOURS[S.GRADIENTS.get(background, (background,))[0]]
        assert np.abs(img[0, 0].astype(int) - top).max() <= 20


def test_shape_sits_at_its_position():
    for position, (fx, fy) in S.POSITIONS.items():
        m = S.shape_mask(S.Scene("circle", "red", "small", position, "blue"), 64)
        ys, xs = np.nonzero(m > 0.5)
        assert abs(xs.mean() + 0.5 - fx * 64) < 1.5 and abs(ys.mean() + 0.5 - fy * 64) < 1.5


def test_captions_match_scenes():
    scene = S.Scene("circle", "red", "small", "top left", "blue")
    assert S.caption(scene) == "a small red circle in the top left on a blue background"
    assert S.caption(scene, "short") == "a red circle on a blue background"
    assert S.caption(S.Scene("star", "orange", "large", "centre", "sunset sky"), "placed") == \
        "an orange star in the centre on a sunset sky background"
    assert S.caption(scene, "background") == "a blue background"
    rng = np.random.default_rng(1)
    for _ in range(200):
        s = S.sample_scene(rng)
        assert s.colour in S.allowed_colours(s.background)
        style = S.random_style(rng)
        text = S.caption(s, style, rng)
        for field in S.STYLE_FIELDS[style]:
            value = getattr(s, field)
            assert value in text or (value == "centre" and ("center" in text or "middle" in text))
        assert S.compatible(s, style, s)
        other = S.vary(s, "shape", rng)
        assert other.shape != s.shape
        assert S.compatible(other, style, s) == ("shape" not in S.STYLE_FIELDS[style])
    with pytest.raises(ValueError):
        S.caption(scene, "poem")


# --------------------------------------------------------------------------- judge


def test_judge_reads_rendered_images():
    from clipguide.demo.judge import Judge

    judge = Judge()
    scenes = [S.Scene("circle", "red", "large", "centre", "blue"),
              S.Scene("square", "yellow", "large", "top left", "black"),
              S.Scene("triangle", "white", "large", "bottom right", "sunset sky"),
              S.Scene("star", "green", "large", "right", "white"),
              S.Scene("star", "black", "small", "top left", "blue", angle=5.0),  # thin points: not opened away
              S.Scene("circle", "black", "small", "top right", "sunset sky")]  # a gradient is ground, not shape
    preds = judge.predict(S.to_tensor(S.render_batch(scenes, 64)))
    for p, s in zip(preds, scenes):
        assert (p["shape"], p["shape_colour"], p["position"], p["background"]) == \
            (s.shape, s.colour, s.position, s.background)
        assert p["side"] == ("left" if "left" in s.position else "right" if "right" in s.position else "centre")
        assert p["shape_fit"] > 0.85
    # any input size is resized; a blank image shows no shape anywhere
    blank = judge.predict(torch.zeros(1, 3, 96, 96))[0]
    assert blank["shape_colour"] == "none" and blank["background"] == "black"
    assert blank["shape"] == blank["position"] == blank["side"] == "none"


def test_judge_reads_shapes_the_way_generated_pictures_draw_them():
    """What the VQGAN and the loop do to a shape (run 20): cut it off at the border, round its corners,
    mottle the ground, leave a band of another colour across it. The outline reading copes with each."""
    from scipy import ndimage

    from clipguide.demo.judge import Judge

    rng = np.random.default_rng(0)

    def picture(shape: str, position: str, dx: float = 0.0) -> np.ndarray:
        img = S.render(S.Scene(shape, "black", "large", position, "orange", dx=dx)).astype(float)
        img[:10] = S.COLOURS["purple"]  # a band of sky across the top: it spans the picture, so it is ground
        img = ndimage.gaussian_filter(img, sigma=(1.2, 1.2, 0))  # soft, rounded corners
        return np.clip(img + rng.normal(0, 12, img.shape), 0, 255).astype(np.uint8)  # a mottled ground

    cases = [("circle", "left", -0.14), ("square", "left", -0.14),  # half off the left edge
             ("circle", "right", 0.0), ("square", "bottom right", 0.0)]
    preds = Judge().predict(S.to_tensor(np.stack([picture(*c) for c in cases])))
    assert [(p["shape"], p["side"]) for p in preds] == \
        [(shape, "left" if "left" in position else "right") for shape, position, _ in cases]


def test_judge_names_the_colour_most_shape_pixels_have():
    from clipguide.demo.judge import shape_colour_name

    # a red shape and a few blue specks on white: red, not the purple a per-channel median gives
    img = S.render(S.Scene("circle", "red", "large", "centre", "white")).astype(float)
    img[5:10, 20:30] = S.COLOURS["blue"]
    img[50:55, 40:46] = S.COLOURS["blue"]
    assert shape_colour_name(img) == "red"
    img[20:44, 20:44] = S.COLOURS["blue"]  # now blue covers more than red does
    assert shape_colour_name(img) == "blue"
    # a blue shape on a white ground mottled with a pale tint over a bigger area than the shape:
    # the pale pixels stand out from white but are named white, the ground's colour, so they do not count
    img = S.render(S.Scene("circle", "blue", "small", "centre", "white")).astype(float)
    img[8:56:2, 4:60] = (190, 205, 240)
    assert shape_colour_name(img) == "blue"


# --------------------------------------------------------------------------- CLIP


@pytest.fixture(scope="module")
def demo_clip():
    import open_clip

    model, _, preprocess = open_clip.create_model_and_transforms(f"local-dir:{CLIP_DIR}")
    tokenizer = open_clip.get_tokenizer(f"local-dir:{CLIP_DIR}")
    return model.eval(), preprocess, tokenizer


def test_demo_clip_loads_with_its_own_preprocess(demo_clip):
    model, preprocess, tokenizer = demo_clip
    cfg = json.loads((CLIP_DIR / "open_clip_config.json").read_text())
    pp = cfg["preprocess_cfg"]
    assert tuple(model.visual.preprocess_cfg["mean"]) == tuple(pp["mean"])
    assert tuple(model.visual.preprocess_cfg["std"]) == tuple(pp["std"])
    # a ViT tower keeps (H, W), a ModifiedResNet (the shipped one) an int
    assert model.visual.image_size in ((pp["size"], pp["size"]), pp["size"])
    norm = [t for t in preprocess.transforms if type(t).__name__ == "Normalize"][0]
    assert tuple(norm.mean) == tuple(pp["mean"]) and tuple(norm.std) == tuple(pp["std"])
    assert tokenizer(["a red circle"]).shape == (1, cfg["model_cfg"]["text_cfg"]["context_length"])


def _pixel_normalisation(model) -> tuple[torch.Tensor, torch.Tensor]:
    """The CLIP's own mean and std, shaped to normalise (3, H, W) pixels."""
    cfg = model.visual.preprocess_cfg
    return torch.tensor(cfg["mean"])[:, None, None], torch.tensor(cfg["std"])[:, None, None]


@torch.no_grad()
def test_demo_clip_ranks_the_right_colour_first(demo_clip):
    model, _, tokenizer = demo_clip
    mean, std = _pixel_normalisation(model)
    cases = [S.Scene("circle", "red", "large", "centre", "blue"),
             S.Scene("square", "yellow", "large", "left", "black"),
             S.Scene("star", "white", "large", "top", "green")]
    x = (S.to_tensor(S.render_batch(cases, 64)) - mean) / std
    img = torch.nn.functional.normalize(model.encode_image(x), dim=-1)
    for i, s in enumerate(cases):
        # background colour, the easiest question
        opts = [c for c in S.COLOURS if c != s.colour]
        text = tokenizer([f"a {c} background" if c[0] not in "aeiou" else f"an {c} background" for c in opts])
        sims = torch.nn.functional.normalize(model.encode_text(text), dim=-1) @ img[i]
        assert opts[int(sims.argmax())] == s.background
        # shape colour, with the short caption users type
        opts = list(S.allowed_colours(s.background))
        caps = [S.caption(S.Scene(s.shape, c, s.size, s.position, s.background), "short") for c in opts]
        sims = torch.nn.functional.normalize(model.encode_text(tokenizer(caps)), dim=-1) @ img[i]
        assert opts[int(sims.argmax())] == s.colour


# --------------------------------------------------------------------------- VQGAN


def test_demo_vqgan_file_format_and_reconstruction():
    from safetensors import safe_open
    from taming.modules.diffusionmodules.model import Decoder, Encoder

    with safe_open(str(VQGAN_PATH), "pt") as f:
        meta = f.metadata()
        sd = {k: f.get_tensor(k).float() for k in f.keys()}
    assert meta["format"] == "clipguide-vqgan"
    cfg = json.loads(meta["config"])
    assert cfg["quantizer"] == "vq" and {"embed_dim", "n_embed", "ddconfig"} <= set(cfg)
    assert sd["quantize.embedding.weight"].shape == (cfg["n_embed"], cfg["embed_dim"])
    assert not any(k.startswith("loss.") for k in sd)
    assert {k.split(".")[0] for k in sd} == {"encoder", "decoder", "quant_conv", "post_quant_conv", "quantize"}
    # taming's own modules take the weights and reconstruct a held-out image well
    enc, dec = Encoder(**cfg["ddconfig"]), Decoder(**cfg["ddconfig"])
    enc.load_state_dict({k[8:]: v for k, v in sd.items() if k.startswith("encoder.")})
    dec.load_state_dict({k[8:]: v for k, v in sd.items() if k.startswith("decoder.")})
    qc = torch.nn.Conv2d(cfg["ddconfig"]["z_channels"], cfg["embed_dim"], 1)
    pqc = torch.nn.Conv2d(cfg["embed_dim"], cfg["ddconfig"]["z_channels"], 1)
    qc.load_state_dict({"weight": sd["quant_conv.weight"], "bias": sd["quant_conv.bias"]})
    pqc.load_state_dict({"weight": sd["post_quant_conv.weight"], "bias": sd["post_quant_conv.bias"]})
    x = S.to_tensor(S.render_batch(S.make_scenes(99, 4), 64))
    with torch.no_grad():
        z = qc(enc(x * 2 - 1))
        codes = sd["quantize.embedding.weight"]
        flat = z.permute(0, 2, 3, 1).reshape(-1, z.shape[1])
        zq = codes[torch.cdist(flat, codes).argmin(1)].view(z.shape[0], z.shape[2], z.shape[3], -1)
        rec = ((dec(pqc(zq.permute(0, 3, 1, 2))) + 1) / 2).clamp(0, 1)
    mse = ((rec - x) ** 2).mean().item()
    assert 10 * np.log10(1 / mse) > 20.0


def test_demo_vqgan_loads_through_clipguide_loader():
    from clipguide.generators.vqgan_files import load_vqgan

    gen = load_vqgan(VQGAN_PATH, device="cpu")
    x = S.to_tensor(S.render_batch(S.make_scenes(98, 4), 64))
    with torch.no_grad():
        rec = gen.decode(gen.encode(x))
    assert rec.shape == x.shape
    assert 10 * np.log10(1 / ((rec - x) ** 2).mean().item()) > 20.0


def test_shipped_demo_weights_are_small():
    files = [p for p in (CLIP_DIR.parent).rglob("*.safetensors")]
    assert VQGAN_PATH in files
    assert WIDE_CLIP_DIR / "open_clip_model.safetensors" in files
    # the 49 408-token embedding of the standard tokenizer is 6.3 MB of each CLIP file; the wide
    # CLIP's vision tower another 10 MB (fp16): 28.6 MB in all
    assert sum(p.stat().st_size for p in files) < 29 * 2**20


@pytest.fixture(scope="module")
def train_demo():
    from conftest import load_script

    return load_script("scripts/train_demo.py")


@torch.no_grad()
def test_zero_shot_loss_is_low_for_the_true_captions_only(demo_clip, train_demo):
    """The training script's zero-shot loss labels each image with its own caption among those that
    differ in one field: the shipped CLIP reads colour and position, so its loss is low on the true
    images and high when every image is scored as its neighbour's scene."""
    model, _, tokenizer = demo_clip
    rng = np.random.default_rng(0)
    images, _, _, _, _, scenes = train_demo.clip_batch(rng, 16)
    mean, std = _pixel_normalisation(model)
    img = torch.nn.functional.normalize(model.encode_image((S.to_tensor(images) - mean) / std), dim=-1)
    for field in ("colour", "position"):
        # the same scenes with another valid value in `field`: every image now gets a wrong label
        swapped = [next(t for t in (dataclasses.replace(s, **{field: v}) for v in train_demo._OPTIONS[field])
                        if t != s and train_demo._valid(t)) for s in scenes]
        true = train_demo.zero_shot_loss(model, tokenizer, img, scenes, [field], np.random.default_rng(1), False, 16)
        wrong = train_demo.zero_shot_loss(model, tokenizer, img, swapped, [field], np.random.default_rng(1), False, 16)
        assert true < 0.5 and wrong > 2, (field, float(true), float(wrong))


def test_pair_margin_loss_is_low_for_true_captions_and_raised_by_its_attack(demo_clip, train_demo):
    """The pair-margin loss hinges on cos(image, its caption) - cos(image, a caption differing in one
    field): the shipped CLIP gives colour a margin of ~0.25, so at margin 0.1 the loss is ~0 on the
    true scenes and large when every image is scored as another colour; its FGSM step, which attacks
    exactly those margins, raises the loss on the same images (at margin 0.5, where every pair counts:
    and at eps 32: this CLIP was trained robust at eps 8, where margins of 0.1 survive the attack)."""
    model, _, tokenizer = demo_clip
    images, _, _, _, _, scenes = train_demo.clip_batch(np.random.default_rng(0), 16)
    x01 = S.to_tensor(images)
    mean, std = _pixel_normalisation(model)
    swapped = [next(t for t in (dataclasses.replace(s, colour=v) for v in train_demo._OPTIONS["colour"])
                    if t != s and train_demo._valid(t)) for s in scenes]

    def loss(scenes_, eps, margin=0.1):
        return train_demo.pair_margin_loss(model, tokenizer, x01, scenes_, ["colour"], margin, eps, mean, std,
                                           np.random.default_rng(1), torch.Generator().manual_seed(0),
                                           False, 16).item()

    true, wrong = loss(scenes, 0.0), loss(swapped, 0.0)
    assert true < 0.02 and wrong > 0.1, (true, wrong)
    clean, attacked = loss(scenes, 0.0, margin=0.5), loss(scenes, 32 / 255, margin=0.5)
    assert attacked > clean + 0.05, (clean, attacked)


def test_binding_pairs_swap_the_shape_and_ground_colours(demo_clip, train_demo):
    """The "binding" field's other caption is the scene with its shape's and plain ground's colours
    swapped; a gradient ground has none. The shipped CLIP binds colours to shape and ground, so the
    hinge is small on the true scenes and large when each image is scored as its swapped scene."""
    scene = S.Scene(shape="circle", colour="yellow", size="small", position="centre", background="black")
    assert train_demo._field_variants(scene, "binding") == [scene, dataclasses.replace(scene, colour="black",
                                                                                          background="yellow")]
    assert train_demo._field_variants(dataclasses.replace(scene, background="sunset sky"), "binding") == \
        [dataclasses.replace(scene, background="sunset sky")]
    model, _, tokenizer = demo_clip
    images, _, _, _, _, scenes = train_demo.clip_batch(np.random.default_rng(0), 16)
    mean, std = _pixel_normalisation(model)
    swapped = [train_demo._field_variants(s, "binding")[-1] if s is not None else None for s in scenes]

    def loss(scenes_):
        return train_demo.pair_margin_loss(model, tokenizer, S.to_tensor(images), scenes_, ["binding"], 0.1, 0.0,
                                           mean, std, np.random.default_rng(1), torch.Generator().manual_seed(0),
                                           False, 16).item()

    true, wrong = loss(scenes), loss(swapped)
    assert true < 0.02 and wrong > 0.1, (true, wrong)


def test_training_script_fine_tunes_a_saved_clip(tmp_path, capsys, train_demo):
    """--clip-init starts from a CLIP this script saved; the pair-margin loss runs from
    --clip-margin-from, attacked in adversarial steps; a directory without a CLIP is a one-line error."""
    from clipguide.perceptor import load_clip

    tuned = tmp_path / "tuned"
    train_demo.main(["--part", "clip", "--clip-init", str(CLIP_DIR), "--clip-steps", "2", "--clip-adv-from", "1",
                     "--clip-batch", "32", "--eval-n", "4", "--clip-margin-weight", "1", "--clip-margin-images", "4",
                     "--clip-margin-from", "1", "--out", str(tuned)])
    log = (tuned / "logs" / "clip.log").read_text()
    assert f"clip starts from {CLIP_DIR}" in log
    # the margin loss starts at --clip-margin-from: off in step 0, on (and attacked) in step 1
    steps = {int(line.split()[2]): line for line in log.splitlines() if line.startswith("clip step ")}
    assert "margin loss 0.0000" in steps[0] and "margin loss 0.0000" not in steps[1], steps
    # two small steps at the warm-up learning rate leave the shipped CLIP's colour reading intact
    assert json.loads((tuned / "logs" / "clip.json").read_text())["zero_shot"]["short/colour"] >= 0.75
    assert load_clip(str(tuned / "clip"), "cpu").input_size == 64
    with pytest.raises(SystemExit) as stop:
        train_demo.main(["--part", "clip", "--clip-init", str(tmp_path / "nothing"), "--clip-steps", "1",
                         "--out", str(tmp_path / "never")])
    assert stop.value.code == 2 and "--clip-init: no " in capsys.readouterr().err
    assert not (tmp_path / "never").exists()


def test_training_script_runs_the_shipped_clip_recipe(tmp_path, train_demo):
    """Two steps of the CLIP part with its shipped defaults (ResNet tower, clutter and noise
    negatives, loop augments, adversarial batches) write a CLIP that clipguide loads."""
    from clipguide.perceptor import load_clip

    # step 0 clean, step 1 adversarial: both kinds of batch run, with the shape-weighted auxiliary
    # loss and the zero-shot loss (each image against captions that differ in one field)
    train_demo.main(["--part", "clip", "--clip-steps", "2", "--clip-adv-from", "1", "--clip-batch", "32", "--eval-n", "4",
                     "--clip-shape-aux", "5", "--clip-zs", "1", "--clip-zs-images", "2", "--out", str(tmp_path)])
    metrics = json.loads((tmp_path / "logs" / "clip.json").read_text())
    assert metrics["args"]["clip_arch"] == "resnet" and metrics["args"]["clip_adv_eps"] > 0
    clip = load_clip(str(tmp_path / "clip"), "cpu")
    assert clip.input_size == 64
