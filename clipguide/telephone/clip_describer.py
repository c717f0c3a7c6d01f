"""The default describer: CLIP ranking over a vocabulary, the way CLIP interrogators caption.

Slots are ranked one after another in the vocabulary's order. For each slot every phrase is put
into the template together with the phrases chosen so far, and the caption whose text embedding
is closest to the image (cosine, averaged over the run's CLIP models) wins; an optional slot may
also stay empty. So "a lighthouse" is chosen first, then "a lighthouse in a storm" against "a
lighthouse at night", and so on. Text embeddings are computed once per (slot, phrases so far)
and kept, always in the same batches, so the captions do not depend on what was cached.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import torch

from ..perceptor import ClipModel, resize_for
from .describe import DescriberContext, clean_caption
from .vocabulary import Vocabulary, load, resolve

#: Texts embedded per batch; fixed, so that an embedding never depends on its neighbours.
TEXT_BATCH = 256
#: (slot, phrases so far) entries kept: a trajectory that settles reuses its own.
CACHE_ENTRIES = 256


class ClipRanker:
    """Captions images by ranking a vocabulary's phrases, slot by slot, with CLIP models."""

    def __init__(self, vocabulary: Vocabulary, models: Sequence[ClipModel]) -> None:
        self.vocabulary = vocabulary
        self.models = list(models)
        self.about = f"CLIP ranking over {vocabulary.describe()} with {', '.join(m.spec for m in self.models)}"
        self._cache: OrderedDict[tuple, list[torch.Tensor]] = OrderedDict()

    @torch.inference_mode()
    def describe(self, images: torch.Tensor) -> list[str]:
        images = images.float()
        embeds = [m.embed_images(resize_for(m, images.to(m.mean.device))).float().cpu() for m in self.models]
        return [clean_caption(self.vocabulary.render(self.choose([e[k] for e in embeds])))
                for k in range(images.shape[0])]

    def choose(self, image: list[torch.Tensor]) -> dict[str, str]:
        """The phrase of every slot for one image (its unit embedding per model)."""
        vocab = self.vocabulary
        chosen: dict[str, str] = {}
        for slot in vocab.order:
            # the empty choice first: on a tie the first wins, so an optional slot stays empty
            candidates = ([""] if slot in vocab.optional else []) + list(vocab.slots[slot])
            texts = self._texts(slot, chosen, candidates)
            score = sum(t @ e for t, e in zip(texts, image)) / len(self.models)
            chosen[slot] = candidates[first_best(score)]
        return chosen

    def _texts(self, slot: str, chosen: dict[str, str], candidates: list[str]) -> list[torch.Tensor]:
        key = (slot, tuple(sorted(chosen.items())))
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        texts = [self.vocabulary.render({**chosen, slot: phrase}) for phrase in candidates]
        embeds = [torch.cat([m.embed_texts(texts[i:i + TEXT_BATCH]).float().cpu()
                             for i in range(0, len(texts), TEXT_BATCH)]) for m in self.models]
        self._cache[key] = embeds
        if len(self._cache) > CACHE_ENTRIES:
            self._cache.popitem(last=False)
        return embeds


def build(context: DescriberContext) -> ClipRanker:
    """The ``clip`` describer: the run's CLIP models over the vocabulary the settings name."""
    settings = context.settings
    vocabulary = load(resolve(context.telephone.vocabulary, settings.clip))
    return ClipRanker(vocabulary, context.session.perceptor(settings.clip).models)




#: Scores closer than this are a tie: equal texts can score a few ulps apart, as a matrix-vector
#: product rounds rows differently by where they fall in the CPU's vector blocks.
TIE = 1e-6


def first_best(score: torch.Tensor) -> int:
    """The first index whose score is within :data:`TIE` of the best (argmax with ties to the first)."""
    return int(torch.nonzero(score >= score.max() - TIE)[0])


__all__ = ["ClipRanker", "build", "first_best", "TEXT_BATCH"]
