"""Style presets: the shipped files, lookup, user folders, and how a style changes settings."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings as hsettings, strategies as st

from clipguide import presets
from clipguide.errors import UserError
from clipguide.presets import Style, apply_style, get_style, list_styles, load_style
from clipguide.prompts import parse_prompts
from clipguide.settings import Settings

REQUIRED = ["none", "baroque", "cyberpunk", "unreal engine", "synthwave", "steampunk", "dark fantasy", "mystical",
            "vaporwave", "ukiyo-e", "psychedelic", "watercolour", "oil painting", "pencil sketch", "pixel art",
            "art nouveau", "impressionism", "low poly", "ghibli anime", "film noir", "trending on artstation"]


@pytest.fixture(autouse=True)
def _no_user_presets(monkeypatch):
    monkeypatch.delenv(presets.ENV_VAR, raising=False)


def write(folder: Path, filename: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / filename
    path.write_text(text, encoding="utf-8")
    return path


# --------------------------------------------------------------------------- shipped presets
def test_every_shipped_preset_loads_and_is_described():
    files = sorted(presets.builtin_dir().glob("*.toml"))
    assert len(files) >= 21
    for path in files:
        style = load_style(path)
        assert style.source == path
        assert style.description, f"{path.name} needs a description"
        assert style.name == "none" or style.kind == "models" or style.suffix.startswith(", "), path.name


def test_demo_is_a_models_preset_not_a_style():
    assert "demo" not in list_styles()
    demo = presets.demo_settings()
    assert demo["generator"] == "demo" and demo["clip"] == ("demo",) and demo["size"] == (64, 64)
    assert set(demo) <= set(Settings().__dataclass_fields__)


def test_a_style_suffix_goes_into_every_part_of_a_story():
    styled = apply_style(Settings(prompt="0:a castle ^ 100:a forest:2 | fog:-1", style="baroque"))
    parts = styled.prompt.split(" ^ ")
    assert parts[0].startswith("0:a castle,") and parts[1].startswith("100:a forest,")
    assert parts[1].endswith(":2 | fog:-1")  # weights kept, the negative part left alone


def test_required_styles_exist():
    styles = list_styles()
    assert len(styles) >= 21
    for name in REQUIRED:
        assert presets.normalize_name(name) in styles, name
    assert styles["none"].suffix == ""
    assert styles["unreal engine"].suffix == ", unreal engine"
    assert styles["trending on artstation"].suffix == ", trending on artstation"


def test_lookup_is_loose_about_case_and_separators():
    assert get_style("Unreal_Engine").name == "unreal engine"
    assert get_style("unreal-engine").name == "unreal engine"
    assert get_style("  UKIYO E ").name == "ukiyo-e"


def test_unknown_style_lists_close_matches():
    with pytest.raises(UserError, match=r"unknown style 'barouqe'.*'baroque'"):
        get_style("barouqe")


# --------------------------------------------------------------------------- apply_style
def test_suffix_goes_on_positive_prompts_only_and_keeps_weights():
    out = apply_style(Settings(prompt="a:2 | b:-1", style="baroque"))
    parsed = parse_prompts(out.prompt)
    assert [(p.text, p.weight) for p in parsed] == [("a, baroque painting", 2.0), ("b", -1.0)]


def test_styles_apply_in_order_and_keep_stops():
    out = apply_style(Settings(prompt="a sunset:1.5:0.2", style="baroque, unreal engine"))
    (p,) = parse_prompts(out.prompt)
    assert p.text == "a sunset, baroque painting, unreal engine"
    assert (p.weight, p.stop) == (1.5, 0.2)
    assert out.style == "baroque, unreal engine"


def test_none_and_empty_change_nothing():
    s = Settings(prompt="a:2.0 | b:-1", style="none")
    assert apply_style(s) is s
    assert apply_style(s.replace(style="")) == s.replace(style="")


def test_apply_twice_is_the_same_as_once():
    once = apply_style(Settings(prompt="a cat", style="film noir", negative="blurry"))
    assert apply_style(once) == once
    assert once.negative == "blurry | colour | colorful"


def test_overrides_apply_but_explicit_fields_win():
    s = Settings(prompt="a castle", style="pixel art", cut_pow=1.3)
    assert apply_style(s).cut_pow == 0.7
    assert apply_style(s, explicit=frozenset({"cut_pow"})).cut_pow == 1.3


# --------------------------------------------------------------------------- user folders
def test_user_folder_from_env_overrides_builtin(tmp_path, monkeypatch):
    write(tmp_path / "mine", "b.toml", 'name = "Baroque"\nsuffix = ", by caravaggio"\n')
    monkeypatch.setenv(presets.ENV_VAR, str(tmp_path / "mine"))
    assert get_style("baroque").suffix == ", by caravaggio"
    assert apply_style(Settings(prompt="x", style="baroque")).prompt == "x, by caravaggio"


def test_extra_dirs_override_env_and_builtin(tmp_path, monkeypatch):
    write(tmp_path / "env", "b.toml", 'name = "baroque"\nsuffix = ", from env"\n')
    write(tmp_path / "cli", "b.toml", 'name = "baroque"\nsuffix = ", from cli"\n')
    write(tmp_path / "cli", "new.toml", 'name = "my style"\nsuffix = ", mine"\n')
    monkeypatch.setenv(presets.ENV_VAR, str(tmp_path / "env"))
    styles = list_styles([tmp_path / "cli"])
    assert styles["baroque"].suffix == ", from cli"
    assert styles["my style"].suffix == ", mine"
    out = apply_style(Settings(prompt="x", style="my_style"), extra_dirs=[tmp_path / "cli"])
    assert out.prompt == "x, mine"


def test_missing_user_folder_is_a_user_error(tmp_path, monkeypatch):
    with pytest.raises(UserError, match="does not exist"):
        list_styles([tmp_path / "nope"])
    monkeypatch.setenv(presets.ENV_VAR, str(tmp_path / "gone"))
    with pytest.raises(UserError, match=presets.ENV_VAR):
        list_styles()


def test_name_defaults_to_the_file_stem(tmp_path):
    path = write(tmp_path, "glitch-art.toml", 'suffix = ", glitch art"\n')
    assert load_style(path).name == "glitch-art"


# --------------------------------------------------------------------------- bad files
def test_unknown_override_names_key_file_and_choice(tmp_path):
    path = write(tmp_path, "x.toml", 'name = "x"\nsuffix = ", x"\n[settings]\ncutpow = 0.5\n')
    with pytest.raises(UserError) as err:
        load_style(path)
    msg = str(err.value)
    assert "'cutpow'" in msg and str(path) in msg and "cut_pow" in msg


def test_bad_override_value_names_the_file(tmp_path):
    path = write(tmp_path, "x.toml", 'suffix = ", x"\n[settings]\ncutn = "many"\n')
    with pytest.raises(UserError, match=rf"{path.name}.*cutn must be an integer"):
        load_style(path)


@pytest.mark.parametrize("key", ["prompt", "seed", "style"])
def test_styles_cannot_set_what_to_make(tmp_path, key):
    path = write(tmp_path, "x.toml", f'suffix = ", x"\n[settings]\n{key} = "1"\n')
    with pytest.raises(UserError, match=f"cannot set '{key}'"):
        load_style(path)


def test_malformed_toml_names_file_and_line(tmp_path):
    path = write(tmp_path, "bad.toml", 'name = "bad"\nsuffix = ", bad\n')
    with pytest.raises(UserError, match=r"bad\.toml.*line 2"):
        load_style(path)


def test_unknown_top_level_key_is_an_error(tmp_path):
    path = write(tmp_path, "x.toml", 'name = "x"\nsufix = ", x"\n')
    with pytest.raises(UserError, match=r"'sufix'.*'suffix'"):
        load_style(path)


def test_suffix_that_reads_as_a_weight_is_rejected(tmp_path):
    path = write(tmp_path, "x.toml", 'suffix = ", x:2"\n')
    with pytest.raises(UserError, match="weight"):
        load_style(path)


def test_two_files_with_one_name_in_a_folder(tmp_path):
    write(tmp_path, "a.toml", 'name = "same"\n')
    write(tmp_path, "b.toml", 'name = "Same"\n')
    with pytest.raises(UserError, match="both define"):
        list_styles([tmp_path])


_top_keys = st.sampled_from(["name", "suffix", "description", "negative", "bogus"])
_setting_keys = st.sampled_from(["cut_pow", "cutn", "steps", "size", "lr", "clip", "augments", "seed", "bogus",
                                 "ema_decay", "max_classes", "optimizer", "noise_fac"])
_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)
_values = st.one_of(
    st.integers(-5, 10**6).map(str), st.floats(allow_nan=False).map(repr), st.sampled_from(["inf", "nan", "-inf"]),
    _text.map(lambda t: '"' + t + '"'), _text.map(lambda t: "'" + t + "'"),
    st.sampled_from(["true", "[]", "[1, 2]", '["a", "b"]', "{}", "[[1]]", '"1e400"', '"nan"', "1979-05-27",
                     '", oil painting"', '"adam"', '["affine"]']),
    st.text(max_size=8))
_junk = st.sampled_from(["[other]", "[[settings]]", "", "# comment", "=", "[", 'name = "x"'])


def _assign(keys):
    return st.tuples(keys, _values).map(lambda kv: f"{kv[0]} = {kv[1]}")


# Mostly well-formed preset files (top-level keys, then a [settings] table) with some junk lines
# mixed in, so that both the "loads" and the "UserError" outcomes are exercised.
_preset_text = st.tuples(
    st.lists(st.one_of(_assign(_top_keys), _junk), max_size=4),
    st.booleans(),
    st.lists(st.one_of(_assign(_setting_keys), _junk), max_size=3),
).map(lambda t: "\n".join(t[0] + (["[settings]"] if t[1] else []) + t[2]))


@hsettings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(_preset_text)
def test_any_file_loads_or_raises_user_error(tmp_path, text):
    path = tmp_path / "random.toml"
    path.write_text(text, encoding="utf-8")
    try:
        style = load_style(path)
    except UserError:
        return
    assert isinstance(style, Style)
    # A style that loads can always be applied, and never breaks the prompt syntax.
    out = apply_style(Settings(prompt="a:2 | b:-1", style=style.name), extra_dirs=[tmp_path])
    assert [p.weight for p in parse_prompts(out.prompt)] == [2.0, -1.0]
