"""One attention's fused qkv projection as separate q, k and v weights, for the rewrites that lay
attention out differently (attention_layout, separate_qkv).

Exact rearrangements of the same arithmetic (within fp32 rounding):
- the 1/sqrt(hd) scale multiplies q in the network as written; folded into q's rows it is one
  rounding per weight instead of one per activation, and no multiply in the graph;
- k's bias adds q_i . b_k to every score of row i: softmax ignores a constant per row, so it is
  dropped;
- v's bias comes out of the attention unchanged (each row of probabilities sums to 1), so it
  moves through the output projection into that projection's bias.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import nn

from mvit.models.mobilevit_block import Attention


@dataclass(frozen=True)
class QkvParts:
    q_weight: torch.Tensor  # [dim, dim] fp32, rows (head, hd), scale folded in
    q_bias: torch.Tensor  # [dim], scale folded in
    k_weight: torch.Tensor  # [dim, dim], no bias
    v_weight: torch.Tensor  # [dim, dim], its bias moved into `proj`
    proj: nn.Linear  # a copy of the output projection with v's bias added to its own


def qkv_parts(attention: Attention) -> QkvParts:
    dim = attention.num_heads * attention.head_dim
    with torch.no_grad():
        weight = attention.qkv.weight.double()  # [3*dim, dim], rows (q|k|v, head, hd)
        bias = attention.qkv.bias.double() if attention.qkv.bias is not None else torch.zeros(3 * dim, dtype=torch.float64)
        # A copy, not a new nn.Linear: that would draw its initial weights from the global random
        # stream and forget the original's dtype.
        proj = copy.deepcopy(attention.proj)
        moved = (attention.proj.weight.double() @ bias[2 * dim :]).to(proj.weight.dtype)
        if proj.bias is None:
            proj.bias = nn.Parameter(moved)
        else:
            proj.bias.add_(moved)
        return QkvParts(
            q_weight=(weight[:dim] * attention.scale).float(),
            q_bias=(bias[:dim] * attention.scale).float(),
            k_weight=weight[dim : 2 * dim].float(),
            v_weight=weight[2 * dim :].float(),
            proj=proj,
        )
