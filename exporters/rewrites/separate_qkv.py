"""q, k and v as three fully connected layers, the key's made already transposed (LiteRT).

The network as written has one qkv FULLY_CONNECTED whose output the converter transposes
head-major and cuts with three SLICEs (copies), and in XS and S scales q with a MUL. Here each of q, k and v
is its own FULLY_CONNECTED (the scale folded into q's weights, k's and v's biases moved out:
qkv_parts), reshaped to [b, n, heads, hd] and transposed once: q and v to [b, heads, n, hd], k
straight to [b, heads, hd, n], which is the scores' right operand as BATCH_MATMUL wants it. Per
layer that is 3 SLICEs (and the MUL) fewer for 1 TRANSPOSE more.

Measured (LiteRT, 2 threads, 100-pair `ab` against the export without it; docs/benchmarks.md):
XS A 0.988 / 0.989, S A 0.996 / 0.996, S B 0.991 / 0.991. Transposing k to [b, heads, n, hd] and
leaving its last-two-axes transpose to the matmul ran 1.018x that for S B; q, k and v as 3-D
[b*heads, ...] tensors (18 RESHAPEs fewer) 1.002 / 0.997 (XS A / S B): XNNPACK's reshapes are free.
ONNX takes attention_layout where it pays and the network's own attention elsewhere.
"""

from __future__ import annotations

import torch
from torch import nn

from mvit.models.mobilevit_block import Attention

from .qkv_parts import qkv_parts
from .registry import RewriteContext, Rewritten, register_rewrite
from .swap import swap_modules


def _linear(weight: torch.Tensor, bias: torch.Tensor | None) -> nn.Linear:
    # Built on the meta device so that no initial weights are drawn from the global random stream.
    linear = nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None, device="meta")
    linear.weight = nn.Parameter(weight)
    if bias is not None:
        linear.bias = nn.Parameter(bias)
    return linear


class SeparateQkvAttention(nn.Module):
    def __init__(self, attention: Attention) -> None:
        super().__init__()
        self.num_heads, self.head_dim = attention.num_heads, attention.head_dim
        parts = qkv_parts(attention)
        self.q = _linear(parts.q_weight, parts.q_bias)
        self.k = _linear(parts.k_weight, None)
        self.v = _linear(parts.v_weight, None)
        self.proj = parts.proj

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        h, hd = self.num_heads, self.head_dim
        q = self.q(x).reshape(b, n, h, hd).transpose(1, 2)
        k_transposed = self.k(x).reshape(b, n, h, hd).permute(0, 2, 3, 1)  # [b, h, hd, n]
        v = self.v(x).reshape(b, n, h, hd).transpose(1, 2)
        attn = torch.matmul(q, k_transposed).softmax(dim=-1)
        return self.proj(torch.matmul(attn, v).transpose(1, 2).reshape(b, n, c))


def rewrite_separate_qkv(net: nn.Module) -> list[str]:
    """Swap every MobileViT v1 attention of `net` (a copy the caller owns) still as written (those
    attention_layout took are left); returns their names."""
    return swap_modules(net, Attention, SeparateQkvAttention)


# After attention_layout: takes the attentions it left.
@register_rewrite("separate_qkv", order=50, applies_to=frozenset({"tflite"}))
def separate_qkv_rewrite(net: nn.Module, context: RewriteContext) -> Rewritten:
    attentions = rewrite_separate_qkv(net)
    report = {"attentions": attentions, "layout": "q, k and v as three linear layers, k made transposed"}
    return Rewritten(net, report, changed=True) if attentions else Rewritten(net)
