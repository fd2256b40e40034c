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


class HeadMajorAttention(nn.Module):
    def __init__(self, attention: Attention) -> None:
        super().__init__()
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
        h, hd = self.num_heads, self.head_dim
        qkv = (torch.matmul(x.reshape(b * n, c), self.qkv_weight) + self.qkv_bias).reshape(3 * h, b, n, hd)
        q, k, v = qkv.split(h, dim=0)
        attn = torch.matmul(q, k.transpose(-2, -1)).softmax(dim=-1)
        out = torch.matmul(attn, v)  # [h, b, n, hd]
        return self.proj(out.permute(1, 2, 0, 3).reshape(b, n, c))


def rewrite_attention_layout(net: nn.Module) -> list[str]:
    """Swap every MobileViT v1 attention of `net` (a copy the caller owns); returns their names."""
    return swap_modules(net, Attention, HeadMajorAttention)
