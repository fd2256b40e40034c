"""CoreML multi-size packages: one fixed-shape function per (config, size), or EnumeratedShapes.

Functions (iOS 18 / macOS 15): each (config, size) is exported as the single-size ML Program
(target.py), then `ct.utils.save_multifunction` puts them in one package; its
const-deduplication stores a weight once when the blobs are byte-identical, which fp16
conversions of the same weights at different sizes are (checked per export: the report's
`weight_blobs_identical`). Each function's program text is then compacted (exporters/targets/coreml/compact.py:
repeated constants dropped, short value names), as it is stored once per function. Every function keeps a fixed shape, which the Neural Engine wants:
flexible shapes ran at 0% ANE (RangeDim) or 2-77% (EnumeratedShapes), coremltools#2370, #1029.

Enumerated (`--coreml-shapes enumerated`, iOS 16-17): one function whose image input takes each
listed size (`ct.EnumeratedShapes`), traced from a size-generic copy of the network
(dynamic_shapes.py).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mvit.models.facts import resizes_at

from ... import api
from ...base import ExportError, ExportRequest, Runner
from ...dynamic_shapes import for_every_size, size_generic
from ...multisize import ENUMERATED_KEY, FUNCTIONS_KEY, SizedExport
from ...stages import artefact_size_bytes, build_for_target, export_request
from ...tasks import get_task
from .compact import compact_program
from .reference import MilReferenceRunner
from .reference.evaluator import ProgramEvaluator
from .reference.loader import ImageInput, LoadedPackage, _classifier, _image_inputs, _quiet_import_coremltools
from .target import (
    TARGET,
    CoreMLRuntimeRunner,
    _class_labels,
    _fold_channel_scale,
    _image_normalisation,
    _make_package_deterministic,
    _metadata,
    _rename_probabilities,
    classifier_config,
    classifier_tensor_names,
    interface_tensor_types,
    minimum_deployment_target,
)

_MODEL_FILE = Path("Data") / "com.apple.CoreML" / "model.mlmodel"
_WEIGHTS_FILE = Path("Data") / "com.apple.CoreML" / "weights" / "weight.bin"


def write_functions(entries: list[SizedExport], path: Path, staging: Path, precision: str) -> dict[str, Any]:
    """One package at `path`, one function per entry, named entry.name, the first the default."""
    import coremltools as ct

    parts = staging / "functions"
    singles = [api.export_prepared(e.prepared, TARGET, parts, precision=precision, verify=False).path for e in entries]
    desc = ct.utils.MultiFunctionDescriptor()
    for entry, single in zip(entries, singles):
        desc.add_function(str(single), "main", entry.name)
    desc.default_function_name = entries[0].name
    combined = parts / "combined.mlpackage"  # coremltools wants the .mlpackage suffix
    ct.utils.save_multifunction(desc, str(combined))
    first = _read_spec(singles[0])
    spec = _read_spec(combined)
    meta = spec.description.metadata
    meta.CopyFrom(first.description.metadata)
    meta.userDefined[FUNCTIONS_KEY] = json.dumps([e.as_entry() for e in entries])
    deployment_target = minimum_deployment_target(spec)  # several functions: iOS 18 at least
    meta.userDefined["minimum_deployment_target"] = deployment_target
    # Weights are shared but the program is repeated per function. The compaction changes no
    # computation, and multisize verifies each function of the package as compacted here.
    compact_program(spec.mlProgram)
    (combined / _MODEL_FILE).write_bytes(spec.SerializeToString(deterministic=True))
    _make_package_deterministic(combined)
    shutil.move(str(combined), str(path))
    blobs = {hashlib.sha256((s / _WEIGHTS_FILE).read_bytes()).hexdigest() for s in singles}
    return {"single_size_bytes": artefact_size_bytes(singles[0]), "weight_blobs_identical": len(blobs) == 1, "deployment_target": deployment_target}


def write_enumerated(entries: list[SizedExport], path: Path, precision: str) -> dict[str, Any]:
    """One function whose image input takes every entry's size (EnumeratedShapes, iOS 16)."""
    import coremltools as ct

    first = entries[0].prepared
    target = TARGET
    opts = first.options["coreml"]
    built, _ = build_for_target(first.resolved, first.fused, for_every_size(target), opts)
    request = export_request(first.resolved, built, precision, opts, target)
    sizes = [e.image_size for e in entries]
    shapes = ct.EnumeratedShapes(shapes=[[1, 3, s, s] for s in sizes], default=[1, 3, sizes[0], sizes[0]])
    if request.preprocess.get("raw_input"):
        image: Any = ct.TensorType(name="image", shape=shapes, dtype=np.float32)
    else:
        scale, bias, _ = _image_normalisation(request)
        layout = {"RGB": ct.colorlayout.RGB, "BGR": ct.colorlayout.BGR}[request.preprocess.get("channel_order", "RGB")]
        image = ct.ImageType(name="image", shape=shapes, scale=scale, bias=[float(b) for b in bias], color_layout=layout)
    example = torch.rand(request.input_shape, generator=torch.Generator().manual_seed(0))
    with size_generic(_fold_channel_scale(request), resizes_at(first.fused, sizes)) as generic, torch.no_grad():
        traced = torch.jit.trace(generic, example)
    names = classifier_tensor_names(request.task, list(request.output_names))
    mlmodel = ct.convert(
        traced,
        convert_to="mlprogram",
        inputs=[image],
        outputs=interface_tensor_types(traced, example, names),
        classifier_config=classifier_config(request.task, request.labels, names),
        minimum_deployment_target=ct.target.iOS16,
        compute_precision=ct.precision.FLOAT16 if precision == "fp16" else ct.precision.FLOAT32,
    )
    request.metadata[ENUMERATED_KEY] = json.dumps(sizes)
    _save_like_single_size(mlmodel, request, path)
    return {"enumerated_sizes": sizes}


