"""Attention laid out head-major, so the key's transpose folds into its matmul (ONNX Runtime).

The network as written projects qkv to [b, n, 3*heads, hd], transposes to [b, 3*heads, n, hd],
splits, and multiplies q by k transposed. ONNX Runtime's optimiser pushes the first transpose
through the split and merges it with the key's into one perm [0, 2, 3, 1]: a copy whose inner
loop is n long (16 in config B's first block), 0.29 ms per block against 0.05 for the others
(XS B). A single GEMM followed by any transpose gets merged the same way, so here q,
k and v each have one [dim, hd] matrix per head: a broadcast matmul gives [heads, b*n, hd] with
no transpose, and the key's last-two-axes transpose becomes FusedMatMul's transB. The 1/sqrt(hd)
scale is folded into the query weights; k's and v's biases need no Add (qkv_parts).

Taken by the ONNX target only where a block attends over at most SHORT_SEQUENCE patches (every
block of config B, the last of A): there the merged key transpose is the slow short-inner-loop
copy, while over long sequences the per-head matmuls (narrow, hd columns) run slower than the
one wide qkv Gemm they replace. Measured in docs/benchmark-results.md. int8-weights exports
skip it (OnnxTarget.rewrites_skipped_for): quantize_dynamic quantises 2-D weights only.
"""

from __future__ import annotations

import torch
from torch import nn

from mvit.models.mobilevit_block import Attention
from mvit.models.probe import inputs_of

from .qkv_parts import qkv_parts
from .registry import RewriteContext, Rewritten, register_rewrite
from .swap import swap_modules

# Head-major only for attention over at most this many patches (ONNX Runtime, 100-pair `ab`
# each, first version with one qkv matmul and bias adds: config B, whose every block attends over
# 16 patches, ran at 0.979 (XS) / 0.995 (S) with it; config A, whose first blocks attend over 256
# and 64, at 0.992 / 1.011).
SHORT_SEQUENCE = 16


class HeadMajorAttention(nn.Module):
    def __init__(self, attention: Attention) -> None:
        super().__init__()
        h, hd = attention.num_heads, attention.head_dim
        self.num_heads, self.head_dim = h, hd
        dim = h * hd
        parts = qkv_parts(attention)
        # One [dim, hd] matrix per head: x @ it gives that head's rows, already head-major.
        for name, w in (("q_weight", parts.q_weight), ("k_weight", parts.k_weight), ("v_weight", parts.v_weight)):
            self.register_buffer(name, w.reshape(h, hd, dim).transpose(1, 2).contiguous())
        self.register_buffer("q_bias", parts.q_bias.reshape(h, 1, hd))
        # k and v need no bias Add (qkv_parts): ONNX Runtime's MatMul has no bias, and the Adds on
        # [heads, n, hd] cost S B 0.2 ms (`mvit-bench profile`).
        self.proj = parts.proj

    q_weight: torch.Tensor
    k_weight: torch.Tensor
    v_weight: torch.Tensor
    q_bias: torch.Tensor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        h, hd = self.num_heads, self.head_dim
        # [b*n, c] @ [heads, c, hd] gives [heads, b*n, hd]: head-major with no transpose. (The
        # broadcast [b, 1, n, c] @ [heads, c, hd] needs no reshapes but ran 1.07x slower in ORT.)
        # Three matmuls rather than one and a split: the split's copies cost more than two more nodes.
        tokens = x.reshape(b * n, c)
        q = (torch.matmul(tokens, self.q_weight) + self.q_bias).reshape(h, b, n, hd)
        k = torch.matmul(tokens, self.k_weight).reshape(h, b, n, hd)
        v = torch.matmul(tokens, self.v_weight).reshape(h, b, n, hd)
        attn = torch.matmul(q, k.transpose(-2, -1)).softmax(dim=-1)
        out = torch.matmul(attn, v)  # [h, b, n, hd]
        return self.proj(out.permute(1, 2, 0, 3).reshape(b, n, c))


def rewrite_attention_layout(net: nn.Module, image_size: int, max_tokens: int | None = SHORT_SEQUENCE) -> list[str]:
    """Swap the MobileViT v1 attentions of `net` (a copy the caller owns) that attend over at most
    `max_tokens` patches at `image_size` (None: all of them); returns their names."""
    lengths = {attention: shape[1] for attention, shape in inputs_of(net, Attention, image_size)}
    return swap_modules(net, Attention, HeadMajorAttention, where=lambda m: max_tokens is None or lengths.get(m, max_tokens + 1) <= max_tokens)


@register_rewrite("attention_layout", order=40, applies_to=frozenset({"onnx"}), bakes_size=True)
def attention_layout_rewrite(net: nn.Module, context: RewriteContext) -> Rewritten:
    attentions = rewrite_attention_layout(net, context.image_size, SHORT_SEQUENCE)
    report = {"attentions": attentions, "layout": "head-major, key transpose in the matmul", "where": f"attention over at most {SHORT_SEQUENCE} patches"}
    return Rewritten(net, report, changed=True) if attentions else Rewritten(net)
