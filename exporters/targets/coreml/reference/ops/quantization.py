"""Quantisation ops: activation quantize/dequantize (iOS17 quantization_ops.py) and the compressed
weight constants (iOS16 constexpr_ops.py, iOS18 compression.py) that Core ML expands at load time.

Written from the op definitions' documented formulas, not from coremltools' own value
inference, so a compressed program is checked against an independent reading of the spec.
"""

from __future__ import annotations

import torch

from ._registry import axis_of, ints, register

_INT_RANGES = {"int8": (-128, 127), "uint8": (0, 255)}


def _along(param: torch.Tensor | None, rank: int, axis) -> torch.Tensor | float:
    """A scalar or per-axis vector parameter, shaped to broadcast against a rank-`rank` tensor
    (a vector of size shape[axis] becomes [1, .., size, .., 1])."""
    if param is None:
        return 0.0
    if param.numel() == 1 and axis is None:  # a scalar, stored as a 1-element vector by some passes
        return param.to(torch.float32).reshape(())
    shape = [1] * rank
    shape[axis_of(axis, rank)] = param.numel()
    return param.to(torch.float32).reshape(shape)


@register("quantize")
def quantize(input, scale, output_dtype, zero_point=None, axis=None):
    # quantized = clip(round(input / scale) + zero_point) to the output dtype's range.
    if output_dtype not in _INT_RANGES:
        raise ValueError(f"quantize: output_dtype {output_dtype!r} is not int8 or uint8")
    lo, hi = _INT_RANGES[output_dtype]
    q = torch.round(input.to(torch.float32) / _along(scale, input.dim(), axis)) + _along(zero_point, input.dim(), axis)
    return q.clamp(lo, hi).to(torch.int8 if output_dtype == "int8" else torch.uint8)


@register("dequantize")
def dequantize(input, scale, zero_point=None, axis=None):
    # unquantized = scale * (input - zero_point)
    rank = input.dim()
    return _along(scale, rank, axis) * (input.to(torch.float32) - _along(zero_point, rank, axis))


@register("constexpr_affine_dequantize")
def constexpr_affine_dequantize(quantized_data, zero_point, scale, axis):
    # The same formula as dequantize, on a constant; axis is required here.
    rank = quantized_data.dim()
    return _along(scale, rank, axis) * (quantized_data.to(torch.float32) - _along(zero_point, rank, axis))


@register("constexpr_lut_to_dense")
def constexpr_lut_to_dense(indices, lut, shape):
    # iOS16 form: `indices` packs n_bits = log2(len(lut)) per element into bytes, least significant
    # bit first, an element split across bytes continuing in the next byte's low bits.
    dims = ints(shape)
    count = 1
    for d in dims:
        count *= d
    n_bits = int(lut.numel()).bit_length() - 1
    if lut.dim() != 1 or 1 << n_bits != lut.numel():
        raise ValueError(f"constexpr_lut_to_dense: a lut of {lut.numel()} values is not an iOS16 palette (2, 4, 16, 64, 256)")
    data = indices.to(torch.int64).reshape(-1)
    bits = ((data[:, None] >> torch.arange(8)) & 1).reshape(-1)[: count * n_bits]
    keys = (bits.reshape(count, n_bits) << torch.arange(n_bits)).sum(dim=1)
    return lut.reshape(-1)[keys].reshape(dims)


@register("constexpr_blockwise_shift_scale")
def constexpr_blockwise_shift_scale(data, scale, offset=None):
    # output[i, j, ..] = scale[i0, j0, ..] * (data[i, j, ..] - offset[i0, j0, ..]), with
    # i0 = i // block[0] and block[m] = data.shape[m] / scale.shape[m].
    def blocks(param: torch.Tensor) -> torch.Tensor:
        out = param.to(torch.float32)
        for dim, (full, part) in enumerate(zip(data.shape, param.shape)):
            if full % part:
                raise ValueError(f"constexpr_blockwise_shift_scale: {part} scales do not divide dimension {dim} of size {full}")
            out = out.repeat_interleave(full // part, dim=dim)
        return out

    shifted = data.to(torch.float32) - (blocks(offset) if offset is not None else 0.0)
    return blocks(scale) * shifted
