"""The MIL reference evaluator: CoreML exports evaluated on Linux agree with PyTorch, and it can fail.

Exports are made here with coremltools directly (ImageType, scale 1/255, BGR as for Apple's v1
weights) so these tests pin the evaluator, not the export pipeline built on top of it.
"""

from __future__ import annotations

import math
import shutil
import struct
import sys
import warnings
from pathlib import Path

import coremltools as ct  # the coreml extra; missing must fail, not skip
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from model_utils import randomize_
from torch import nn

from mvit.exporters.targets.coreml.reference import (
    MilReferenceError,
    MilReferenceRunner,
    UnsupportedOpError,
    evaluate,
    program_op_types,
    unsupported_ops,
)
from mvit.exporters.targets.coreml.reference.ops import OPS
from mvit.models import create_model, fuse_batchnorm
from mvit.models.detection_postprocess import DetectionDecoder, NmsSettings, box_iou, generate_anchors
from mvit.models.ssdlite import ASPECT_RATIOS

# Conversion-heavy: runs in CI; `pytest -m "not slow"` skips it for a quick check.
pytestmark = pytest.mark.slow

SIZE = 128
FP32_RTOL = 1e-4
FP16_RTOL, FP16_COSINE = 2e-2, 0.999


# ---------------------------------------------------------------- helpers


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread():
    """This module's work is many small ops (evaluator) and conversions: with two threads on two
    cores shared with other test workers torch spin-waits and runs 10-50x slower, one is steady."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def pixels(n: int = 2, seed: int = 0) -> np.ndarray:
    """Integer RGB pixels 0..255, NCHW float32 (a smooth image plus noise, not just noise)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:SIZE, 0:SIZE] / SIZE
    base = np.stack([yy * 255, xx * 255, (1 - yy) * 200])[None]
    noisy = base + rng.normal(0, 40, (n, 3, SIZE, SIZE))
    return np.clip(np.rint(noisy), 0, 255).astype(np.float32)


def torch_input(x: np.ndarray) -> torch.Tensor:
    """The PyTorch side of the same preprocessing: BGR, scale 1/255."""
    return torch.from_numpy(np.ascontiguousarray(x[:, ::-1]) / 255.0).float()


def relative_error(ref: np.ndarray, got: np.ndarray) -> float:
    ref, got = np.asarray(ref, np.float64), np.asarray(got, np.float64)
    return float(np.abs(ref - got).max() / max(np.abs(ref).max(), 1e-12))


def cosine(ref: np.ndarray, got: np.ndarray) -> float:
    a, b = np.asarray(ref, np.float64).ravel(), np.asarray(got, np.float64).ravel()
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def agrees(ref: np.ndarray, got: np.ndarray, rtol: float) -> bool:
    return ref.shape == got.shape and relative_error(ref, got) <= rtol


def convert(module: nn.Module, path: Path, precision: str = "fp32", layout: str = "BGR", **kwargs) -> Path:
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(module.eval(), torch.rand(1, 3, SIZE, SIZE))
        model = ct.convert(
            traced,
            convert_to="mlprogram",
            inputs=[ct.ImageType(name="image", shape=(1, 3, SIZE, SIZE), scale=1 / 255, color_layout=getattr(ct.colorlayout, layout))],
            compute_precision=ct.precision.FLOAT32 if precision == "fp32" else ct.precision.FLOAT16,
            minimum_deployment_target=ct.target.iOS16,
            **kwargs,
        )
    model.save(str(path))
    return path


NMS_SETTINGS = {"iou_threshold": 0.5, "score_threshold": 0.0, "max_detections": 20}


def convert_with_nms(module: nn.Module, path: Path) -> Path:
    """The detector with Core ML's native NMS appended, as the coreml target exports it."""
    from mvit.exporters.targets.coreml.nms import append_nms

    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(module.eval(), torch.rand(1, 3, SIZE, SIZE))
        program = ct.convert(
            traced,
            convert_to="milinternal",
            compute_precision=ct.precision.FLOAT32,
            inputs=[ct.ImageType(name="image", shape=(1, 3, SIZE, SIZE), scale=1 / 255, color_layout=ct.colorlayout.BGR)],
            outputs=[ct.TensorType(name="decoded_boxes"), ct.TensorType(name="decoded_scores")],
            minimum_deployment_target=ct.target.iOS16,
        )
        # Score threshold 0: random weights give every class ~1/81, under the usual 0.05.
        append_nms(program, NmsSettings(**NMS_SETTINGS), ["boxes", "scores", "class_ids"])
        model = ct.convert(program, convert_to="mlprogram", compute_precision=ct.precision.FLOAT32, minimum_deployment_target=ct.target.iOS16)
    model.save(str(path))
    return path


