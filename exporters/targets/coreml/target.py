"""CoreML target: an ML Program `.mlpackage` with the preprocessing in its `ImageType`.

The module it receives takes the normalised tensor in the model's channel order (wrappers.py
leaves pixel preprocessing out for CoreML); scale, bias and channel order go into the image input,
where the device applies them for free while reading the pixel buffer.
"""

from __future__ import annotations

import copy
import json
import os
import platform
import shutil
import sys
import uuid
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from mvit.exporters.targets.coreml.reference import MilReferenceRunner

from ...base import ExportError, ExportOptions, ExportRequest, MultiSizeWriter, Runner, RunnerDefaults, TargetOption, importable
from ...checks import Check
from ...profiling import OpProfiler
from ...tasks import get_task
from ...wrappers import NMS_OUTPUT_NAMES
from .nms import append_nms
from .options import MULTISIZE_FORMS, NMS_FORM_OPTION, NMS_FORMS, OPTIONS
from .pipeline import VISION_OUTPUTS, append_vision_outputs, build_pipeline, nms_labels
from .preview import NO_PREVIEW, preview_metadata, record_outputs, report_fields, with_class_map  # noqa: F401 (NO_PREVIEW: callers read it here)
from .profile import CoreMLOpProfiler
from .quantize import quantize_coreml, settings_for
from .reference.nms_model import as_detections
from .validate import deployment_target_description, read_package_spec, required_spec, validate_package

# Conversions ask for iOS 16 / macOS 13: ML Program needs iOS 15; iOS 16 adds fp16 inputs/outputs
# for ML Programs and is the oldest opset coremltools 9 still tests every MIL op against. Devices
# older than that (iPhone 7 and earlier) cannot run iOS 16 anyway, and the Neural Engine fp16 path
# needs A12+. What a package records as its minimum is derived from what its program uses
# (coreml_validate.required_spec): int8's `quantize` ops make it iOS 17, several functions iOS 18.
DEPLOYMENT_TARGET = "iOS16"
# Name of the (pre-NMS) outputs while the NMS ops are appended; the artefact's outputs are renamed.
_DECODED_NAMES = ("decoded_boxes", "class_probabilities")


