import math

import pytest
import torch
from hypothesis import given, strategies as st

from clipguide.errors import UserError
from clipguide.losses.prompt import spherical_distance_loss
from clipguide.prompts import Prompt, format_prompts, parse_prompts


def test_parse_weights_and_stops():
    assert parse_prompts("a sunset") == [Prompt("a sunset")]
    assert parse_prompts("a sunset:2 | clouds:-0.5:0.1") == [Prompt("a sunset", 2.0), Prompt("clouds", -0.5, 0.1)]
    assert parse_prompts("  | a | ") == [Prompt("a")]


def test_colons_inside_text_are_kept():
    assert parse_prompts("a sign saying: hello") == [Prompt("a sign saying: hello")]
    assert parse_prompts("time 12:30") == [Prompt("time 12", 30.0)]  # documented: a trailing :number is a weight
    assert parse_prompts("ratio 16:9 poster:0.5") == [Prompt("ratio 16:9 poster", 0.5)]


@pytest.mark.parametrize("bad", ["a cat:0.5x", ":2", "a:1:2:3x"])
def test_malformed_weights_are_one_line_errors(bad):
    with pytest.raises(UserError) as e:
        parse_prompts(bad)
    assert "\n" not in str(e.value)


@given(st.text(max_size=80))
def test_random_text_parses_or_fails_cleanly(text):
    try:
        prompts = parse_prompts(text)
    except UserError as e:
        assert "\n" not in str(e)
        return
    for p in prompts:
        assert p.text and p.text == p.text.strip()
        assert math.isfinite(p.weight)


@given(st.lists(st.tuples(st.text(alphabet="abc xyz,.", min_size=1, max_size=12).filter(lambda t: t.strip()),
                          st.floats(-5, 5, allow_nan=False).map(lambda w: round(w, 3)).filter(lambda w: w != 0)),
                min_size=1, max_size=4))
def test_format_parse_round_trip(items):
    prompts = [Prompt(t.strip(), w) for t, w in items]
    assert parse_prompts(format_prompts(prompts)) == prompts


def test_spherical_loss_matches_formula_and_signs():
    torch.manual_seed(0)
    a = torch.nn.functional.normalize(torch.randn(2, 3, 8), dim=-1)
    t = torch.nn.functional.normalize(torch.randn(2, 8), dim=-1)
    w = torch.tensor([1.0, -0.5])
    loss = spherical_distance_loss(a, t, w, torch.full((2,), -math.inf))
    expected = torch.zeros(2)
    for b in range(2):
        for j in range(2):
            d = 2 * torch.arcsin((a[b] - t[j]).norm(dim=-1) / 2) ** 2
            expected[b] += w[j].abs() * (torch.sign(w[j]) * d).mean()
    assert torch.allclose(loss, expected, atol=1e-6)


def test_stop_cuts_gradient_below_threshold():
    a = torch.nn.functional.normalize(torch.randn(1, 4, 8), dim=-1).requires_grad_()
    t = torch.nn.functional.normalize(torch.randn(1, 8), dim=-1)
    spherical_distance_loss(a, t, torch.ones(1), torch.tensor([10.0])).sum().backward()
    assert torch.all(a.grad == 0)
