"""Comparison networks that are not in the model registry: CvT-13 (the paper's ViT baseline).

transformers is an optional, test-time dependency of mvit; it is imported only when CvT-13 is
asked for, and a missing install is one clear line, not a traceback.
"""

from __future__ import annotations

import torch
from torch import nn

CVT13 = "cvt_13"
CVT13_INPUT_SIZE = 224


class ComparisonModelUnavailable(Exception):
    pass


class _LogitsOnly(nn.Module):
    """transformers returns an output object; exports and benchmarks want the logits tensor."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(pixel_values=x).logits


def build_cvt13() -> nn.Module:
    """CvT-13 with random weights (seeded), eval mode, taking the normalised [1,3,224,224] tensor."""
    try:
        from transformers import CvtConfig, CvtForImageClassification
    except ImportError:
        raise ComparisonModelUnavailable("cvt_13 needs the optional package transformers (pip install 'transformers>=5,<6')") from None
    torch.manual_seed(0)
    # CvT-13 (Wu et al. 2021, Table 2): embed dims 64/192/384, depths 1/2/10, heads 1/3/6,
    # depthwise-conv + BN qkv projection; about 20 M parameters and 4.5 G MACs at 224.
    config = CvtConfig(embed_dim=[64, 192, 384], depth=[1, 2, 10], num_heads=[1, 3, 6])
    config.num_labels = 1000  # a settable property, not an __init__ keyword in transformers' typed signature
    model = CvtForImageClassification(config)
    return _LogitsOnly(model).eval()