class CoreMLTarget:
    name = "coreml"
    suffix = ".mlpackage"
    install_hint = "pip install 'mvit[coreml]' (coremltools==9.0)"
    runtime = "coreml"
    preprocess_in_graph = False  # the ImageType carries scale, bias and channel order
    options: tuple[TargetOption, ...] = OPTIONS
    verifiers: tuple[str, ...] = ("mil-reference", "coreml-runtime", "both")
    # The program form's outputs (`--coreml-nms program`); the default Vision pipeline returns
    # VISION_OUTPUTS instead, and export() records those as the artefact's output names.
    nms_output_names = list(NMS_OUTPUT_NAMES)
    nms_forms: tuple[str, ...] = NMS_FORMS  # --coreml-nms values, the default first
    # Both forms keep a box under its best class only: MIL non_maximum_suppression
    # (exporters/targets/coreml/nms.py), and NonMaximumSuppression's pickTop.perClass (exporters/targets/coreml/pipeline.py).
    nms_best_class_only = True
    class_id_output = False  # ClassifierConfig adds the top label itself
    export_rewrites: frozenset[str] = frozenset()  # not timed on a device: the network as written
    rewrites_skipped_for: Mapping[str, frozenset[str]] = {}
    harness_ready = True
    precisions: tuple[str, ...] = ("fp32", "fp16", "int8-weights", "int8", "palette4", "palette6")  # palettes: a CoreML weight format
    multisize: MultiSizeWriter | None = None  # set by the package (multifunction.py)
    quiet_load_options: Mapping[str, Any] = {}
    multisize_forms: tuple[str, ...] = MULTISIZE_FORMS  # --coreml-shapes: one fixed-shape function per size, or EnumeratedShapes
    op_profiler: OpProfiler | None = CoreMLOpProfiler()

    def quantisation_settings(self, precision: str) -> dict[str, Any]:

        return settings_for(precision)

    def benchmark_unavailable_reason(self) -> str | None:
        if sys.platform == "darwin":
            return None
        return f"coreml skipped: CoreML runs only on macOS/iOS (this is {platform.system()}); benchmark .mlpackage files with the iOS harness or on a Mac"

    def output_names_with_nms(self, options: ExportOptions) -> list[str]:
        # The Vision form returns what Core ML's NonMaximumSuppression model outputs.
        return list(VISION_OUTPUTS) if nms_form(options) == "vision" else list(self.nms_output_names)

    def available(self) -> bool:
        return importable("coremltools")

    def export(self, request: ExportRequest, path: Path) -> None:
        mlmodel = _convert(request)
        if get_task(request.task).classifier:
            mlmodel = _rename_probabilities(mlmodel, request.output_names[0])
        mlmodel.author = request.metadata.get("author", "mvit")
        mlmodel.license = request.metadata.get("license", "Weights: see the licence of the checkpoint they came from.")
        mlmodel.short_description = request.metadata.get("description", f"{request.model_name} ({request.task}), exported by mvit")
        mlmodel.version = request.metadata.get("mvit_version", "")
        user = mlmodel.user_defined_metadata
        # The date would make two exports of the same model differ from one day to the next.
        user.pop("com.github.apple.coremltools.conversion_date", None)
        for key, value in _metadata(request, mlmodel.get_spec()).items():
            user[key] = value
        path = Path(path)
        # coremltools refuses a package path that does not end in .mlpackage, so write to a
        # sibling temporary package and move it to the (temporary) path the caller chose.
        staging = path.parent / f".{path.name}.{os.getpid()}.staging{self.suffix}"
        shutil.rmtree(staging, ignore_errors=True)
        try:
            mlmodel.save(str(staging))
            _make_package_deterministic(staging)
            if path.exists():
                shutil.rmtree(path)
            staging.rename(path)
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def report_fields(self, path: Path) -> dict[str, Any]:
        return report_fields(self.read_metadata(path))

    def read_metadata(self, path: Path) -> dict[str, str]:
        spec = _load_spec(path)
        meta = dict(spec.description.metadata.userDefined)
        meta["author"] = spec.description.metadata.author
        meta["license"] = spec.description.metadata.license
        meta["short_description"] = spec.description.metadata.shortDescription
        # A multifunction package (several sizes) describes inputs per function: the first speaks for it.
        described = spec.description.functions[0] if spec.description.functions else spec.description
        image = described.input[0].type
        if image.WhichOneof("Type") == "imageType":
            meta["input_type"] = "image"
            meta["color_layout"] = _COLOR_SPACES.get(image.imageType.colorSpace, str(image.imageType.colorSpace))
        else:
            meta["input_type"] = "tensor"
        # The model's own outputs (a classifier adds classLabel); "output_names" is what the
        # exporter recorded.
        meta["model_outputs"] = json.dumps([o.name for o in described.output])
        if described.predictedFeatureName:
            meta["classifier_label_output"] = described.predictedFeatureName
            meta["classifier_probabilities_output"] = described.predictedProbabilitiesName
            meta["classifier_labels"] = json.dumps(_class_labels(spec))
        return meta

    def op_histogram(self, path: Path) -> dict[str, int]:
        """MIL op counts of the ML Program; a pipeline's other models count as `model:<type>`."""
        counts: Counter[str] = Counter()
        spec = _load_spec(path)
        for op in _program_ops(spec):
            counts[op.type] += 1
        for stage in _pipeline_models(spec)[1:]:
            counts[f"model:{stage.WhichOneof('Type')}"] += 1
        return dict(counts)

    def max_tensor_rank(self, path: Path) -> int:
        spec = _program_spec(_load_spec(path))
        ranks = [0]
        for function in spec.mlProgram.functions.values():
            ranks += [_rank(i.type) for i in function.inputs]
        for op in _program_ops(spec):
            ranks += [_rank(o.type) for o in op.outputs]
        return max(ranks)

    def structure_checks(self, path: Path) -> tuple[dict[str, Any], list[Check]]:
        """Apple's structural rules (exporters/targets/coreml/validate.py), each a check named after its rule."""

        _load_spec(path)  # a folder that is no package is an ExportError, as for the other readers
        result = validate_package(Path(path))
        return result.summary(), result.checks()

    def load(self, path: Path, num_threads: int | None = None) -> Runner:
        """Apple's runtime where it exists (macOS), else the MIL reference evaluator."""
        return self.load_verifier(path, "coreml-runtime" if sys.platform == "darwin" else "mil-reference", num_threads)

    def load_verifier(self, path: Path, verifier: str, num_threads: int | None = None) -> Runner:
        """A runner by name, so a Mac can check the reference evaluator against Apple's runtime."""
        if verifier == "coreml-runtime":
            if sys.platform != "darwin":
                raise ExportError(
                    f"cannot run {path} with the CoreML runtime: CoreML predict needs macOS; on Linux use --verifier mil-reference (the default there)"
                )
            return CoreMLRuntimeRunner(Path(path))
        if verifier == "mil-reference":
            return MilReferenceRunner(Path(path), num_threads=num_threads)
        raise ExportError(f"unknown CoreML verifier {verifier!r}: use coreml-runtime or mil-reference")


