"""`--precision int8-weights` for Core AI: int8 weights per output channel, fp32 compute.

coreai-torch 0.4.3 compresses weights only through its private `coreai_torch._compression`: a
weight replaced by a `WeightDequantizeModule` (int8 data and a scale) traces to
`coreai::constexpr_blockwise_shift_scale`, which the converter stores as int8 and Apple's runtime
dequantises when it loads the function. The module is private and its interface may change with
any release, so it is used with the one coreai-torch version pyproject.toml pins, and any other
version is refused in one line before anything is built.

Palettes (`palette4`/`palette6`) would need mvit's own k-means for `PalettizeModule`'s look-up
tables, and `int8` (activations too) a calibration path through the runtime's child process;
neither is written (docs/exporting-coreai.md says why).
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn
from torch.nn.utils import parametrize

from ...base import ExportError

SUPPORTED_COREAI_TORCH = "0.4.3"  # the version whose private compression module this was written against
# Weights smaller than this stay fp32: biases of little layers and small depthwise kernels gain
# nothing from int8; the same threshold as coremltools' linear_quantize_weights default.
MIN_QUANTISED_VALUES = 2048
SETTINGS: dict[str, Any] = {
    "method": f"coreai_torch._compression WeightDequantizeModule (coreai-torch {SUPPORTED_COREAI_TORCH})",
    "mode": "linear_symmetric",
    "granularity": "per_channel",
    "dtype": "int8",
    "compute": "fp32",
    "min_values": MIN_QUANTISED_VALUES,
}


def check_compression_available() -> None:
    """Refuse, in one line, a coreai-torch whose private compression module was not checked here."""
    import coreai_torch

    found = getattr(coreai_torch, "__version__", "unknown")
    if found != SUPPORTED_COREAI_TORCH:
        raise ExportError(
            f"--precision int8-weights for Core AI uses coreai-torch {SUPPORTED_COREAI_TORCH}'s private compression module; "
            f"found coreai-torch {found}: install 'mvit[coreai]' (which pins it) or export fp16/fp32"
        )


def with_int8_weights(module: nn.Module) -> nn.Module:
    """A copy of `module` whose Conv/Linear weights (>= MIN_QUANTISED_VALUES values) are int8 per
    output channel, symmetric, read back through coreai-torch's dequantise op."""
    from coreai_torch._compression.custom_layers import WeightDequantizeModule
    from coreai_torch._compression.utils import wrap_for_parametrization

    check_compression_available()
    dequantise = wrap_for_parametrization(WeightDequantizeModule)
    quantised = copy.deepcopy(module)
    for layer in quantised.modules():
        if isinstance(layer, nn.Conv2d | nn.Linear) and layer.weight.numel() >= MIN_QUANTISED_VALUES:
            data, scale = symmetric_int8(layer.weight.detach())
            parametrize.register_parametrization(layer, "weight", dequantise(data, scale), unsafe=True)
    return quantised


def symmetric_int8(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(int8 values in -127..127, fp32 scale of the weight's rank, one per output channel)."""
    reduce = tuple(range(1, weight.dim()))
    scale = (weight.abs().amax(dim=reduce, keepdim=True) / 127.0).clamp(min=torch.finfo(torch.float32).tiny)
    return torch.round(weight / scale).clamp(-127, 127).to(torch.int8), scale.float()