def fused(name: str, config: str = "A", seed: int = 0) -> nn.Module:
    return fuse_batchnorm(randomize_(create_model(name, config=config), seed=seed))


class Segmenter(nn.Module):
    """DeepLabV3 logits plus the in-model upsample + argmax mask (the export's mask option)."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor):
        logits = self.net(x)
        up = F.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=False)
        return logits, up.argmax(dim=1).to(torch.int32)


class Detector(nn.Module):
    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net
        self.decode = DetectionDecoder(generate_anchors(net.feature_map_sizes(SIZE), ASPECT_RATIOS))

    def forward(self, x: torch.Tensor):
        return self.decode(*self.net(x))


class Probabilities(nn.Module):
    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).softmax(dim=-1)


def reference(module: nn.Module, x: np.ndarray) -> list[np.ndarray]:
    with torch.no_grad():
        out = module(torch_input(x))
    return [o.numpy() for o in (out if isinstance(out, tuple) else (out,))]


# ---------------------------------------------------------------- exports (built once)


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    """name -> (torch module, .mlpackage path); every CoreML program these tests evaluate."""
    root = tmp_path_factory.mktemp("mil_reference")
    cls_a, cls_b = fused("mobilevit_xxs", "A"), fused("mobilevit_xxs", "B", seed=1)
    seg = Segmenter(fused("deeplabv3_mobilevit_xxs", "A", seed=2))
    det = Detector(fused("ssdlite_mobilevit_xxs", "A", seed=3))
    labels = [f"class_{i}" for i in range(1000)]
    out = {
        "cls_a_fp32": (cls_a, convert(cls_a, root / "cls_a_fp32.mlpackage")),
        # Config B as the export pipeline writes classifiers: softmax + ClassifierConfig.
        "cls_b_fp32": (
            Probabilities(cls_b),
            convert(
                Probabilities(cls_b),
                root / "cls_b_fp32.mlpackage",
                classifier_config=ct.ClassifierConfig(labels, predicted_feature_name="classLabel", predicted_probabilities_output="probabilities"),
                outputs=[ct.TensorType(name="probabilities")],
            ),
        ),
        "seg_a_fp32": (seg, convert(seg, root / "seg_a_fp32.mlpackage")),
        "det_a_fp32": (det, convert(det, root / "det_a_fp32.mlpackage")),
        "cls_a_fp16": (cls_a, convert(cls_a, root / "cls_a_fp16.mlpackage", precision="fp16")),
        "det_nms_fp32": (det, convert_with_nms(det, root / "det_nms_fp32.mlpackage")),
    }
    return out


# ---------------------------------------------------------------- fp32 agreement


@pytest.mark.parametrize("name", ["cls_a_fp32", "cls_b_fp32", "seg_a_fp32", "det_a_fp32"])
def test_fp32_exports_agree_with_pytorch(exports, name):
    module, path = exports[name]
    x = pixels()
    runner = MilReferenceRunner(path)
    got = runner.run({"image": x})
    refs = reference(module, x)
    assert runner.precision == "fp32"
    names = [runner.package.classifier.probabilities_name] if runner.package.classifier else runner.output_names
    float_outputs = [(n, r) for n, r in zip(names, refs) if r.dtype.kind == "f"]
    assert float_outputs, "no float output to compare"
    for out_name, ref in float_outputs:
        assert got[out_name].shape == ref.shape, out_name
        assert relative_error(ref, got[out_name]) <= FP32_RTOL, (name, out_name, relative_error(ref, got[out_name]))
    if name == "seg_a_fp32":  # the in-model argmax mask: pixel agreement (ties at 1e-6 are possible)
        mask = got[runner.output_names[1]]
        assert mask.dtype.kind == "i" and mask.shape == (2, SIZE, SIZE)
        assert (mask == refs[1]).mean() > 0.999


def test_classifier_returns_probabilities_in_label_order(exports):
    module, path = exports["cls_b_fp32"]
    x = pixels()
    got = evaluate(path, {"image": x})
    # coremltools names the dictionary output "<label name>_probs" whatever the probabilities
    # tensor was called; the spec's predictedProbabilitiesName says which output it is.
    assert MilReferenceRunner(path).package.spec.description.predictedProbabilitiesName == "classLabel_probs"
    assert set(got) == {"classLabel", "classLabel_probs"}
    probs = got["classLabel_probs"]
    ref = reference(module, x)[0]
    assert probs.shape == (2, 1000) and probs.dtype == np.float32
    assert relative_error(ref, probs) <= FP32_RTOL
    assert list(got["classLabel"]) == [f"class_{i}" for i in ref.argmax(axis=1)]


def reference_detections(boxes: torch.Tensor, probs: torch.Tensor, settings: dict) -> tuple[np.ndarray, ...]:
    """Core ML NMS semantics on the PyTorch outputs: each box takes its best foreground class,
    greedy suppression among boxes of the same class, best first (see exporters/targets/coreml/nms.py)."""
    best, cls = probs[:, 1:].max(dim=-1)
    iou = box_iou(boxes, boxes)
    keep: list[int] = []
    for i in torch.argsort(best, descending=True).tolist():
        if len(keep) == settings["max_detections"]:
            break
        if best[i] > settings["score_threshold"] and not any(iou[i, j] > settings["iou_threshold"] and cls[i] == cls[j] for j in keep):
            keep.append(i)
    k = torch.tensor(keep)
    return boxes[k].numpy(), best[k].numpy(), (cls[k] + 1).numpy()


def test_detector_with_native_nms_agrees_with_pytorch(exports):
    module, path = exports["det_nms_fp32"]
    assert "non_maximum_suppression" in program_op_types(path)
    x = pixels(1)
    got = evaluate(path, {"image": x})
    boxes, probs = (t[0] for t in module(torch_input(x)))
    ref_boxes, ref_scores, ref_ids = reference_detections(boxes.detach(), probs.detach(), NMS_SETTINGS)
    k = len(ref_ids)
    assert k == NMS_SETTINGS["max_detections"]  # enough boxes survive to fill the output
    np.testing.assert_array_equal(got["class_ids"][0], ref_ids)
    np.testing.assert_allclose(got["scores"][0], ref_scores, rtol=FP32_RTOL)
    np.testing.assert_allclose(got["boxes"][0], ref_boxes, atol=1e-5)


# ---------------------------------------------------------------- fp16


@pytest.mark.parametrize("name", ["cls_a_fp16"])
def test_fp16_exports_agree_within_fp16_tolerance(exports, name):
    module, path = exports[name]
    x = pixels()
    runner = MilReferenceRunner(path)
    assert runner.precision == "fp16"
    got = runner.run({"image": x})
    ref = reference(module, x)[0]
    out = got[runner.output_names[0]]
    assert relative_error(ref, out) <= FP16_RTOL
    assert cosine(ref, out) > FP16_COSINE
    # Top-1 along the class axis (axis 1 for both): every image's class, or 99% of mask pixels.
    assert (out.argmax(axis=1) == ref.argmax(axis=1)).mean() >= (1.0 if out.ndim == 2 else 0.99)


def test_fp16_emulation_rounds_storage_and_is_reported_apart(exports):
    module, path = exports["cls_a_fp16"]
    x = pixels(1)
    ref = reference(module, x)[0]
    emulated = evaluate(path, {"image": x}, fp16_emulation=True)
    ideal = evaluate(path, {"image": x}, fp16_emulation=False)
    (name,) = emulated
    # Emulated outputs are fp16 values; the un-emulated program (fp16 weights, fp32 arithmetic)
    # is not, and sits closer to fp32 PyTorch because only the weights were rounded.
    assert np.array_equal(emulated[name], emulated[name].astype(np.float16).astype(np.float32))
    assert not np.array_equal(ideal[name], ideal[name].astype(np.float16).astype(np.float32))
    assert relative_error(ref, ideal[name]) < relative_error(ref, emulated[name])


# ---------------------------------------------------------------- it can fail


def _with_colour_space(package: Path, out: Path, colour_space: str) -> Path:
    """A copy of `package` whose image input declares another channel order (nothing else changes),
    i.e. what converting with color_layout=RGB instead of BGR produces."""
    from coremltools.proto import FeatureTypes_pb2

    shutil.copytree(package, out)
    model_file = out / "Data" / "com.apple.CoreML" / "model.mlmodel"
    spec = ct.proto.Model_pb2.Model.FromString(model_file.read_bytes())
    spec.description.input[0].type.imageType.colorSpace = FeatureTypes_pb2.ImageFeatureType.ColorSpace.Value(colour_space)
    model_file.write_bytes(spec.SerializeToString())
    return out


def test_flipped_channel_order_is_a_mismatch(exports, tmp_path):
    module, bgr_path = exports["cls_a_fp32"]
    rgb_path = _with_colour_space(bgr_path, tmp_path / "rgb.mlpackage", "RGB")
    x = pixels()
    ref = reference(module, x)[0]
    right, wrong = MilReferenceRunner(bgr_path), MilReferenceRunner(rgb_path)
    assert wrong.package.images["image"].color_space == "RGB"
    assert agrees(ref, right.run({"image": x})[right.output_names[0]], FP32_RTOL)
    got = wrong.run({"image": x})[wrong.output_names[0]]
    # Random-weight networks barely depend on their input, so the
    # flip shows as a few 1e-4 relative: still several times the fp32 gate.
    assert relative_error(ref, got) > 3 * FP32_RTOL
    assert not agrees(ref, got, FP32_RTOL)


def _perturb_first_conv_weight(package: Path) -> str:
    """Scale the first conv's weights inside weights/weight.bin by 1.5; returns the const's name."""
    spec = ct.utils.load_spec(str(package))
    block = spec.mlProgram.functions["main"].block_specializations["CoreML6"]
    ops = list(block.operations)
    conv = next(op for op in ops if op.type == "conv")
    weight_name = conv.inputs["weight"].arguments[0].name
    const = next(op for op in ops if op.type == "const" and op.outputs[0].name == weight_name)
    offset = const.attributes["val"].blobFileValue.offset
    blob = package / "Data" / "com.apple.CoreML" / "weights" / "weight.bin"
    data = bytearray(blob.read_bytes())
    # Blob metadata (coremltools' MIL storage format): u32 sentinel, u32 dtype, u64 size, u64 offset.
    sentinel, _, size, data_offset = struct.unpack_from("<IIQQ", data, offset)
    assert sentinel == 0xDEADBEEF
    values = np.frombuffer(bytes(data[data_offset : data_offset + size]), dtype=np.float32) * 1.5
    data[data_offset : data_offset + size] = values.astype(np.float32).tobytes()
    blob.write_bytes(bytes(data))
    return weight_name


def test_perturbed_conv_weights_are_a_mismatch(exports, tmp_path):
    module, path = exports["cls_a_fp32"]
    edited = tmp_path / "edited.mlpackage"
    shutil.copytree(path, edited)
    _perturb_first_conv_weight(edited)
    x = pixels()
    ref = reference(module, x)[0]
    name = MilReferenceRunner(path).output_names[0]
    assert agrees(ref, evaluate(path, {"image": x})[name], FP32_RTOL)
    got = evaluate(edited, {"image": x})[name]
    assert relative_error(ref, got) > 3 * FP32_RTOL
    assert not agrees(ref, got, FP32_RTOL)


def test_compressed_weights_are_decompressed(exports, tmp_path):
    import coremltools.optimize.coreml as cto

    module, path = exports["cls_a_fp32"]
    config = cto.OptimizationConfig(global_config=cto.OpLinearQuantizerConfig(mode="linear_symmetric"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        quantized = cto.linear_quantize_weights(ct.models.MLModel(str(path), skip_model_load=True), config=config)
    quantized.save(str(tmp_path / "int8.mlpackage"))
    assert "constexpr_affine_dequantize" in program_op_types(tmp_path / "int8.mlpackage")
    x = pixels(1)
    ref = reference(module, x)[0]
    (got,) = evaluate(tmp_path / "int8.mlpackage", {"image": x}).values()
    # int8 weights: close to fp32 (measured 4e-3 relative), but visibly not the fp32 weights.
    assert FP32_RTOL < relative_error(ref, got) < FP16_RTOL


# ---------------------------------------------------------------- op coverage


def test_every_op_in_every_export_has_an_implementation(exports):
    seen: set[str] = set()
    for name, (_, path) in exports.items():
        types = program_op_types(path)
        assert "batch_norm" not in types, name  # BN was fused before tracing
        assert unsupported_ops(path) == set(), (name, unsupported_ops(path))
        seen |= set(types)
    # The families the issue lists that MobileViT exports really produce.
    for op in (
        "conv",
        "linear",
        "matmul",
        "layer_norm",
        "softmax",
        "silu",
        "reshape",
        "transpose",
        "concat",
        "split",
        "reduce_mean",
        "upsample_bilinear",
        "reduce_argmax",
        "classify",
        "cast",
        "slice_by_index",
        "exp",
        "relu",
        "add",
        "mul",
        "sub",
    ):
        assert op in seen, op


def test_unknown_op_is_a_clear_error_naming_it(exports, monkeypatch):
    _, path = exports["cls_a_fp32"]
    monkeypatch.delitem(OPS, "silu")
    assert unsupported_ops(path) == {"silu"}
    with pytest.raises(UnsupportedOpError, match="'silu'"):
        MilReferenceRunner(path)


def test_unimplemented_mil_op_in_a_real_program_is_an_error(tmp_path):
    from coremltools.converters.mil import Builder as mb

    @mb.program(input_specs=[mb.TensorSpec(shape=(4, 4))], opset_version=ct.target.iOS16)
    def prog(x):
        return mb.band_part(x=x, lower=0, upper=0)

    model = ct.convert(prog, convert_to="mlprogram", minimum_deployment_target=ct.target.iOS16, pass_pipeline=ct.PassPipeline.EMPTY)
    model.save(str(tmp_path / "band.mlpackage"))
    assert unsupported_ops(tmp_path / "band.mlpackage") == {"band_part"}
    with pytest.raises(UnsupportedOpError, match="band_part"):
        evaluate(tmp_path / "band.mlpackage", {"x": np.zeros((4, 4), np.float32)})


# ---------------------------------------------------------------- inputs


def test_runner_contract_and_bad_inputs(exports):
    _, path = exports["cls_a_fp32"]
    runner = MilReferenceRunner(path)
    assert runner.label == "mil-reference" and runner.verified_by == "mil-reference"
    assert runner.input_names == ["image"] and len(runner.output_names) == 1
    with pytest.raises(MilReferenceError, match=r"expected \[N, 3, 128, 128\]"):
        runner.run({"image": np.zeros((1, 3, 64, 64), np.float32)})
    with pytest.raises(MilReferenceError, match="missing input 'image'"):
        runner.run({})
    with pytest.raises(MilReferenceError, match="not an .mlpackage"):
        MilReferenceRunner(Path(__file__))


def test_image_pixels_are_rounded_to_8_bit_like_core_ml(exports):
    _, path = exports["cls_a_fp32"]
    x = pixels(1)
    a = evaluate(path, {"image": x})
    b = evaluate(path, {"image": x + 0.3})  # a CVPixelBuffer holds 8-bit values
    assert all(np.array_equal(a[k], b[k]) for k in a)


# ---------------------------------------------------------------- Apple's runtime


@pytest.mark.skipif(sys.platform != "darwin", reason="CoreML predict runs only on macOS; Linux has no libcoremlpython")
def test_evaluator_matches_core_ml_runtime(exports):
    from PIL import Image

    for name in ("cls_a_fp32", "seg_a_fp32", "det_a_fp32"):
        _, path = exports[name]
        x = pixels(1)
        mine = evaluate(path, {"image": x})
        model = ct.models.MLModel(str(path), compute_units=ct.ComputeUnit.CPU_ONLY)
        theirs = model.predict({"image": Image.fromarray(x[0].transpose(1, 2, 0).astype(np.uint8), mode="RGB")})
        for key, value in mine.items():
            if value.dtype.kind == "f":
                assert relative_error(np.asarray(theirs[key]), value) <= 1e-3, (name, key)


# ---------------------------------------------------------------- single ops, against their definitions


def run_mil(tmp_path: Path, build, **feeds: np.ndarray) -> list[np.ndarray]:
    """Save a one-function MIL program (no graph passes, so its ops stay as written) and evaluate it."""
    from coremltools.converters.mil import Builder as mb

    specs = [mb.TensorSpec(shape=v.shape, dtype=ct.converters.mil.mil.types.fp32) for v in feeds.values()]
    prog = mb.program(input_specs=specs, opset_version=ct.target.iOS16)(build)
    path = tmp_path / f"op_{len(list(tmp_path.iterdir()))}.mlpackage"
    model = ct.convert(
        prog, convert_to="mlprogram", minimum_deployment_target=ct.target.iOS16, compute_precision=ct.precision.FLOAT32, pass_pipeline=ct.PassPipeline.EMPTY
    )
    model.save(str(path))
    runner = MilReferenceRunner(path)
    out = runner.run(dict(zip(runner.input_names, feeds.values())))
    return [out[n] for n in runner.output_names]


def test_bilinear_sampling_modes_match_the_op_docs(tmp_path):
    from coremltools.converters.mil import Builder as mb

    ramp = np.array([0.0, 1.0], np.float32).reshape(1, 1, 1, 2)  # value == sample position
    modes = ["STRICT_ALIGN_CORNERS", "ALIGN_CORNERS", "DEFAULT", "OFFSET_CORNERS", "UNALIGN_CORNERS"]

    def build(x):
        return tuple(mb.resize_bilinear(x=x, target_size_height=1, target_size_width=5, sampling_mode=m) for m in modes)

    got = run_mil(tmp_path, build, x=ramp)
    # Grid points for Xin=2, Xout=5 listed in resize_bilinear's docstring (coremltools iOS15 defs).
    expected = {
        "STRICT_ALIGN_CORNERS": [0, 0.25, 0.5, 0.75, 1],
        "ALIGN_CORNERS": [0, 0.25, 0.5, 0.75, 1],
        "DEFAULT": [0, 0.4, 0.8, 1, 1],
        "OFFSET_CORNERS": [0.1, 0.3, 0.5, 0.7, 0.9],
        "UNALIGN_CORNERS": [0, 0.1, 0.5, 0.9, 1],
    }
    for mode, out in zip(modes, got):
        np.testing.assert_allclose(out.reshape(-1), expected[mode], atol=1e-6, err_msg=mode)


def test_upsample_bilinear_matches_torch_interpolate(tmp_path):
    from coremltools.converters.mil import Builder as mb

    x = np.random.default_rng(0).normal(size=(1, 3, 5, 7)).astype(np.float32)

    def build(x):
        return (
            mb.upsample_bilinear(x=x, scale_factor_height=2.0, scale_factor_width=3.0, align_corners=True),
            mb.upsample_bilinear(x=x, scale_factor_height=2.0, scale_factor_width=3.0, align_corners=False),
        )

    aligned, half_pixel = run_mil(tmp_path, build, x=x)
    t = torch.from_numpy(x)
    for out, corners in ((aligned, True), (half_pixel, False)):
        ref = F.interpolate(t, size=(10, 21), mode="bilinear", align_corners=corners).numpy()
        np.testing.assert_allclose(out, ref, atol=1e-5)


def test_conv_and_pool_padding_modes_match_torch(tmp_path):
    from coremltools.converters.mil import Builder as mb

    rng = np.random.default_rng(1)
    x = rng.normal(size=(1, 4, 9, 8)).astype(np.float32)
    w = rng.normal(size=(6, 2, 3, 3)).astype(np.float32)
    b = rng.normal(size=(6,)).astype(np.float32)
    wt = rng.normal(size=(4, 3, 3, 3)).astype(np.float32)  # conv_transpose: [C_in, C_out / groups, K, K]

    def build(x):
        return (
            mb.conv(x=x, weight=w, bias=b, strides=[2, 2], pad_type="same", dilations=[1, 1], groups=2),
            mb.conv(x=x, weight=w, pad_type="custom", pad=[1, 2, 0, 1], dilations=[2, 1], groups=2),
            mb.max_pool(x=x, kernel_sizes=[3, 3], strides=[2, 2], pad_type="same"),
            mb.avg_pool(x=x, kernel_sizes=[3, 3], strides=[1, 1], pad_type="same", exclude_padding_from_average=True),
            mb.avg_pool(x=x, kernel_sizes=[2, 2], strides=[2, 2], pad_type="valid"),
            mb.conv_transpose(x=x, weight=wt, strides=[2, 2], pad_type="custom", pad=[1, 1, 0, 1], groups=2),
        )

    same_conv, custom_conv, maxp, avgp, avg_valid, deconv = run_mil(tmp_path, build, x=x)
    t, tw = torch.from_numpy(x), torch.from_numpy(w)
    # same, stride 2: out = ceil(in / 2); the odd padding pixel goes after (H: 9 -> pad 1,1; W: 8 -> 0,1).
    ref = F.conv2d(F.pad(t, [0, 1, 1, 1]), tw, torch.from_numpy(b), stride=2, groups=2)
    np.testing.assert_allclose(same_conv, ref.numpy(), atol=1e-5)
    ref = F.conv2d(F.pad(t, [0, 1, 1, 2]), tw, dilation=(2, 1), groups=2)
    np.testing.assert_allclose(custom_conv, ref.numpy(), atol=1e-5)
    ref = F.max_pool2d(F.pad(t, [0, 1, 1, 1], value=float("-inf")), 3, 2)
    np.testing.assert_allclose(maxp, ref.numpy(), atol=1e-6)
    ref = F.avg_pool2d(t, 3, 1, padding=1, count_include_pad=False)
    np.testing.assert_allclose(avgp, ref.numpy(), atol=1e-6)
    np.testing.assert_allclose(avg_valid, F.avg_pool2d(t, 2, 2).numpy(), atol=1e-6)
    full = F.conv_transpose2d(t, torch.from_numpy(wt), stride=2, groups=2)
    np.testing.assert_allclose(deconv, full[:, :, 1:-1, 0:-1].numpy(), atol=1e-5)


def test_tensor_ops_match_numpy(tmp_path):
    from coremltools.converters.mil import Builder as mb

    rng = np.random.default_rng(2)
    x = rng.normal(size=(2, 5, 6)).astype(np.float32)
    mean, var = rng.normal(size=5).astype(np.float32), rng.uniform(0.5, 2, size=5).astype(np.float32)
    gamma, beta = rng.normal(size=5).astype(np.float32), rng.normal(size=5).astype(np.float32)

    def build(x):
        return (
            mb.gather(x=x, indices=np.array([4, -1, 0], np.int32), axis=1),
            mb.slice_by_index(x=x, begin=[0, 1, 5], end=[2, 4, 0], stride=[1, 2, -2], begin_mask=[True, False, False], end_mask=[True, False, True]),
            mb.slice_by_index(x=x, begin=[1, 0, 0], end=[2, 5, 6], squeeze_mask=[True, False, False]),
            mb.slice_by_size(x=x, begin=[0, 2, 1], size=[-1, 2, 3]),
            mb.reduce_argmax(x=x, axis=-1, keep_dims=False),
            mb.batch_norm(x=mb.expand_dims(x=x, axes=[-1]), mean=mean, variance=var, gamma=gamma, beta=beta, epsilon=1e-3),
            mb.cast(x=mb.mul(x=x, y=10.0), dtype="int32"),
            mb.exp(x=x),
            mb.concat(values=[x, x], axis=-1, interleave=True),
        )

    gather, strided, squeezed, sized, argmax, bn, as_int, exp, interleaved = run_mil(tmp_path, build, x=x)
    np.testing.assert_array_equal(gather, x[:, [4, -1, 0]])
    np.testing.assert_array_equal(strided, x[:, 1:4:2, 5::-2])
    np.testing.assert_array_equal(squeezed, x[1])
    np.testing.assert_array_equal(sized, x[:, 2:4, 1:4])
    np.testing.assert_array_equal(argmax, x.argmax(-1))
    ref_bn = (x - mean[:, None]) / np.sqrt(var[:, None] + 1e-3) * gamma[:, None] + beta[:, None]
    np.testing.assert_allclose(bn[..., 0], ref_bn, atol=1e-5)
    np.testing.assert_array_equal(as_int, (x * 10).astype(np.int32))
    np.testing.assert_allclose(exp, np.exp(x), rtol=1e-6)
    np.testing.assert_array_equal(interleaved[..., 0::2], x)
    np.testing.assert_array_equal(interleaved[..., 1::2], x)


def test_non_maximum_suppression_keeps_best_box_per_overlap_and_pads(tmp_path):
    from coremltools.converters.mil import Builder as mb

    # (cx, cy, w, h): boxes 0 and 1 overlap (IoU 0.82), box 2 is apart, box 3 scores below threshold.
    boxes = np.array([[[0.3, 0.3, 0.2, 0.2], [0.31, 0.3, 0.2, 0.2], [0.7, 0.7, 0.2, 0.2], [0.5, 0.5, 0.1, 0.1]]], np.float32)
    scores = np.array([[[0.6, 0.1], [0.9, 0.0], [0.2, 0.5], [0.01, 0.02]]], np.float32)

    def build(b, s):
        return mb.non_maximum_suppression(boxes=b, scores=s, iou_threshold=0.5, score_threshold=0.05, max_boxes=5, per_class_suppression=False)

    out_boxes, out_scores, indices, count = run_mil(tmp_path, build, b=boxes, s=scores)
    assert count.tolist() == [2]
    assert indices.tolist() == [[1, 2, -1, -1, -1]]  # best first; 0 suppressed by 1; 3 under threshold
    np.testing.assert_array_equal(out_boxes[0, :2], boxes[0, [1, 2]])
    np.testing.assert_array_equal(out_scores[0, :2], scores[0, [1, 2]])
    assert not out_boxes[0, 2:].any() and not out_scores[0, 2:].any()


def test_elementwise_activation_and_reduction_ops_match_numpy(tmp_path):
    from coremltools.converters.mil import Builder as mb

    erf = np.vectorize(math.erf)

    x = np.random.default_rng(3).normal(size=(2, 3, 4, 5)).astype(np.float32)
    pos = np.abs(x) + 0.1
    sig = lambda v: 1 / (1 + np.exp(-v))  # noqa: E731
    cases = {  # op -> (builder, numpy reference)
        "relu6": (lambda x: mb.relu6(x=mb.mul(x=x, y=4.0)), np.clip(4 * x, 0, 6)),
        "sigmoid": (lambda x: mb.sigmoid(x=x), sig(x)),
        "silu": (lambda x: mb.silu(x=x), x * sig(x)),
        "gelu": (lambda x: mb.gelu(x=x, mode="EXACT"), 0.5 * x * (1 + erf(x / np.sqrt(2)))),
        "gelu_tanh": (lambda x: mb.gelu(x=x, mode="TANH_APPROXIMATION"), 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x**3)))),
        "leaky_relu": (lambda x: mb.leaky_relu(x=x, alpha=0.1), np.where(x >= 0, x, 0.1 * x)),
        "sigmoid_hard": (lambda x: mb.sigmoid_hard(x=x, alpha=0.2, beta=0.5), np.clip(0.2 * x + 0.5, 0, 1)),
        "softmax": (lambda x: mb.softmax(x=x, axis=1), np.exp(x) / np.exp(x).sum(1, keepdims=True)),
        "real_div": (lambda x: mb.real_div(x=x, y=3.0), x / 3),
        "sub": (lambda x: mb.sub(x=1.0, y=x), 1 - x),
        "rsqrt": (lambda x: mb.rsqrt(x=mb.abs(x=x), epsilon=0.1), 1 / np.sqrt(np.abs(x) + 0.1)),
        "clip": (lambda x: mb.clip(x=x, alpha=-0.5, beta=0.5), np.clip(x, -0.5, 0.5)),
        "log": (lambda x: mb.log(x=mb.add(x=mb.abs(x=x), y=0.1)), np.log(pos)),
        "reduce_mean": (lambda x: mb.reduce_mean(x=x, axes=[2, 3], keep_dims=True), x.mean((2, 3), keepdims=True)),
        "reduce_sum": (lambda x: mb.reduce_sum(x=x, axes=[-1]), x.sum(-1)),
        "reduce_max": (lambda x: mb.reduce_max(x=x, axes=[1]), x.max(1)),
        "reduce_l2_norm": (lambda x: mb.reduce_l2_norm(x=x, axes=[1, 2]), np.sqrt((x * x).sum((1, 2)))),
        "reduce_log_sum_exp": (lambda x: mb.reduce_log_sum_exp(x=x, axes=[3]), np.log(np.exp(x).sum(3))),
        "layer_norm": (lambda x: mb.layer_norm(x=x, axes=[-1], epsilon=1e-5), (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + 1e-5)),
        "transpose": (lambda x: mb.transpose(x=x, perm=[0, 2, 3, 1]), x.transpose(0, 2, 3, 1)),
        "reshape": (lambda x: mb.reshape(x=x, shape=[0, 3, -1, 1]), x.reshape(2, 3, 20, 1)),
        "pad_reflect": (lambda x: mb.pad(x=x, pad=[1, 1, 2, 0], mode="reflect"), np.pad(x, [(0, 0), (0, 0), (1, 1), (2, 0)], mode="reflect")),
        "tile": (lambda x: mb.tile(x=x, reps=[1, 2, 1, 1]), np.tile(x, (1, 2, 1, 1))),
        "depth_to_space": (lambda x: mb.depth_to_space(x=mb.concat(values=[x, x, x, x], axis=1), block_size=2), None),
        "split": (lambda x: mb.split(x=x, num_splits=2, axis=2)[1], x[:, :, 2:]),
        "squeeze": (lambda x: mb.squeeze(x=mb.slice_by_size(x=x, begin=[0, 1, 0, 0], size=[-1, 1, -1, -1]), axes=[1]), x[:, 1]),
    }
    names = list(cases)
    got = run_mil(tmp_path, lambda x: tuple(cases[n][0](x) for n in names), x=x)
    for name, out in zip(names, got):
        ref = cases[name][1]
        if name == "depth_to_space":  # DCR: each 2x2 block holds one channel of the 4 copies
            ref = np.repeat(np.repeat(x, 2, axis=2), 2, axis=3)
        np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-6, err_msg=name)
