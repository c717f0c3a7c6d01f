"""Faster CLIP vision towers on the CPU: the same arithmetic as open_clip's, as fewer, larger matmuls.

The loop differentiates CLIP's image tower w.r.t. its input every step, which takes two paths of
stock PyTorch that are slow on CPU: the input gradient of the ViT's stride-32, kernel-32 patch
convolution (oneDNN has no fast kernel for it: ~20x the forward's time), and nn.MultiheadAttention,
which transposes batch-first input and so runs its projections as many small batched matmuls.
The classes below do the same arithmetic (same weights, same results up to float rounding) as
one matmul each. They subclass the originals and are swapped in by ``__class__``, so parameters,
state-dict names and everything else about the model stay as they were.

"""

from __future__ import annotations

import torch
import torch.nn.functional as F


class PatchEmbedConv(torch.nn.Conv2d):
    """A non-overlapping patch convolution (stride == kernel, no padding) as reshape + matmul."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        ph, pw = self.kernel_size
        n, c, h, w = x.shape
        gh, gw = h // ph, w // pw
        patches = x[:, :, :gh * ph, :gw * pw].reshape(n, c, gh, ph, gw, pw).permute(0, 2, 4, 1, 3, 5)
        out = F.linear(patches.reshape(n, gh, gw, c * ph * pw), self.weight.reshape(self.out_channels, -1), self.bias)
        return out.permute(0, 3, 1, 2)


class BatchFirstSelfAttention(torch.nn.MultiheadAttention):
    """nn.MultiheadAttention whose batch-first self-attention runs as contiguous matmuls + SDPA.

    Anything else (cross-attention, masks, attention weights asked for) goes to the stock code.
    """

    def forward(self, query, key, value, key_padding_mask=None, need_weights=True, attn_mask=None,
                average_attn_weights=True, is_causal=False):  # type: ignore[override]
        plain = (key is query and value is query and self.batch_first and query.dim() == 3
                 and key_padding_mask is None and attn_mask is None and not need_weights and not is_causal
                 and self._qkv_same_embed_dim and self.bias_k is None and self.in_proj_weight is not None
                 and (self.dropout == 0.0 or not self.training))
        if not plain:
            return super().forward(query, key, value, key_padding_mask, need_weights, attn_mask,
                                   average_attn_weights, is_causal)
        n, length, embed = query.shape
        heads = self.num_heads
        qkv = F.linear(query, self.in_proj_weight, self.in_proj_bias)
        q, k, v = qkv.view(n, length, 3, heads, embed // heads).permute(2, 0, 3, 1, 4).unbind(0)
        if query.device.type == "cpu":
            # ViT token counts are short (50 for ViT-B/32): on CPU, explicit matmuls + softmax beat
            # the fused kernel, whose bf16 backward is ~4x slower than this (measured, torch 2.14).
            weights = (q * (q.shape[-1] ** -0.5)) @ k.transpose(-2, -1)
            out = weights.softmax(-1).to(v.dtype) @ v
        else:
            out = F.scaled_dot_product_attention(q, k, v)
        out = out.transpose(1, 2).reshape(n, length, embed)
        return F.linear(out, self.out_proj.weight, self.out_proj.bias), None


def speed_up_vision_tower(model: torch.nn.Module) -> int:
    """Swap the classes above into ``model.visual`` where they apply; returns how many modules changed."""
    visual = getattr(model, "visual", None)
    if visual is None:
        return 0
    changed = 0
    for module in visual.modules():
        # only real patch embeddings: a 1x1 convolution (ResNet towers) already has a fast kernel
        if type(module) is torch.nn.Conv2d and module.stride == module.kernel_size != (1, 1) and module.groups == 1 \
                and module.padding == (0, 0) and module.dilation == (1, 1) and module.padding_mode == "zeros":
            module.__class__ = PatchEmbedConv
            changed += 1
        elif type(module) is torch.nn.MultiheadAttention:
            module.__class__ = BatchFirstSelfAttention
            changed += 1
    return changed
