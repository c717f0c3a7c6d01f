"""The loss terms users add with --loss: each one's maths on made-up pictures, then what each does to a
real run (demo models, same seeds with and without the term), measured on pixels, not by CLIP."""

from __future__ import annotations

import pytest
import torch

from clipguide import api
from clipguide.errors import UserError
from clipguide.losses import State
from clipguide.losses.edge import border_mask
from clipguide.losses.palette import palette_distance
from clipguide.losses.saturation import chroma
from clipguide.losses.smoothness import total_variation
from clipguide.losses.symmetry import Symmetry
from clipguide.palettes import parse_colour, parse_palette
from clipguide.presets import demo_settings
from clipguide.registry import LOSSES
from clipguide.settings import Settings

PALETTE = "#1b1b3a,#f2a541,#e0e0e0"


def state(images: torch.Tensor) -> State:
    return State(0, images, {}, [torch.Generator() for _ in images])


def asymmetry(images: torch.Tensor) -> torch.Tensor:
    return (images - images.flip(-1)).abs().mean(dim=(1, 2, 3))


def border_distance(images: torch.Tensor, colour, width: int) -> torch.Tensor:
    mask = border_mask(images.shape[-2], images.shape[-1], width)
    return (images - torch.tensor(colour).view(1, 3, 1, 1)).norm(dim=1)[:, mask].mean(-1)


# ----------------------------------------------------------------------------- the maths
def test_every_term_is_registered_and_gives_one_value_per_image():
    images = torch.rand(3, 3, 16, 16)
    settings = Settings(palette=PALETTE)
    from clipguide.losses import Context

    context = Context(settings, None, torch.device("cpu"), (16, 16), {"z": torch.zeros(3, 4)}, None)
    for name in ("symmetry", "smoothness", "saturation", "palette", "edge", "mse-latent"):
        term = LOSSES.get(name).build(context, 1.0)
        value = term(State(0, images, {"z": torch.ones(3, 4)}, []))
        assert term.name == name and value.shape == (3,), name


def test_symmetry_is_zero_for_a_mirror_image_and_follows_the_axis():
    half = torch.rand(2, 3, 8, 4)
    mirrored = torch.cat([half, half.flip(-1)], dim=-1)
    assert torch.allclose(Symmetry()(state(mirrored)), torch.zeros(2))
    assert (Symmetry(axis="top-bottom")(state(mirrored)) > 0).all()
    assert (Symmetry(axis="both")(state(mirrored)) > 0).all()


def test_smoothness_saturation_palette_and_edge_measure_what_they_say():
    flat, noisy = torch.full((1, 3, 8, 8), 0.5), torch.rand(1, 3, 8, 8)
    assert total_variation(flat).item() == 0 and total_variation(noisy).item() > 0.2
    grey, red = torch.full((1, 3, 4, 4), 0.4), torch.tensor([1.0, 0, 0]).view(1, 3, 1, 1).expand(1, 3, 4, 4)
    assert chroma(grey).item() == 0 and chroma(red).item() == 1
    assert LOSSES.get("saturation")()(state(red)).item() == -1  # lower loss = more colourful
    colours = torch.tensor(parse_palette(PALETTE))
    in_palette = colours[torch.randint(3, (8, 8))].permute(2, 0, 1)[None]
    assert palette_distance(in_palette, colours).item() == pytest.approx(0, abs=1e-12)
    assert palette_distance(noisy, colours).item() > 0.01
    framed = torch.rand(1, 3, 16, 16)
    framed[..., border_mask(16, 16, 3)] = 1.0
    assert border_distance(framed, (1.0, 1.0, 1.0), 3).item() == 0 and border_mask(16, 16, 3).sum() == 16 * 16 - 100


def test_the_latent_pull_decays_to_nothing_unless_keyframed():
    from clipguide.losses import Context
    from clipguide.schedules import Constant, parse_schedule

    context = Context(Settings(steps=10), None, torch.device("cpu"), (8, 8), {"z": torch.zeros(1, 2)}, None)
    term = LOSSES.get("mse-latent").build(context, Constant(2.0))
    assert [term.weight(i) for i in (0, 5, 10)] == pytest.approx([2.0, 1.0, 0.0])
    assert term(State(0, None, {"z": torch.full((1, 2), 3.0)}, [])).item() == 4.5  # half the mean squared difference
    keyed = LOSSES.get("mse-latent").build(context, parse_schedule("0:1, 4:1", what="w"))
    assert keyed.weight(9) == 1.0


def test_colours_and_palettes_parse_or_say_what_is_wrong():
    assert parse_colour("#fa4") == pytest.approx((1.0, 0xaa / 255, 0x44 / 255)) and parse_colour("White") == (1, 1, 1)
    assert len(parse_palette("pico-8")) == 16 and len(parse_palette("#000, #fff")) == 2
    with pytest.raises(UserError, match="'#12345g' is not a colour"):
        parse_palette("#000000,#12345g")
    with pytest.raises(UserError, match="only one colour"):
        parse_palette("#123456")
    with pytest.raises(UserError, match="only one colour"):
        parse_palette("#123456,#123456")
    with pytest.raises(UserError, match="unknown palette 'pico8'.*did you mean 'pico-8'"):
        parse_palette("pico8")


