"""SSDLite's six-way concatenation of its heads, as concatenations of at most three inputs.

LiteRT's XNNPACK delegate takes a CONCATENATION of 2 to 5 inputs only; SSDLite joins its six
heads' outputs in one, which stayed on the CPU kernel and split a detector's TFLite graph into 3
XNNPACK partitions (`mvit-bench profile`, XXS 128). Concatenation only moves data, so
concatenating in groups gives the same tensor exactly.
"""

from __future__ import annotations

import torch
from torch import nn

from mvit.models.ssdlite import SSDLite

from .registry import RewriteContext, Rewritten, register_rewrite
from .swap import swap_modules

GROUP = 3


class GroupedConcatSSDLite(nn.Module):
    """An SSDLite's own modules (same names, so parameter names do not change), heads joined in groups."""

    def __init__(self, ssd: SSDLite) -> None:
        super().__init__()
        self.encoder, self.extra_layers, self.heads = ssd.encoder, ssd.extra_layers, ssd.heads
        self.feature_map_sizes = ssd.feature_map_sizes  # anchors are read from the network as written

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        stages = self.encoder.forward_stages(x)
        maps = [stages[3], stages[4]]
        for extra in self.extra_layers:
            maps.append(extra(maps[-1]))
        outs = [head(m) for head, m in zip(self.heads, maps)]
        b, width = outs[0].shape[0], outs[0].shape[-1]
        # Each group flattened before the outer join: the converter merges a concatenation of
        # concatenations back into one, but not through a reshape (free in XNNPACK).
        groups = [torch.cat(outs[i : i + GROUP], dim=1).reshape(b, -1) for i in range(0, len(outs), GROUP)]
        out = torch.cat(groups, dim=1).reshape(b, -1, width)
        return out[..., :4], out[..., 4:]


def rewrite_short_concats(net: nn.Module) -> tuple[nn.Module, bool]:
    """(`net` with its SSDLite swapped, whether it had one); `net` is a copy the caller owns."""
    if type(net) is SSDLite:
        return GroupedConcatSSDLite(net), True
    return net, bool(swap_modules(net, SSDLite, GroupedConcatSSDLite))


@register_rewrite("short_concats", order=60, applies_to=frozenset({"tflite"}))
def short_concats_rewrite(net: nn.Module, context: RewriteContext) -> Rewritten:
    net, swapped = rewrite_short_concats(net)
    return Rewritten(net, {"ssd_heads": "concatenated in groups of at most 3"}, changed=True) if swapped else Rewritten(net)