def _convert(request: ExportRequest) -> Any:
    import coremltools as ct

    module, network_outputs = with_class_map(request.task, _fold_channel_scale(request), list(request.output_names))
    record_outputs(request, network_outputs)  # the metadata and the report name the class map too
    example = torch.rand(request.input_shape, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        traced = torch.jit.trace(module.eval(), example)
    nms = request.options.nms is not None
    output_names = list(_DECODED_NAMES) if nms else classifier_tensor_names(request.task, network_outputs)
    common = dict(
        inputs=[_input_type(request)],
        outputs=interface_tensor_types(module, example, output_names),
        classifier_config=classifier_config(request.task, request.labels, output_names),
        minimum_deployment_target=ct.target.iOS16,
    )
    # Quantised precisions compress the fp16 program (exporters/targets/coreml/quantize.py): fp16 is what the device computes in.
    precision = ct.precision.FLOAT32 if request.precision == "fp32" else ct.precision.FLOAT16
    if not nms:
        return _compressed(ct.convert(traced, convert_to="mlprogram", compute_precision=precision, **common), request)
    # The NMS (or the arrays a NonMaximumSuppression model reads) is appended to the MIL program
    # built from the traced network in fp32; the fp16 pass runs over the whole program in the
    # second conversion and keeps the outputs fp32.
    program = ct.convert(traced, convert_to="milinternal", compute_precision=ct.precision.FLOAT32, **common)
    settings = request.options.nms
    assert settings is not None  # `nms` above
    if nms_form(request.options) == "program":
        append_nms(program, settings, NMS_OUTPUT_NAMES)
        return _compressed(ct.convert(program, convert_to="mlprogram", compute_precision=precision, minimum_deployment_target=ct.target.iOS16), request)

    append_vision_outputs(program)
    stage = _compressed(
        ct.convert(program, convert_to="mlprogram", compute_precision=precision, minimum_deployment_target=ct.target.iOS16), request
    )  # the Vision pipeline's NMS model has no weights: its program stage is what gets quantised
    return build_pipeline(stage, nms_labels(list(request.labels)), settings)


def _compressed(program_model: Any, request: ExportRequest) -> Any:
    """The ML Program quantised per `request.precision` (exporters/targets/coreml/quantize.py); fp32 / fp16 as they are."""
    if request.precision in ("fp32", "fp16"):
        return program_model

    return quantize_coreml(program_model, request)


def nms_form(options: ExportOptions) -> str:
    """ "vision" (pipeline ending in a NonMaximumSuppression model, the default) or "program"."""
    return options.option(NMS_FORM_OPTION.name) or NMS_FORMS[0]


# What the network's probabilities tensor is called inside a classifier's program: `classify`
# binds the interface name (`probabilities`) to its dictionary output, and MIL names a value once.
_CLASSIFIER_TENSOR = "class_probabilities_tensor"


def classifier_tensor_names(task: str, output_names: list[str]) -> list[str]:
    """The traced outputs' names in the program: a classifier's probabilities tensor is renamed so
    the interface name stays free for the `classify` op's output."""
    return [_CLASSIFIER_TENSOR, *output_names[1:]] if get_task(task).classifier else list(output_names)


def classifier_config(task: str, labels: list[str], output_names: list[str]) -> Any:
    import coremltools as ct

    if not get_task(task).classifier:
        return None
    return ct.ClassifierConfig(list(labels), predicted_feature_name="classLabel", predicted_probabilities_output=output_names[0])


def interface_tensor_types(module: nn.Module, example: torch.Tensor, output_names: list[str]) -> list[Any]:
    """Output TensorTypes with the dtype the network returns, floats as fp32: an fp16 program
    still hands an app FLOAT32 arrays (docs/exporting-coreml.md), as it does with its input."""
    import coremltools as ct

    with torch.no_grad():
        outputs = module(example)
    outputs = outputs if isinstance(outputs, (tuple, list)) else (outputs,)
    types = []
    for name, tensor in zip(output_names, outputs):
        dtype = np.float32 if tensor.is_floating_point() else np.int32
        types.append(ct.TensorType(name=name, dtype=dtype))
    return types


def _rename_probabilities(mlmodel: Any, name: str) -> Any:
    """ClassifierConfig calls the probabilities output `classLabel_probs` whatever it was named;
    give it the name every other target uses."""
    import coremltools as ct
    from coremltools.models.utils import rename_feature

    spec = mlmodel.get_spec()
    current = spec.description.predictedProbabilitiesName
    if current and current != name:
        rename_feature(spec, current, name)
        spec.description.predictedProbabilitiesName = name
    return ct.models.MLModel(spec, weights_dir=mlmodel.weights_dir, skip_model_load=True)


def _image_normalisation(request: ExportRequest) -> tuple[float, list[float], np.ndarray | None]:
    """ImageType (scale, bias) and the per-channel factor CoreML's single scale cannot carry.

    normalised = (pixels * scale - mean) / std. With one std for all channels this is exactly
    pixels * (scale / std) + (-mean / std). With per-channel std the ImageType keeps
    pixels * scale - mean and 1/std is folded into the first conv (or a mul when none is found).
    """
    p = request.preprocess
    scale = float(p["scale"])
    mean = np.asarray(p.get("mean", (0.0, 0.0, 0.0)), dtype=np.float64)
    std = np.asarray(p.get("std", (1.0, 1.0, 1.0)), dtype=np.float64)
    if np.allclose(std, std[0], rtol=0, atol=1e-12):
        return scale / float(std[0]), list(-mean / std[0]), None
    return scale, list(-mean), 1.0 / std


def _input_type(request: ExportRequest) -> Any:
    import coremltools as ct

    shape = tuple(request.input_shape)
    if request.preprocess.get("raw_input"):
        return ct.TensorType(name="image", shape=shape, dtype=np.float32)  # fp32 at the interface, as the outputs
    scale, bias, _ = _image_normalisation(request)
    order = request.preprocess.get("channel_order", "RGB")
    layout = {"RGB": ct.colorlayout.RGB, "BGR": ct.colorlayout.BGR}[order]
    return ct.ImageType(name="image", shape=shape, scale=scale, bias=[float(b) for b in bias], color_layout=layout)


def _fold_channel_scale(request: ExportRequest) -> nn.Module:
    """The module with per-channel 1/std applied to its input, folded into the first conv if the
    input reaches that conv untouched (a per-input-channel weight scale is exact, zero padding
    included), else as a multiply in front."""
    module = request.module
    if request.preprocess.get("raw_input"):
        return module
    _, _, factor = _image_normalisation(request)
    if factor is None:
        return module
    module = copy.deepcopy(module).eval()
    first = _first_conv_on_input(module, request.input_shape)
    scale = torch.tensor(factor, dtype=torch.float32)
    if first is not None and first.in_channels == 3 and first.groups == 1:
        with torch.no_grad():
            first.weight.mul_(scale.reshape(1, 3, 1, 1))
        return module
    return _ScaleInput(module, scale)


def _first_conv_on_input(module: nn.Module, input_shape: tuple[int, ...]) -> nn.Conv2d | None:
    """The first Conv2d run, if its input is exactly the module's input tensor (nothing in between)."""
    x = torch.zeros(input_shape)
    found: list[nn.Conv2d] = []

    def hook(conv: nn.Module, args: tuple[torch.Tensor, ...]) -> None:
        if not found:
            found.append(conv if args[0] is x else None)  # type: ignore[arg-type]

    handles = [m.register_forward_pre_hook(hook) for m in module.modules() if isinstance(m, nn.Conv2d)]
    try:
        with torch.no_grad():
            module(x)
    finally:
        for h in handles:
            h.remove()
    return found[0] if found else None


class _ScaleInput(nn.Module):
    scale: torch.Tensor  # a buffer

    def __init__(self, module: nn.Module, scale: torch.Tensor) -> None:
        super().__init__()
        self.module = module
        self.register_buffer("scale", scale.reshape(1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> Any:
        return self.module(x * self.scale)


def minimum_deployment_target(spec: Any) -> str:
    """The OS releases a package needs: its specification version, or more where its ops need it."""

    return deployment_target_description(max(required_spec(spec)[0], int(spec.specificationVersion)))


def _metadata(request: ExportRequest, spec: Any) -> dict[str, str]:
    meta = {str(k): str(v) for k, v in request.metadata.items()}
    p = request.preprocess
    meta.setdefault("labels", json.dumps(list(request.labels)))
    meta.setdefault("preprocess", json.dumps(p, sort_keys=True, default=str))
    meta.setdefault("model", request.model_name)
    meta.setdefault("task", request.task)
    meta["minimum_deployment_target"] = minimum_deployment_target(spec)
    meta["channel_order"] = str(p.get("channel_order", "RGB"))
    meta["image_scale"] = repr(float(p["scale"]))
    if not p.get("raw_input"):
        scale, bias, factor = _image_normalisation(request)
        meta["image_input_scale"] = repr(scale)
        meta["image_input_bias"] = json.dumps(bias)
        if factor is not None:
            meta["input_channel_factor"] = json.dumps(list(map(float, factor)))
    meta.update(preview_metadata(request))  # Xcode's preview keys, and the class map's output name
    if request.options.nms is not None:
        meta["nms"] = json.dumps(request.options.nms.as_dict(), sort_keys=True, default=str)
        meta["nms_form"] = nms_form(request.options)
        if meta["nms_form"] == "vision":
            # Defaults of the pipeline's optional threshold inputs, readable without parsing the NMS model.
            meta["iou_threshold"] = repr(float(request.options.nms.iou_threshold))
            meta["confidence_threshold"] = repr(float(request.options.nms.score_threshold))
    return meta


def _make_package_deterministic(package: Path) -> None:
    """Make two exports of the same model byte-identical, also across processes.

    coremltools names the package's items with random UUIDs (derived from the item paths here
    instead), and protobuf writes map fields (op attributes, metadata) in a per-process hash order
    unless asked for its deterministic encoding.
    """
    from coremltools.proto import Model_pb2

    manifest_path = package / "Manifest.json"
    manifest = json.loads(manifest_path.read_text())
    entries = manifest.get("itemInfoEntries", {})
    renamed = {old: str(uuid.uuid5(uuid.NAMESPACE_URL, "mvit:" + info.get("path", old))).upper() for old, info in entries.items()}
    manifest["itemInfoEntries"] = {renamed[k]: v for k, v in sorted(entries.items(), key=lambda kv: renamed[kv[0]])}
    root = manifest.get("rootModelIdentifier")
    if root in renamed:
        model_file = package / "Data" / entries[root]["path"]
        spec = Model_pb2.Model()
        spec.ParseFromString(model_file.read_bytes())
        model_file.write_bytes(spec.SerializeToString(deterministic=True))
        manifest["rootModelIdentifier"] = renamed[root]
    manifest_path.write_text(json.dumps(manifest, indent=4, sort_keys=True) + "\n")


def _load_spec(path: Path) -> Any:
    """The package's Model spec, only read (coremltools' load_spec rewrites Manifest.json)."""

    path = Path(path)
    if not (path / "Manifest.json").exists():
        raise ExportError(f"{path} is not a .mlpackage (no Manifest.json); pass the package folder")
    return read_package_spec(path)


def _pipeline_models(spec: Any) -> list[Any]:
    """The models of a pipeline in order, or [spec] for a single model."""
    if spec.WhichOneof("Type") == "pipeline":
        return list(spec.pipeline.models)
    return [spec]


def _program_spec(spec: Any) -> Any:
    """The ML Program: the model itself, or the first stage of the Vision pipeline."""
    return _pipeline_models(spec)[0]


def _program_ops(spec: Any) -> list[Any]:
    """Every op in every function and nested block of the ML Program (depth first)."""
    spec = _program_spec(spec)
    if spec.WhichOneof("Type") != "mlProgram":
        raise ExportError("not an ML Program model; mvit writes ML Programs only (convert_to='mlprogram')")
    ops: list[Any] = []

    def walk(block: Any) -> None:
        for op in block.operations:
            ops.append(op)
            for inner in op.blocks:
                walk(inner)

    for function in spec.mlProgram.functions.values():
        for block in function.block_specializations.values():
            walk(block)
    return ops


def _rank(value_type: Any) -> int:
    """Rank of a tensor value; lists, dictionaries and states count as 0."""
    if value_type.WhichOneof("type") == "tensorType":
        return int(value_type.tensorType.rank)
    return 0


def _class_labels(spec: Any) -> list[str]:
    """Labels of an ML Program classifier: immediate values of its `classify` op's `classes`."""
    for op in _program_ops(spec):
        if op.type == "classify":
            values = op.inputs["classes"].arguments[0].value.immediateValue.list.values
            return [_scalar_label(v.immediateValue.tensor) for v in values]
    return []


def _scalar_label(tensor: Any) -> str:
    if tensor.strings.values:
        return str(tensor.strings.values[0])
    return str(tensor.longInts.values[0])


_COLOR_SPACES = {10: "GRAYSCALE", 20: "RGB", 30: "BGR", 40: "GRAYSCALE_FLOAT16"}


class CoreMLRuntimeRunner(RunnerDefaults):
    """Apple's runtime (macOS only): pixels go in as a PIL image, as an app would hand them over.

    A Vision pipeline's `confidence` / `coordinates` are also given as boxes/scores/class_ids, read
    the way Vision reads them. What its NMS model was given is not exposed by the runtime (no
    `pre_nms`): on macOS only the final boxes are judged, the MIL reference judges both.
    """

    verified_by = "coreml-runtime"

    def __init__(self, path: Path, compute_units: str = "CPU_ONLY") -> None:
        import coremltools as ct

        self.model = ct.models.MLModel(str(path), compute_units=getattr(ct.ComputeUnit, compute_units))
        spec = self.model.get_spec()
        self.input_names = [i.name for i in spec.description.input]
        self.output_names = [o.name for o in spec.description.output]
        self._image_input = spec.description.input[0].type.WhichOneof("Type") == "imageType"
        self._labels = _class_labels(spec)
        self._probs_name = spec.description.predictedProbabilitiesName
        self._vision = spec.WhichOneof("Type") == "pipeline"

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        x = np.asarray(inputs["image"], dtype=np.float32)
        extra = {k: v for k, v in inputs.items() if k != "image"}  # a pipeline's threshold overrides
        per_image = [self._predict_one(x[i : i + 1], extra) for i in range(x.shape[0])]
        if self._vision and len(per_image) > 1:
            raise ExportError("the CoreML runtime runner takes one image per call for a Vision pipeline")
        return {k: np.concatenate([p[k] for p in per_image]) for k in per_image[0]}

    def _predict_one(self, x: np.ndarray, extra: dict[str, Any]) -> dict[str, np.ndarray]:
        if self._image_input:
            from PIL import Image

            # CoreML reorders RGB -> BGR itself when the input's colour layout is BGR.
            pixels = np.clip(np.rint(x[0].transpose(1, 2, 0)), 0, 255).astype(np.uint8)
            feed: Any = Image.fromarray(pixels)  # uint8 [H, W, 3] is an RGB image
        else:
            feed = x
        out = self.model.predict({"image": feed, **{k: float(np.asarray(v).reshape(-1)[0]) for k, v in extra.items()}})
        result: dict[str, np.ndarray] = {}
        for name, value in out.items():
            if name == self._probs_name and isinstance(value, dict):
                result[name] = np.array([[value[label] for label in self._labels]], dtype=np.float32)
            elif isinstance(value, np.ndarray):
                result[name] = value
        if self._vision:
            result.update(as_detections(result[VISION_OUTPUTS[0]], result[VISION_OUTPUTS[1]]))
        return result


TARGET = CoreMLTarget()
