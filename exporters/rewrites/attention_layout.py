"""Attention laid out head-major, so the key's transpose folds into its matmul.

The network as written projects qkv to [b, n, 3*heads, hd], transposes to [b, 3*heads, n, hd],
splits, and multiplies q by k transposed. ONNX Runtime's optimiser pushes the first transpose
through the split and merges it with the key's into one perm [0, 2, 3, 1]: a copy whose inner
loop is n long (16 in config B's first block), 0.29 ms per block against 0.05 for the others
(issue 14, XS B). A single GEMM followed by any transpose gets merged the same way, so here each
(q|k|v, head) has its own [dim, hd] matrix: one broadcast matmul gives [3*heads, b*n, hd] with no
transpose, and the key's last-two-axes transpose becomes FusedMatMul's transB. The 1/sqrt(hd)
scale is folded into the query weights.

Measured (issue 14, XS, ONNX Runtime and LiteRT, interleaved CPU time): exact, 42 -> 15
Transposes after ORT's optimiser, but no faster: the per-head matmuls and their bias adds cost
what the transposes did (ORT XS B 0.955x against 0.945x without it; LiteRT 1.019x). No target
takes it (`ExportTarget.export_rewrites`); it is kept, with its exactness test, for runtimes
where batched matmuls are cheap.
"""

from __future__ import annotations

import torch
from torch import nn

from mvit.models.mobilevit_block import Attention

from .swap import swap_modules

# Head-major only for attention over at most this many patches (ONNX Runtime, 100-pair `ab`
# each: config B, whose every block attends over 16 patches, ran at 0.979 (XS) / 0.995 (S) with
# it; config A, whose first blocks attend over 256 and 64, at 0.992 / 1.011): where n is short the
# merged key transpose is a short-inner-loop copy, where n is long a batched matmul per head costs more.
SHORT_SEQUENCE = 16


class HeadMajorAttention(nn.Module):
    """`max_tokens`: above it, the attention as written runs instead (decided when the graph is
    traced, where n is a constant); None: head-major always."""

    def __init__(self, attention: Attention, max_tokens: int | None = None) -> None:
        super().__init__()
        self.max_tokens = max_tokens
        self.as_written = attention if max_tokens is not None else None
        h, hd = attention.num_heads, attention.head_dim
        self.num_heads, self.head_dim = h, hd
        dim = h * hd
        with torch.no_grad():
            # The scale multiplies q in the network as written; folded into q's rows it is one
            # rounding per weight instead of one per activation (same within fp32 rounding).
            scale = torch.ones(3 * dim, 1, dtype=torch.float64)
            scale[:dim] = attention.scale
            weight = attention.qkv.weight.double() * scale  # [3*dim, dim], rows (q|k|v, head, hd)
            bias = attention.qkv.bias.double() * scale[:, 0] if attention.qkv.bias is not None else torch.zeros(3 * dim)
            # One [dim, hd] matrix per (q|k|v, head): x @ it gives that head's rows, already head-major.
            self.register_buffer("qkv_weight", weight.reshape(3 * h, hd, dim).transpose(1, 2).float().contiguous())
            self.register_buffer("qkv_bias", bias.reshape(3 * h, 1, hd).float())
        self.proj = attention.proj

    qkv_weight: torch.Tensor
    qkv_bias: torch.Tensor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        if self.as_written is not None and self.max_tokens is not None and n > self.max_tokens:
            return self.as_written(x)
        h, hd = self.num_heads, self.head_dim
        qkv = (torch.matmul(x.reshape(b * n, c), self.qkv_weight) + self.qkv_bias).reshape(3 * h, b, n, hd)
        q, k, v = qkv.split(h, dim=0)
        attn = torch.matmul(q, k.transpose(-2, -1)).softmax(dim=-1)
        out = torch.matmul(attn, v)  # [h, b, n, hd]
        return self.proj(out.permute(1, 2, 0, 3).reshape(b, n, c))


def rewrite_attention_layout(net: nn.Module, max_tokens: int | None = None) -> list[str]:
    """Swap every MobileViT v1 attention of `net` (a copy the caller owns); returns their names."""
    return swap_modules(net, Attention, lambda attention: HeadMajorAttention(attention, max_tokens))