@pytest.mark.parametrize("changes, message", [
    ({"losses": ("symetry:1",)}, "unknown loss 'symetry'.*did you mean 'symmetry'"),
    ({"losses": ("smoothness:lots",)}, "weight of loss 'smoothness'"),
    ({"losses": ("palette:1",)}, "loss 'palette' needs --palette"),
    ({"palette": "#000000,nope"}, "'nope' is not a colour"),
    ({"palette": "#ffffff"}, "only one colour"),
    ({"edge_colour": "#zzz"}, "edge colour '#zzz'"),
    ({"symmetry_axis": "diagonal"}, "unknown symmetry axis 'diagonal'"),
])
def test_bad_term_settings_are_one_line_errors(changes, message):
    with pytest.raises(UserError, match=message):
        Settings().replace(**changes)


@pytest.mark.parametrize("argv, message", [
    (["--loss", "symetry:2"], "did you mean 'symmetry'"),
    (["--loss", "symmetry:x"], "weight of loss 'symmetry'"),
    (["--loss", "palette", "--palette", "#ff0000,#0000fg"], "'#0000fg' is not a colour"),
    (["--loss", "palette", "--palette", "#ff0000"], "only one colour"),
    (["--generator", "fftt"], "unknown generator 'fftt'.*did you mean 'fft'"),
])
def test_the_cli_refuses_bad_terms_with_one_line_and_writes_nothing(tmp_path, capsys, argv, message):
    import re

    from clipguide.cli import main

    out = tmp_path / "out"
    assert main(["a red circle", "--demo", "--steps", "1", "--out", str(out), "--quiet", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and re.search(message, err), err
    assert not out.exists() or not any(out.iterdir())


# ----------------------------------------------------------------------------- on real runs
STEPS = 40


@pytest.fixture(scope="module")
def session():
    return api.Session("cpu", offline=True, progress=False)


@pytest.fixture(scope="module")
def base():
    """The demo models, two seeds, few steps: each term against the same run without it."""
    return Settings(prompt="a white circle on a red background", device="cpu", precision="fp32").replace(
        **{**demo_settings(), "steps": STEPS, "cutn": 8, "seeds": 2, "seed": 3})


@pytest.fixture(scope="module")
def plain(base, session):
    return api.generate(base, session=session).images


def with_term(base, session, *losses, **settings):
    return api.generate(base.replace(losses=losses, **settings), session=session).images


def test_symmetry_makes_every_seed_more_symmetric(base, session, plain):
    images = with_term(base, session, "symmetry:20")
    assert (asymmetry(images) < 0.6 * asymmetry(plain)).all(), (asymmetry(images), asymmetry(plain))
    upright = with_term(base, session, "symmetry:20", symmetry_axis="top-bottom")
    flipped = (upright - upright.flip(-2)).abs().mean(dim=(1, 2, 3))
    assert (flipped < 0.6 * (plain - plain.flip(-2)).abs().mean(dim=(1, 2, 3))).all()


def test_smoothness_lowers_total_variation(base, session, plain):
    images = with_term(base, session, "smoothness:5")
    assert (total_variation(images) < 0.8 * total_variation(plain)).all()


def test_palette_moves_pixels_toward_the_palette(base, session, plain):
    colours = torch.tensor(parse_palette(PALETTE))
    images = with_term(base, session, "palette:20", palette=PALETTE)
    assert (palette_distance(images, colours) < 0.6 * palette_distance(plain, colours)).all()


def test_edge_paints_the_border(base, session, plain):
    blue = parse_colour("#0040ff")
    images = with_term(base, session, "edge:20", edge_colour="#0040ff", edge_width=6)
    assert (border_distance(images, blue, 6) < 0.6 * border_distance(plain, blue, 6)).all()


def test_saturation_follows_the_sign_of_its_weight(base, session, plain):
    more, less = with_term(base, session, "saturation:5"), with_term(base, session, "saturation:-5")
    assert (chroma(more) > chroma(plain)).all() and (chroma(less) < chroma(plain)).all()


def test_the_latent_pull_keeps_the_picture_nearer_its_start(base, session, plain):
    run = api.build_run(base, session=session)
    with torch.no_grad():
        start = run.generator.output(run.latent)
    pulled = with_term(base, session, "mse-latent:0:50, 40:50")
    moved = lambda images: (images - start).pow(2).mean(dim=(1, 2, 3))  # noqa: E731
    assert (moved(pulled) < moved(plain)).all()


def test_a_term_weight_can_be_keyframed(base, session):
    seen = []
    api.generate(base.replace(steps=4, seeds=1, losses=("smoothness:0:2, 2:0",)),
                 lambda step: seen.append(sorted(step.terms)), session=session)
    assert seen[0] == ["prior", "prompt", "smoothness"] and seen[-1] == ["prior", "prompt"]
