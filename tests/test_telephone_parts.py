"""The telephone's parts without a loop: vocabularies, captions, the CLIP ranker, the analysis, the
Vendi score against its authors' package, and batches whose images follow their own prompts."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from clipguide import api
from clipguide.build import build_batch_run
from clipguide.errors import UserError
from clipguide.metrics import vendi_score
from clipguide.settings import Settings
from clipguide.telephone import analysis, vocabulary
from clipguide.telephone.clip_describer import ClipRanker
from clipguide.telephone.describe import clean_caption
from clipguide.telephone.settings import TelephoneSettings, from_dict

SHAPES = vocabulary.BUILTIN / "shapes"


# ----------------------------------------------------------------------------- vocabularies
def test_builtin_vocabularies_load_and_the_demo_clips_get_the_shapes_world():
    general = vocabulary.load(vocabulary.resolve("general", ("ViT-B-32/openai",)))
    assert 2000 <= general.size <= 5000  # a few thousand phrases
    assert "a lighthouse" in general.slots["subject"] and "a tench" in general.slots["subject"]  # ImageNet too
    assert vocabulary.resolve(None, ("demo",)) == SHAPES
    assert vocabulary.resolve(None, ("demo-wide", "demo")) == SHAPES
    assert vocabulary.resolve(None, ("ViT-B-32/openai",)).name == "general"


def test_the_template_puts_back_every_caption_the_shapes_world_writes():
    from clipguide.demo import shapes

    vocab = vocabulary.load(SHAPES)
    scene = shapes.Scene("star", "yellow", "large", "top left", "sunset sky")
    full = vocab.render({"object": "a large yellow star", "position": "in the top left",
                         "background": "a sunset sky background"})
    assert full == shapes.caption(scene, "full")
    assert vocab.render({"object": "a yellow star", "background": "a sunset sky background"}) == \
        shapes.caption(scene, "short")
    assert vocab.render({"object": "a yellow star"}) == shapes.caption(scene, "shape")
    general = vocabulary.load(vocabulary.BUILTIN / "general")
    assert general.render({"subject": "a lighthouse", "medium": "oil painting"}) == "a lighthouse, oil painting"


def test_a_folder_of_plain_phrase_files_is_a_vocabulary(tmp_path):
    (tmp_path / "subject.txt").write_text("# things\na cat\n\na dog\na cat\n")
    (tmp_path / "style.more.txt").write_text("baroque\n")
    vocab = vocabulary.load(tmp_path)
    assert vocab.slots == {"subject": ("a cat", "a dog"), "style": ("baroque",)}
    assert vocab.order == ("subject", "style") and vocab.optional == {"style"}
    assert vocab.render({"subject": "a dog", "style": "baroque"}) == "a dog, baroque"
    assert vocab.render({"subject": "a dog"}) == "a dog"


@pytest.mark.parametrize("files, fragment", [
    ({}, "holds no phrases"),
    ({"subject.txt": "# only a comment\n\n"}, "holds no phrases"),
    ({"subject.txt": "a cat | a dog\n"}, "subject.txt:1"),
    ({"subject.txt": "a cat\n", "vocabulary.toml": 'template = "{subject} {medium}"\n'}, "'medium' has no phrases"),
    ({"subject.txt": "a cat\n", "vocabulary.toml": 'colour = "red"\n'}, "unknown key"),
])
def test_vocabulary_mistakes_are_one_line_errors_naming_the_file(tmp_path, files, fragment):
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    with pytest.raises(UserError, match=fragment) as info:
        vocabulary.load(tmp_path)
    assert "\n" not in str(info.value)


def test_an_unknown_vocabulary_name_lists_the_built_in_ones():
    with pytest.raises(UserError, match="general"):
        vocabulary.resolve("genral", ("demo",))


def test_captions_are_read_as_one_plain_prompt():
    from clipguide.prompts import parse_prompts

    for raw in ("a cat | a dog", "a castle ^ a forest", "a lighthouse:2", "  ,a  fox\n in snow. ", ""):
        text = clean_caption(raw)
        prompts = parse_prompts(text)
        assert len(prompts) == 1 and prompts[0].weight == 1.0 and prompts[0].text == text, (raw, text)
    assert clean_caption("  ,a  fox\n in snow. ") == "a fox in snow"


def test_telephone_settings_check_rounds_and_describer():
    with pytest.raises(UserError, match="rounds must be at least 1"):
        from_dict({"rounds": 0})
    with pytest.raises(UserError, match="did you mean"):
        from_dict({"describer": "clp"})
    assert from_dict({"describer": "mypackage.captions:build"}).describer == "mypackage.captions:build"
    assert TelephoneSettings().replace(rounds=3).rounds == 3


# ----------------------------------------------------------------------------- the ranker
class KeywordClip:
    """A stand-in CLIP whose embedding dimensions are keywords: an image "contains" the keywords
    its pixel channels encode, a text the keywords it mentions."""

    spec = "keywords"
    WORDS = ("red", "green", "blue", "circle", "square", "background", "left", "large")
    mean = torch.zeros(1, 3, 1, 1)
    input_size = 4

    def embed_texts(self, texts):
        rows = [[float(w in t.split()) for w in self.WORDS] + [0.1] for t in texts]
        return F.normalize(torch.tensor(rows), dim=-1)

    def embed_images(self, images):
        red, green = images[:, 0].mean(dim=(1, 2)), images[:, 1].mean(dim=(1, 2))
        rows = torch.stack([red, green, torch.zeros_like(red), red, green, torch.ones_like(red) * 0.5,
                            torch.zeros_like(red), torch.zeros_like(red), torch.full_like(red, 0.1)], dim=1)
        return F.normalize(rows, dim=-1)


def test_the_ranker_picks_phrases_slot_by_slot_and_leaves_optional_slots_empty():
    vocab = vocabulary.load(SHAPES)
    ranker = ClipRanker(vocab, [KeywordClip()])
    images = torch.zeros(2, 3, 4, 4)
    images[0, 0] = 1.0  # "red … circle"
    images[1, 1] = 1.0  # "green … square"
    captions = ranker.describe(images)
    assert captions[0].startswith("a red circle on a ") and captions[1].startswith("a green square on a ")
    assert "left" not in captions[0]  # the optional position stays empty when no phrase helps
    assert ranker.describe(images) == captions  # cached embeddings give the same answer
    assert "shapes" in ranker.about and "keywords" in ranker.about


# ----------------------------------------------------------------------------- analysis
def test_silhouette_matches_a_hand_computation():
    dist = np.array([[0, 1, 4, 5], [1, 0, 4, 4], [4, 4, 0, 2], [5, 4, 2, 0]], dtype=float)
    # a(0)=1, b(0)=4.5 → 0.777…; a(1)=1, b(1)=4 → 0.75; a(2)=2, b(2)=4 → 0.5; a(3)=2, b(3)=4.5 → 0.555…
    expected = np.mean([1 - 1 / 4.5, 1 - 1 / 4, 1 - 2 / 4, 1 - 2 / 4.5])
    assert analysis.silhouette(dist, [0, 0, 1, 1]) == pytest.approx(expected)


def test_motifs_are_counted_from_clusters_of_embeddings():
    rng = np.random.default_rng(0)
    centres = np.eye(8)[:3] * 10
    points = np.concatenate([c + rng.normal(scale=0.5, size=(6, 8)) for c in centres])
    found = analysis.find_motifs(points, same=0.01)
    assert found.count == 3 and found.silhouette > 0.5
    assert sorted(np.bincount(found.labels)) == [6, 6, 6]
    same = np.ones((5, 8)) + rng.normal(scale=1e-4, size=(5, 8))
    assert analysis.find_motifs(same, same=0.01).count == 1  # all within the settle distance: one motif


def test_settling_of_captions_and_images():
    assert analysis.caption_settles(list("abcddd")) == (3, 1)
    assert analysis.caption_settles(list("abxyxyxy")) == (2, 2)
    assert analysis.caption_settles(list("abcdd")) == (None, None)  # two equal rounds are not enough
    assert analysis.caption_settles(list("abcdef")) == (None, None)
    emb = np.array([[1, 0], [0, 1], [0.1, 1], [0.1, 1], [0.1, 1.001]])
    assert analysis.embedding_settles(emb, same=0.01) == 1
    assert analysis.embedding_settles(emb[:3], same=0.01) is None


def test_vendi_score_agrees_with_the_authors_package():
    vendi = pytest.importorskip("vendi_score.vendi")  # the test extra: pip install vendi-score
    rng = np.random.default_rng(1)
    sets = [rng.normal(size=(10, 5)), rng.normal(size=(5, 12)), rng.normal(size=(40, 8)),
            np.repeat(rng.normal(size=(3, 6)), 4, axis=0), np.abs(rng.normal(size=(20, 20)))]
    for x in sets:
        assert vendi_score(x) == pytest.approx(vendi.score_X(x), rel=1e-9)
        assert vendi_score(torch.from_numpy(x)) == pytest.approx(vendi.score_dual(x), rel=1e-9)


# ----------------------------------------------------------------------------- per-image prompts
@pytest.fixture(scope="module")
def tiny(tmp_path_factory, tiny_clip_dir):
    from tiny_models import write_tiny_vqgan_safetensors

    vqgan = write_tiny_vqgan_safetensors(tmp_path_factory.mktemp("vq") / "tiny.safetensors")
    return Settings(prompt="a red circle", generator=str(vqgan), clip=(str(tiny_clip_dir),), size=(32, 32),
                    steps=4, cutn=4, device="cpu", precision="fp32", augments=())


def test_a_batch_whose_images_follow_their_own_prompts_matches_separate_runs(tiny):
    session = api.Session("cpu")
    items = [tiny.replace(prompt="a red circle", seed=3), tiny.replace(prompt="a blue square", seed=9)]
    together = api.execute(build_batch_run(items, session=session))
    alone = [api.execute(build_batch_run([item], session=session)).images[0] for item in items]
    for k in range(2):
        assert torch.allclose(together.images[k], alone[k], atol=1e-4), k
    assert not torch.allclose(alone[0], alone[1])
    with pytest.raises(ValueError, match="may differ only"):
        build_batch_run([items[0], items[1].replace(steps=5)], session=session)


def test_scores_a_rounding_apart_are_a_tie_that_the_first_candidate_wins():
    from clipguide.telephone.clip_describer import first_best

    assert first_best(torch.tensor([0.5, 0.5 + 1e-8, 0.3])) == 0  # equal texts scored a few ulps apart
    assert first_best(torch.tensor([0.5, 0.6, 0.3])) == 1
