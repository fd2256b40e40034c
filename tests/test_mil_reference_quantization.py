"""The MIL reference evaluator's quantisation ops against numpy formulas written from the op docs
(coremltools ops/defs iOS16 constexpr_ops.py, iOS17 quantization_ops.py, iOS18 compression.py)."""

from __future__ import annotations

import coremltools as ct
import numpy as np
import pytest
import torch

from mvit.exporters.targets.coreml.reference import MilReferenceRunner
from mvit.exporters.targets.coreml.reference.ops import OPS

RNG = np.random.default_rng(0)


def t(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a))


def test_quantize_rounds_shifts_and_clips_per_channel():
    x = RNG.normal(0, 3, (1, 4, 3, 3)).astype(np.float32)
    scale = np.array([0.01, 0.05, 0.1, 1.0], np.float32)
    zero = np.array([0, 10, -5, 3], np.int8)
    want = np.clip(np.rint(x / scale[None, :, None, None]) + zero[None, :, None, None], -128, 127).astype(np.int8)
    got = OPS["quantize"](input=t(x), scale=t(scale), zero_point=t(zero), axis=torch.tensor(1), output_dtype="int8")
    assert got.dtype == torch.int8 and np.array_equal(got.numpy(), want)
    assert (got.numpy() == 127).any() and (got.numpy() == -128).any()  # the clip was exercised


def test_quantize_uint8_scalar_scale():
    x = RNG.uniform(-1, 3, (2, 5)).astype(np.float32)
    got = OPS["quantize"](input=t(x), scale=torch.tensor(0.02), zero_point=torch.tensor(128, dtype=torch.uint8), output_dtype="uint8")
    assert np.array_equal(got.numpy(), np.clip(np.rint(x / 0.02) + 128, 0, 255).astype(np.uint8))


def test_dequantize_and_constexpr_affine_dequantize_follow_scale_times_shifted_data():
    q = RNG.integers(-128, 128, (6, 4, 3, 3)).astype(np.int8)
    scale = RNG.uniform(0.001, 0.1, 6).astype(np.float32)
    zero = RNG.integers(-3, 4, 6).astype(np.int8)
    want = scale[:, None, None, None] * (q.astype(np.float32) - zero[:, None, None, None])
    got = OPS["constexpr_affine_dequantize"](quantized_data=t(q), zero_point=t(zero), scale=t(scale), axis=torch.tensor(0))
    assert np.allclose(got.numpy(), want, rtol=1e-6)
    got = OPS["dequantize"](input=t(q), scale=torch.tensor(0.5))  # no zero point: 0
    assert np.allclose(got.numpy(), 0.5 * q.astype(np.float32))


def _pack_lsb_first(indices: np.ndarray, n_bits: int) -> np.ndarray:
    bits = ((indices.reshape(-1, 1) >> np.arange(n_bits)) & 1).reshape(-1).astype(np.uint8)
    return np.packbits(np.pad(bits, (0, -len(bits) % 8)), bitorder="little")


@pytest.mark.parametrize("n_bits", [1, 2, 4, 6, 8])
def test_lut_to_dense_unpacks_least_significant_bits_first(n_bits):
    shape = (5, 3, 7)  # 105 elements: 6-bit indices straddle bytes, the last byte is partial
    indices = RNG.integers(0, 2**n_bits, shape)
    lut = RNG.normal(size=2**n_bits).astype(np.float32)
    got = OPS["constexpr_lut_to_dense"](indices=t(_pack_lsb_first(indices, n_bits)), lut=t(lut), shape=torch.tensor(shape, dtype=torch.int64))
    assert np.array_equal(got.numpy(), lut[indices])


def test_lut_to_dense_refuses_a_palette_that_is_not_a_power_of_two():
    with pytest.raises(ValueError, match="palette"):
        OPS["constexpr_lut_to_dense"](indices=t(np.zeros(2, np.uint8)), lut=t(np.zeros(5, np.float32)), shape=torch.tensor([4]))


def test_blockwise_shift_scale_repeats_each_scale_over_its_block():
    data = RNG.integers(-8, 8, (8, 6)).astype(np.int8)
    scale = RNG.uniform(0.1, 1, (4, 2)).astype(np.float32)  # blocks of 2 rows x 3 columns
    offset = RNG.integers(-2, 3, (4, 2)).astype(np.int8)
    big = lambda a: np.repeat(np.repeat(a, 2, axis=0), 3, axis=1).astype(np.float32)  # noqa: E731
    got = OPS["constexpr_blockwise_shift_scale"](data=t(data), scale=t(scale), offset=t(offset))
    assert np.allclose(got.numpy(), big(scale) * (data - big(offset)), rtol=1e-6)
    with pytest.raises(ValueError, match="do not divide"):
        OPS["constexpr_blockwise_shift_scale"](data=t(data), scale=t(np.ones((3, 2), np.float32)))


def test_saved_palettised_and_int8_weights_are_expanded_by_the_ops(tmp_path):
    """Through a saved package: the loader hands the ops packed bytes as Core ML stores them."""
    from coremltools.converters.mil import Builder as mb

    indices = RNG.integers(0, 16, (8, 4))
    lut = RNG.normal(size=16).astype(np.float32)
    q = RNG.integers(-128, 128, (4, 3)).astype(np.int8)
    scale = RNG.uniform(0.01, 0.1, 4).astype(np.float32)

    @mb.program(input_specs=[mb.TensorSpec(shape=(2, 8))], opset_version=ct.target.iOS16)
    def prog(x):
        w1 = mb.constexpr_lut_to_dense(indices=_pack_lsb_first(indices, 4), lut=lut, shape=np.array([8, 4], np.uint32))
        w2 = mb.constexpr_affine_dequantize(quantized_data=q, zero_point=np.int8(0), scale=scale, axis=0)
        return mb.matmul(x=mb.matmul(x=x, y=w1), y=w2)

    model = ct.convert(
        prog, convert_to="mlprogram", minimum_deployment_target=ct.target.iOS16, compute_precision=ct.precision.FLOAT32, pass_pipeline=ct.PassPipeline.EMPTY
    )
    model.save(str(tmp_path / "m.mlpackage"))
    x = RNG.normal(size=(2, 8)).astype(np.float32)
    runner = MilReferenceRunner(tmp_path / "m.mlpackage")
    (got,) = runner.run({runner.input_names[0]: x}).values()
    want = x @ lut[indices] @ (scale[:, None] * q.astype(np.float32))
    assert np.allclose(got, want, rtol=1e-4, atol=1e-5)
