"""Write the generated parts of the telephone describer's built-in vocabularies (run once; the
files are committed as data, so no core module needs to import the demo).

* ``clipguide/data/vocabulary/general/subject.imagenet.txt``: the 1000 ImageNet class names of
  ``clipguide/data/imagenet_classes.json`` as subject phrases ("a tench", "a lighthouse");
* ``clipguide/data/vocabulary/shapes/``: the shapes world's captions (``clipguide.demo.shapes``),
  cut into the slots the describer ranks: object ("a large red circle"), position ("in the
  centre"), background ("a sunset sky background"), with the template that puts them back
  together. Every full assembly is checked to equal ``shapes.caption`` of the same scene.

    python scripts/make_vocabularies.py
"""

from __future__ import annotations

import itertools
import json
import re
from pathlib import Path

from clipguide.demo import shapes

ROOT = Path(__file__).resolve().parents[1] / "clipguide" / "data" / "vocabulary"
#: ImageNet names that read wrong after "a"/"an" (plurals and mass nouns).
NO_ARTICLE = {"jeans", "pajamas", "sunglasses", "binoculars", "tights", "swim trunks", "hay", "wool", "corn",
              "guacamole", "consomme", "trifle", "ice cream", "mashed potatoes", "broccoli", "cauliflower",
              "carbonara", "chocolate syrup", "dough", "meatloaf", "red wine", "espresso", "eggnog", "rapeseed",
              "toilet paper", "velvet fabric", "chain mail", "hot pot", "website", "knee pad", "clogs"}
SHAPES_TEMPLATE = "{object}[ {position}][ on {background}]"


def article(word: str) -> str:
    return "an" if word[0].lower() in "aeiou" else "a"


def imagenet_subjects() -> list[str]:
    names = json.loads((ROOT.parents[0] / "imagenet_classes.json").read_text(encoding="utf-8"))["names"]
    phrases = []
    for name in names:
        name = re.sub(r"\s*\([^)]*\)", "", name).split(" / ")[0].strip()  # "kite (bird of prey)" -> "kite"
        phrase = name if name in NO_ARTICLE else f"{article(name)} {name}"
        if phrase not in phrases:
            phrases.append(phrase)
    return phrases


def render(template: str, chosen: dict[str, str]) -> str:
    """The template with the chosen phrases (the describer's rule, restated here to check the files)."""
    def group(match: re.Match) -> str:
        slot = re.search(r"\{(\w+)\}", match.group(1)).group(1)
        return match.group(1).format(**chosen) if chosen.get(slot) else ""

    return " ".join(re.sub(r"\[([^\[\]]*)\]", group, template).format(**chosen).split())


def shapes_vocabulary() -> dict[str, list[str]]:
    """object / position / background phrases, cut out of shapes.caption of every scene."""
    objects, positions, backgrounds = [], [], []
    for shape, colour, size, position, background in itertools.product(
            shapes.SHAPES, shapes.COLOURS, shapes.SIZES, shapes.POSITIONS, shapes.BACKGROUNDS):
        scene = shapes.Scene(shape, colour, size, position, background)
        plain = shapes.caption(scene, "shape")  # "a red circle"
        sized = shapes.caption(scene, "sized")  # "a large red circle on a blue background"
        ground = shapes.caption(scene, "background")  # "a blue background"
        assert sized.endswith(f" on {ground}")
        placed = shapes.caption(scene, "position")  # "a red circle in the centre"
        assert placed.startswith(plain + " ")
        for phrase, into in ((plain, objects), (sized[: -len(f" on {ground}")], objects),
                             (placed[len(plain) + 1:], positions), (ground, backgrounds)):
            if phrase not in into:
                into.append(phrase)
    vocabulary = {"object": objects, "position": positions, "background": backgrounds}
    check_shapes(vocabulary)
    return vocabulary


def check_shapes(vocabulary: dict[str, list[str]]) -> None:
    """Every caption style the world writes with these fields comes back from the template."""
    for shape, colour, size, position, background in itertools.product(
            shapes.SHAPES, shapes.COLOURS, shapes.SIZES, shapes.POSITIONS, shapes.BACKGROUNDS):
        scene = shapes.Scene(shape, colour, size, position, background)
        obj = shapes.caption(scene, "shape")
        big = shapes.caption(scene, "sized").rsplit(" on ", 1)[0]
        where = shapes.caption(scene, "position")[len(obj) + 1:]
        ground = shapes.caption(scene, "background")
        cases = {"full": {"object": big, "position": where, "background": ground},
                 "placed": {"object": obj, "position": where, "background": ground},
                 "short": {"object": obj, "position": "", "background": ground},
                 "position": {"object": obj, "position": where, "background": ""},
                 "shape": {"object": obj, "position": "", "background": ""}}
        for style, chosen in cases.items():
            assert all(not p or p in vocabulary[slot] for slot, p in chosen.items())
            assert render(SHAPES_TEMPLATE, chosen) == shapes.caption(scene, style), (style, chosen)


def write(path: Path, header: str, lines: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"# {h}\n" for h in header.splitlines()) + "".join(f"{line}\n" for line in lines),
                    encoding="utf-8")
    print(f"{path}: {len(lines)} phrases")


def main() -> None:
    write(ROOT / "general" / "subject.imagenet.txt",
          "The 1000 ImageNet class names as subjects (scripts/make_vocabularies.py; do not edit).", imagenet_subjects())
    generated = "From the shapes world's captions (clipguide.demo.shapes; scripts/make_vocabularies.py; do not edit)."
    for slot, phrases in shapes_vocabulary().items():
        write(ROOT / "shapes" / f"{slot}.txt", generated, phrases)
    (ROOT / "shapes" / "vocabulary.toml").write_text(
        "# The shapes world's captions (clipguide.demo.shapes.caption), cut into slots: every caption the\n"
        "# world writes ('a large red circle in the centre on a blue background', 'a red circle on a\n"
        "# blue background', …) is one assembly of this template (scripts/make_vocabularies.py checks it).\n"
        "# The object is ranked first, then the background, then the position (optional: the demo CLIP\n"
        "# reads positions poorly, and a caption without one is still one the world writes).\n"
        f'template = "{SHAPES_TEMPLATE}"\n'
        'order = ["object", "background", "position"]\n'
        'optional = ["position"]\n', encoding="utf-8")


if __name__ == "__main__":
    main()