def _save_like_single_size(mlmodel: Any, request: ExportRequest, path: Path) -> None:
    """The finishing steps of CoreMLTarget.export (probabilities name, metadata, deterministic bytes)."""

    if get_task(request.task).classifier:
        mlmodel = _rename_probabilities(mlmodel, request.output_names[0])
    mlmodel.author = "mvit"
    mlmodel.license = "Weights: see the licence of the checkpoint they came from."
    mlmodel.short_description = f"{request.model_name} ({request.task}), exported by mvit"
    mlmodel.version = request.metadata.get("mvit_version", "")
    user = mlmodel.user_defined_metadata
    user.pop("com.github.apple.coremltools.conversion_date", None)
    for key, value in _metadata(request, mlmodel.get_spec()).items():
        user[key] = value
    package = path.parent / f".{path.name}.staging.mlpackage"
    shutil.rmtree(package, ignore_errors=True)
    try:
        mlmodel.save(str(package))
        _make_package_deterministic(package)
        package.rename(path)
    finally:
        shutil.rmtree(package, ignore_errors=True)


def _read_spec(package: Path) -> Any:
    from coremltools.proto import Model_pb2

    spec = Model_pb2.Model()
    spec.ParseFromString((package / _MODEL_FILE).read_bytes())
    return spec


def function_runner(path: Path, function_name: str | None, image_size: int, verifier: str = "auto") -> Runner:
    """A runner of one function of a multifunction package (or, for `function_name=None`, the
    enumerated package's one function at `image_size`)."""
    use_runtime = verifier == "coreml-runtime" or (verifier == "auto" and sys.platform == "darwin")
    if verifier == "both":
        raise ExportError("--verifier both is not available for multi-size packages yet; use coreml-runtime or mil-reference")
    if use_runtime:
        return _RuntimeFunctionRunner(Path(path), function_name)
    return _mil_function_runner(Path(path), function_name, image_size)


