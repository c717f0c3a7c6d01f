"""A captioning model as the describer: BLIP through Hugging Face ``transformers`` (not a
dependency of clipguide: ``pip install transformers`` where you want it).

``--describer blip`` loads ``Salesforce/blip-image-captioning-base`` (or ``--describer-model ID``,
any BLIP captioning checkpoint or a local folder of one) and captions greedily, so the same image
always gets the same caption. Offline (``--offline``), only files already in the Hugging Face
cache are used.
"""

from __future__ import annotations

import torch

from ..errors import UserError
from .describe import DescriberContext, clean_caption

DEFAULT_BLIP = "Salesforce/blip-image-captioning-base"
MAX_NEW_TOKENS = 30


class BlipCaptioner:
    def __init__(self, processor, model, name: str, device: torch.device) -> None:
        self.processor = processor
        self.model = model
        self.device = device
        self.about = f"the captioning model {name} (transformers, greedy)"

    @torch.inference_mode()
    def describe(self, images: torch.Tensor) -> list[str]:
        from ..output import to_pil

        inputs = self.processor(images=to_pil(images), return_tensors="pt").to(self.device)
        tokens = self.model.generate(**inputs, max_new_tokens=MAX_NEW_TOKENS, do_sample=False, num_beams=1)
        return [clean_caption(text) for text in self.processor.batch_decode(tokens, skip_special_tokens=True)]


def build_blip(context: DescriberContext) -> BlipCaptioner:
    """The ``blip`` describer; a one-line UserError when transformers or the model is missing."""
    name = context.telephone.describer_model or DEFAULT_BLIP
    try:
        from transformers import BlipForConditionalGeneration, BlipProcessor
    except ImportError:
        raise UserError("describer 'blip' cannot be loaded: it needs the transformers package "
                        "(pip install transformers), or choose --describer clip") from None
    offline = bool(getattr(context.session, "offline", False))
    device = context.session.device
    try:
        processor = BlipProcessor.from_pretrained(name, local_files_only=offline)
        model = BlipForConditionalGeneration.from_pretrained(name, local_files_only=offline).to(device).eval()
    except (OSError, ValueError) as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise UserError(f"describer 'blip' cannot load the model {name!r}: {first}") from None
    return BlipCaptioner(processor, model, name, device)


__all__ = ["BlipCaptioner", "build_blip", "DEFAULT_BLIP"]