def _mil_function_runner(path: Path, function_name: str | None, image_size: int) -> Runner:

    if function_name is None:
        runner = MilReferenceRunner(path, num_threads=1)
        # EnumeratedShapes: the description holds the default size; the program takes each listed one.
        runner.package.images = {n: ImageInput(i.name, i.color_space, image_size, image_size) for n, i in runner.package.images.items()}
        runner._evaluator = _SymbolicShapeEvaluator(runner.package.program, True)
        return runner
    load_spec, load_milproto = _quiet_import_coremltools()
    spec = load_spec(str(path))
    described = {f.name: f for f in spec.description.functions}
    if function_name not in described:
        raise ExportError(f"{path} has no function {function_name!r} (it has {sorted(described)}); re-export it")
    program = load_milproto(spec, spec.specificationVersion, str(path / _WEIGHTS_FILE.parent))
    function = described[function_name]
    as_model = types.SimpleNamespace(description=function)  # what the loader reads a description from
    package = LoadedPackage(
        path=path,
        spec=spec,
        program=types.SimpleNamespace(functions={"main": program.functions[function_name]}),
        input_names=[f.name for f in function.input],
        output_names=[f.name for f in function.output],
        images=_image_inputs(as_model),
        classifier=_classifier(as_model),
        optional_inputs=frozenset(f.name for f in function.input if f.type.isOptional),
    )
    runner = MilReferenceRunner.__new__(MilReferenceRunner)
    runner.package, runner.fp16_emulation, runner.num_threads = package, True, 1
    runner._evaluator = ProgramEvaluator(package.program, True)
    runner.input_names, runner.output_names = list(package.input_names), list(package.output_names)
    return runner


class _RuntimeFunctionRunner(CoreMLRuntimeRunner):
    """Apple's runtime on one function (macOS 15+): `MLModel(path, function_name=...)`."""

    def __init__(self, path: Path, function_name: str | None, compute_units: str = "CPU_ONLY") -> None:
        import coremltools as ct

        self.model = ct.models.MLModel(str(path), compute_units=getattr(ct.ComputeUnit, compute_units), function_name=function_name)
        spec = self.model.get_spec()
        description = next((f for f in spec.description.functions if f.name == function_name), spec.description)
        self.input_names = [i.name for i in description.input]
        self.output_names = [o.name for o in description.output]
        self._image_input = description.input[0].type.WhichOneof("Type") == "imageType"

        self._labels = _class_labels(spec)
        self._probs_name = description.predictedProbabilitiesName
        self._vision = False


def _symbolic_shape_evaluator() -> type:

    class SymbolicShapeEvaluator(ProgramEvaluator):
        """The reference evaluator for a program with flexible shapes, whose shape arithmetic
        builds a reshape target by concatenating scalar sizes (`concat` of 0-d values into a
        [4] tensor, as coremltools writes it); torch.cat refuses 0-d tensors, so they are read as [1]."""

        def _run_op(self, op: Any, env: dict[str, Any]) -> None:
            if op.op_type == "concat":
                values = [self._lookup(v, env) for v in op.inputs["values"]]
                if any(isinstance(v, torch.Tensor) and v.dim() == 0 for v in values):
                    joined = torch.cat([torch.as_tensor(v).reshape(-1) for v in values])
                    env[op.outputs[0].name] = self._store(op.outputs[0], joined)
                    return
            super()._run_op(op, env)

    return SymbolicShapeEvaluator


def _SymbolicShapeEvaluator(program: Any, fp16_emulation: bool) -> Any:  # noqa: N802 (builds the class lazily)
    return _symbolic_shape_evaluator()(program, fp16_emulation)


class CoreMLMultiSize:
    """One fixed-shape function per (config, size) (iOS 18), or one EnumeratedShapes function (iOS 16-17)."""

    def write(self, entries: list[SizedExport], path: Path, staging: Path, precision: str, form: str) -> dict[str, Any]:
        if form == "functions":
            return write_functions(entries, path, staging, precision)
        if form == "enumerated":
            return write_enumerated(entries, path, precision)
        raise ExportError(f"CoreML writes several sizes as functions or enumerated shapes, not as {form!r}")

    def runner(self, path: Path, form: str, verifier: str) -> Callable[[dict[str, Any]], Runner]:
        return lambda entry: function_runner(path, entry["name"] if form == "functions" else None, entry["image_size"], verifier)
