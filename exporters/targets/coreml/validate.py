"""Structural rules a saved CoreML package must keep for Apple's compiler to accept it.

No Mac runs here, so each package is checked against the rules Apple publishes: the Model.proto
and MIL.proto contracts, the checks of coremltools' C++ validators (mlmodel/src/Validation), the
op availability per iOS version (coremltools' MIL op registry), and, for the Vision detector,
Core ML's NonMaximumSuppression model. One rule is one small function registered under a name
(`mil.unique-output-names`); a violation names its rule in the report and in the failure line.

The package is only read: the spec is parsed from the file the manifest names, nothing is saved.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mvit.reading import check_regular_tree

from ...checks import Check, check

# Model.proto specificationVersion -> the OS release that first reads it.
SPEC_TO_IOS = {4: 13, 5: 14, 6: 15, 7: 16, 8: 17, 9: 18}
# MIL function opsets and the specification version each needs (MIL.proto: CoreML5 = iOS15...).
OPSET_SPEC = {"CoreML5": 6, "CoreML6": 7, "CoreML7": 8, "CoreML8": 9}
ML_PROGRAM_MIN_SPEC = 6
MULTIFUNCTION_MIN_SPEC = 9
FP16_FEATURE_MIN_SPEC = 7
NMS_FLOAT32_MIN_SPEC = 5  # before iOS 14 the NMS model's arrays had to be DOUBLE
# Core ML's NonMaximumSuppression model drops or misplaces boxes unless the class axis is a
# multiple of this (ultralytics#22309, coremltools#2158).
NMS_CLASS_MULTIPLE = 80
DEPLOYMENT_KEY = "minimum_deployment_target"

_ARRAY = {65568: "FLOAT32", 65600: "DOUBLE", 131104: "INT32", 131080: "INT8", 65552: "FLOAT16"}
_MIL_TO_ARRAY = {10: 65552, 11: 65568, 12: 65600, 23: 131104, 21: 131080}
_FLOAT16_ARRAY, _FLOAT32_ARRAY, _DOUBLE_ARRAY = 65552, 65568, 65600
_GRAYSCALE_FLOAT16 = 40


def deployment_target_description(spec_version: int) -> str:
    """The OS releases a specification version needs, as the metadata records them."""
    ios = SPEC_TO_IOS.get(spec_version, 18)
    return f"iOS{ios} / macOS{ios - 3} / watchOS{ios - 7} / tvOS{ios}"


def declared_ios(description: str) -> int | None:
    """17 from "iOS17 / macOS14 / ...", None when it names no iOS version."""
    head = description.split("/")[0].strip()
    if head.startswith("iOS") and head[3:].isdigit():
        return int(head[3:])
    return None


@dataclass(frozen=True)
class Violation:
    rule: str
    where: str  # the model, function, block or feature it was found in
    detail: str

    def __str__(self) -> str:
        return f"{self.rule}: {self.where}: {self.detail}"


@dataclass
class Validation:
    """Every rule that applied, its violations, and what the program needs."""

    rules: list[str] = field(default_factory=list)
    violations: list[Violation] = field(default_factory=list)
    required_spec: int = ML_PROGRAM_MIN_SPEC
    specification_version: int = 0

    def checks(self) -> list[Check]:
        """One report check per rule (the shape graph_checks uses), the first violation as detail."""
        out = []
        for rule in self.rules:
            found = [v for v in self.violations if v.rule == rule]
            detail = f"{found[0].where}: {found[0].detail}" + (f" (and {len(found) - 1} more)" if len(found) > 1 else "") if found else None
            out.append(check(f"coreml-structure:{rule}", len(found), 0, at_least=False, detail=detail))
        return out

    def summary(self) -> dict[str, Any]:
        return {
            "rules": list(self.rules),
            "violations": [str(v) for v in self.violations],
            "specification_version": self.specification_version,
            "required_deployment_target": deployment_target_description(self.required_spec),
        }


# --- reading ---------------------------------------------------------------------------------


def read_package_spec(path: Path) -> Any:
    """The Model proto of a .mlpackage, parsed from the file its manifest names (read only)."""
    from coremltools.proto import Model_pb2

    path = Path(path)
    check_regular_tree(path, "every item in a .mlpackage")  # before any reader (ours or coremltools') opens a file in it
    manifest = json.loads((path / "Manifest.json").read_text())
    entry = manifest["itemInfoEntries"][manifest["rootModelIdentifier"]]
    spec = Model_pb2.Model()
    spec.ParseFromString((path / "Data" / entry["path"]).read_bytes())
    return spec


@dataclass(frozen=True)
class _Model:
    """One model of the package (the package itself, or a pipeline stage) and where it sits."""

    spec: Any
    where: str
    top: bool  # the package's own model (a pipeline's stages are not)


def _models(spec: Any) -> list[_Model]:
    models = [_Model(spec, "model", True)]
    if spec.WhichOneof("Type") == "pipeline":
        models += [_Model(s, f"pipeline stage {i} ({s.WhichOneof('Type')})", False) for i, s in enumerate(spec.pipeline.models)]
    return models


def _programs(spec: Any) -> list[_Model]:
    return [m for m in _models(spec) if m.spec.WhichOneof("Type") == "mlProgram"]


def _blocks(function: Any) -> Iterator[tuple[str, Any]]:
    yield from function.block_specializations.items()


def _function_blocks(spec: Any) -> Iterator[tuple[str, set[str], Any]]:
    """(where, the function's input names, block) for every function body of every program."""
    for m in _programs(spec):
        for fname, function in m.spec.mlProgram.functions.items():
            for opset, block in _blocks(function):
                yield f"{m.where} function '{fname}' ({opset})", {i.name for i in function.inputs}, block


def _walk_ops(block: Any) -> Iterator[Any]:
    for op in block.operations:
        yield op
        for inner in op.blocks:
            yield from _walk_ops(inner)


def _argument_names(op: Any) -> Iterator[tuple[str, str]]:
    for param, argument in op.inputs.items():
        for binding in argument.arguments:
            if binding.WhichOneof("binding") == "name":
                yield param, binding.name


def _features(description: Any) -> Iterator[tuple[str, Any]]:
    """(where, feature) for every input and output, per function in a multifunction model."""
    for kind, features in (("input", description.input), ("output", description.output)):
        for f in features:
            yield f"{kind} '{f.name}'", f
    for function in description.functions:
        for kind, features in (("input", function.input), ("output", function.output)):
            for f in features:
                yield f"function '{function.name}' {kind} '{f.name}'", f


def _array_type(feature: Any) -> int | None:
    t = feature.type
    return int(t.multiArrayType.dataType) if t.WhichOneof("Type") == "multiArrayType" else None


def _type_name(feature_type: Any) -> str:
    kind = feature_type.WhichOneof("Type") or "unset"
    if kind == "multiArrayType":
        return f"MultiArray<{_ARRAY.get(feature_type.multiArrayType.dataType, feature_type.multiArrayType.dataType)}>"
    return kind


# --- rules -----------------------------------------------------------------------------------

Rule = Callable[[Any], Iterator[Violation]]
RULES: dict[str, Rule] = {}
# Rules that apply only to some packages: name -> which (a predicate on the top-level spec).
_APPLIES: dict[str, Callable[[Any], bool]] = {}


def rule(name: str, applies: Callable[[Any], bool] = lambda spec: True) -> Callable[[Rule], Rule]:
    def register(fn: Rule) -> Rule:
        RULES[name] = fn
        _APPLIES[name] = applies
        return fn

    return register


def _has_program(spec: Any) -> bool:
    return bool(_programs(spec))


def _is_multifunction(spec: Any) -> bool:
    return bool(spec.description.functions) or len(_program_functions(spec)) > 1


def _program_functions(spec: Any) -> list[str]:
    return [name for m in _programs(spec) for name in m.spec.mlProgram.functions]


def _is_pipeline(spec: Any) -> bool:
    return spec.WhichOneof("Type") == "pipeline"


def _has_nms(spec: Any) -> bool:
    return any(m.spec.WhichOneof("Type") == "nonMaximumSuppression" for m in _models(spec))


@rule("mil.unique-output-names", _has_program)
def unique_output_names(spec: Any) -> Iterator[Violation]:
    """MIL.proto: a value is named once in its scope (SSA); a nested block sees its parents' names."""
    for where, inputs, block in _function_blocks(spec):
        yield from _unique_in(block, inputs, where)


def _unique_in(block: Any, outer: set[str], where: str) -> Iterator[Violation]:
    seen = set(outer) | {i.name for i in block.inputs}
    for op in block.operations:
        for out in op.outputs:
            if out.name in seen:
                yield Violation("mil.unique-output-names", where, f"'{out.name}' (output of a {op.type} op) is already bound in this scope")
            seen.add(out.name)
        for inner in op.blocks:
            yield from _unique_in(inner, seen, where)


@rule("mil.defined-before-use", _has_program)
def defined_before_use(spec: Any) -> Iterator[Violation]:
    """Every op input and block output names a function input or an earlier op's output."""
    for where, inputs, block in _function_blocks(spec):
        yield from _defined_in(block, inputs, where)


def _defined_in(block: Any, outer: set[str], where: str) -> Iterator[Violation]:
    defined = set(outer) | {i.name for i in block.inputs}
    for op in block.operations:
        for param, name in _argument_names(op):
            if name not in defined:
                yield Violation("mil.defined-before-use", where, f"a {op.type} op reads '{name}' ({param}) before anything defines it")
        for inner in op.blocks:
            yield from _defined_in(inner, defined, where)
        defined.update(o.name for o in op.outputs)
    for name in block.outputs:
        if name not in defined:
            yield Violation("mil.defined-before-use", where, f"block output '{name}' is never defined")


@rule("model.function-io-matches-description", _has_program)
def function_io_matches_description(spec: Any) -> Iterator[Violation]:
    """The program's function inputs and outputs are the model description's, by name and in
    order; a multi-array output has the element type the description states."""
    for m in _programs(spec):
        described = {f.name: f for f in m.spec.description.functions}
        for fname, function in m.spec.mlProgram.functions.items():
            description = described.get(fname, m.spec.description)
            where = f"{m.where} function '{fname}'"
            declared_in = [f.name for f in description.input]
            program_in = [i.name for i in function.inputs]
            if declared_in != program_in:
                yield Violation("model.function-io-matches-description", where, f"inputs {program_in} but the description declares {declared_in}")
            types = {o.name: o.type for _, b in _blocks(function) for op in _walk_ops(b) for o in op.outputs}
            for opset, block in _blocks(function):
                declared_out = [f.name for f in description.output]
                if list(block.outputs) != declared_out:
                    yield Violation(
                        "model.function-io-matches-description",
                        f"{where} ({opset})",
                        f"outputs {list(block.outputs)} but the description declares {declared_out}",
                    )
                for feature in description.output:
                    want = _array_type(feature)
                    value = types.get(feature.name)
                    if want is None or value is None or value.WhichOneof("type") != "tensorType":
                        continue
                    got = _MIL_TO_ARRAY.get(int(value.tensorType.dataType))
                    if got != want:
                        yield Violation(
                            "model.function-io-matches-description",
                            f"{where} ({opset})",
                            f"output '{feature.name}' is {_ARRAY.get(got or 0, 'another type')} in the program but {_ARRAY.get(want, want)} in the description",
                        )


@rule("model.fp16-features-need-spec7")
def fp16_features_need_spec7(spec: Any) -> Iterator[Violation]:
    """FLOAT16 multi-arrays and GRAYSCALE_FLOAT16 images are read from specification version 7 on."""
    for m in _models(spec):
        if m.spec.specificationVersion >= FP16_FEATURE_MIN_SPEC:
            continue
        for where, feature in _features(m.spec.description):
            fp16 = _array_type(feature) == _FLOAT16_ARRAY or (
                feature.type.WhichOneof("Type") == "imageType" and feature.type.imageType.colorSpace == _GRAYSCALE_FLOAT16
            )
            if fp16:
                yield Violation("model.fp16-features-need-spec7", f"{m.where} {where}", f"FLOAT16 at specification version {m.spec.specificationVersion}")


@rule("mvit.fp32-interface")
def fp32_interface(spec: Any) -> Iterator[Violation]:
    """mvit's promise (docs/exporting-coreml.md): every floating-point array an app hands in or
    reads out is FLOAT32, whatever precision the program computes in."""
    for where, feature in _features(spec.description):
        if _array_type(feature) in (_FLOAT16_ARRAY, _DOUBLE_ARRAY):
            yield Violation("mvit.fp32-interface", where, f"{_type_name(feature.type)}, not MultiArray<FLOAT32>")


def required_spec(spec: Any) -> tuple[int, list[str]]:
    """The lowest specification version the package's programs need, and why: each op's first
    opset in coremltools' MIL registry, each function's opset, and 9 for several functions."""
    available = _op_availability()
    need, reasons = ML_PROGRAM_MIN_SPEC, []
    for m in _programs(spec):
        for fname, function in m.spec.mlProgram.functions.items():
            opset_need = OPSET_SPEC.get(function.opset, ML_PROGRAM_MIN_SPEC)
            if opset_need > need:
                need, reasons = opset_need, [f"function '{fname}' opset {function.opset}"]
            for _, block in _blocks(function):
                for op in _walk_ops(block):
                    op_need = max(available.get(op.type, ML_PROGRAM_MIN_SPEC), ML_PROGRAM_MIN_SPEC)
                    if op_need > need:
                        need, reasons = op_need, []
                    if op_need == need and op_need > ML_PROGRAM_MIN_SPEC and len(reasons) < 3 and op.type not in reasons:
                        reasons.append(op.type)
    if _is_multifunction(spec) and need < MULTIFUNCTION_MIN_SPEC:
        need, reasons = MULTIFUNCTION_MIN_SPEC, ["several functions"]
    return need, reasons


_REGISTRY: dict[str, int] = {}


def _op_availability() -> dict[str, int]:
    """op type -> the first specification version whose MIL opset defines it."""
    if not _REGISTRY:
        from coremltools.converters.mil.mil.ops.registry import SSAOpRegistry

        for name, versions in SSAOpRegistry.core_ops.items():
            _REGISTRY[name] = min(int(v.value) for v in versions)
    return _REGISTRY


@rule("mil.op-availability", _has_program)
def op_availability(spec: Any) -> Iterator[Violation]:
    """Every op exists in the opset of the specification version the package declares (an iOS 17
    op such as `quantize` in a version-7 package is refused by iOS 16), and is a known MIL op."""
    available = _op_availability()
    for m in _programs(spec):
        version = m.spec.specificationVersion
        for fname, function in m.spec.mlProgram.functions.items():
            where = f"{m.where} function '{fname}'"
            if OPSET_SPEC.get(function.opset, 99) > version:
                yield Violation(
                    "mil.op-availability",
                    where,
                    f"opset {function.opset} needs specification version {OPSET_SPEC.get(function.opset, '?')}, the package declares {version}",
                )
            for _, block in _blocks(function):
                for op in _walk_ops(block):
                    first = available.get(op.type)
                    if first is None:
                        yield Violation("mil.op-availability", where, f"'{op.type}' is not a MIL op")
                    elif first > version:
                        yield Violation(
                            "mil.op-availability",
                            where,
                            f"'{op.type}' needs iOS {SPEC_TO_IOS.get(first, first)} (specification version {first}), the package declares version {version}",
                        )


@rule("mvit.declared-deployment-target")
def declared_deployment_target(spec: Any) -> Iterator[Violation]:
    """The `minimum_deployment_target` mvit records is at least what the ops and the
    specification version need (an app author reads it to choose the iOS version to support)."""
    declared = spec.description.metadata.userDefined.get(DEPLOYMENT_KEY)
    if declared is None:
        return
    ios = declared_ios(declared)
    need, reasons = required_spec(spec)
    need = max(need, spec.specificationVersion)
    if ios is None or ios < SPEC_TO_IOS.get(need, 18):
        because = f" ({', '.join(reasons)})" if reasons else f" (specification version {need})"
        yield Violation("mvit.declared-deployment-target", "metadata", f"declares {declared!r}, the program needs iOS {SPEC_TO_IOS.get(need, need)}{because}")


@rule("multifunction.spec-version", _is_multifunction)
def multifunction_spec_version(spec: Any) -> Iterator[Violation]:
    if spec.specificationVersion < MULTIFUNCTION_MIN_SPEC:
        yield Violation(
            "multifunction.spec-version",
            "model",
            f"several functions need specification version {MULTIFUNCTION_MIN_SPEC} (iOS 18), the package declares {spec.specificationVersion}",
        )


@rule("multifunction.default-function", _is_multifunction)
def multifunction_default_function(spec: Any) -> Iterator[Violation]:
    default = spec.description.defaultFunctionName
    described = [f.name for f in spec.description.functions]
    program = _program_functions(spec)
    if not default:
        yield Violation("multifunction.default-function", "model", "no defaultFunctionName")
    elif default not in described or default not in program:
        yield Violation("multifunction.default-function", "model", f"defaultFunctionName '{default}' is not among the functions {described}")
    if sorted(described) != sorted(program):
        yield Violation("multifunction.default-function", "model", f"the description lists functions {sorted(described)}, the program has {sorted(program)}")


@rule("multifunction.no-top-level-io", _is_multifunction)
def multifunction_no_top_level_io(spec: Any) -> Iterator[Violation]:
    d = spec.description
    if len(d.input) or len(d.output) or d.predictedFeatureName or d.predictedProbabilitiesName:
        yield Violation(
            "multifunction.no-top-level-io",
            "model",
            f"a multifunction description declares its inputs and outputs per function only (top level has {len(d.input)} inputs, {len(d.output)} outputs)",
        )


@rule("pipeline.feature-types", _is_pipeline)
def pipeline_feature_types(spec: Any) -> Iterator[Violation]:
    """Each stage's inputs are pipeline inputs or earlier stages' outputs of the same type, the
    pipeline's outputs come from a stage with the same type, and every stage declares the
    pipeline's specification version."""
    available = {f.name: f.type for f in spec.description.input}
    for i, stage in enumerate(spec.pipeline.models):
        where = f"pipeline stage {i} ({stage.WhichOneof('Type')})"
        if stage.specificationVersion != spec.specificationVersion:
            yield Violation(
                "pipeline.feature-types", where, f"specification version {stage.specificationVersion}, the pipeline declares {spec.specificationVersion}"
            )
        for feature in stage.description.input:
            source = available.get(feature.name)
            if source is None:
                if not feature.type.isOptional:
                    yield Violation("pipeline.feature-types", where, f"input '{feature.name}' is produced by nothing before it")
            elif not _same_type(source, feature.type):
                yield Violation("pipeline.feature-types", where, f"input '{feature.name}' is {_type_name(feature.type)}, given {_type_name(source)}")
        for feature in stage.description.output:
            available[feature.name] = feature.type
    for feature in spec.description.output:
        source = available.get(feature.name)
        if source is None or not _same_type(source, feature.type):
            given = "nothing" if source is None else _type_name(source)
            yield Violation("pipeline.feature-types", "pipeline", f"output '{feature.name}' is {_type_name(feature.type)}, its stage gives {given}")


def _same_type(a: Any, b: Any) -> bool:
    if a.WhichOneof("Type") != b.WhichOneof("Type"):
        return False
    if a.WhichOneof("Type") == "multiArrayType":
        return bool(a.multiArrayType.dataType == b.multiArrayType.dataType)
    if a.WhichOneof("Type") == "imageType":
        return bool(a.imageType.colorSpace == b.imageType.colorSpace)
    return True


def _nms_models(spec: Any) -> Iterator[_Model]:
    return (m for m in _models(spec) if m.spec.WhichOneof("Type") == "nonMaximumSuppression")


@rule("nms.feature-names", _has_nms)
def nms_feature_names(spec: Any) -> Iterator[Violation]:
    """Every input and output of the NMS model is one its *FeatureName fields name, and the
    confidence and coordinates features exist."""
    for m in _nms_models(spec):
        n = m.spec.nonMaximumSuppression
        inputs = [n.confidenceInputFeatureName, n.coordinatesInputFeatureName, n.iouThresholdInputFeatureName, n.confidenceThresholdInputFeatureName]
        outputs = [n.confidenceOutputFeatureName, n.coordinatesOutputFeatureName]
        for kind, features, named, required in (
            ("input", m.spec.description.input, inputs, inputs[:2]),
            ("output", m.spec.description.output, outputs, outputs),
        ):
            present = [f.name for f in features]
            for name in present:
                if name not in named:
                    yield Violation("nms.feature-names", m.where, f"{kind} '{name}' is named by no *FeatureName field")
            for name in required:
                if name not in present:
                    yield Violation("nms.feature-names", m.where, f"{kind} '{name}' is named but not described")


@rule("nms.threshold-types", _has_nms)
def nms_threshold_types(spec: Any) -> Iterator[Violation]:
    """Threshold inputs are Double; the default thresholds are in range (IoU 0..1, confidence >= 0)."""
    for m in _nms_models(spec):
        n = m.spec.nonMaximumSuppression
        for f in m.spec.description.input:
            if f.name in (n.iouThresholdInputFeatureName, n.confidenceThresholdInputFeatureName) and f.type.WhichOneof("Type") != "doubleType":
                yield Violation("nms.threshold-types", m.where, f"threshold input '{f.name}' is {_type_name(f.type)}, not Double")
        if not 0.0 <= n.iouThreshold <= 1.0:
            yield Violation("nms.threshold-types", m.where, f"iouThreshold {n.iouThreshold} is outside 0..1")
        if not n.confidenceThreshold >= 0.0:
            yield Violation("nms.threshold-types", m.where, f"confidenceThreshold {n.confidenceThreshold} is negative")


def _nms_arrays(m: _Model) -> dict[str, Any]:
    n = m.spec.nonMaximumSuppression
    ins = {f.name: f for f in m.spec.description.input}
    outs = {f.name: f for f in m.spec.description.output}
    found = {
        "input confidence": ins.get(n.confidenceInputFeatureName),
        "input coordinates": ins.get(n.coordinatesInputFeatureName),
        "output confidence": outs.get(n.confidenceOutputFeatureName),
        "output coordinates": outs.get(n.coordinatesOutputFeatureName),
    }
    return {k: v for k, v in found.items() if v is not None}


@rule("nms.array-types", _has_nms)
def nms_array_types(spec: Any) -> Iterator[Violation]:
    """Confidence and coordinates, in and out, are multi-arrays of one element type, FLOAT32 or
    DOUBLE (DOUBLE only before specification version 5)."""
    for m in _nms_models(spec):
        arrays = _nms_arrays(m)
        kinds = {name: _array_type(f) for name, f in arrays.items()}
        for name, kind in kinds.items():
            if kind is None:
                yield Violation("nms.array-types", m.where, f"{name} is {_type_name(arrays[name].type)}, not a MultiArray")
        dtypes = {k for k in kinds.values() if k is not None}
        if len(dtypes) > 1:
            yield Violation(
                "nms.array-types",
                m.where,
                "confidence and coordinates mix element types: " + ", ".join(f"{n} {_ARRAY.get(k or 0, k)}" for n, k in kinds.items()),
            )
        allowed = {_FLOAT32_ARRAY, _DOUBLE_ARRAY} if m.spec.specificationVersion >= NMS_FLOAT32_MIN_SPEC else {_DOUBLE_ARRAY}
        for kind in dtypes - allowed:
            yield Violation(
                "nms.array-types", m.where, f"element type {_ARRAY.get(kind, kind)} is not allowed here (specification version {m.spec.specificationVersion})"
            )


def _class_axis(m: _Model) -> tuple[int, int] | None:
    """(lowest, highest) size of the output confidence's class axis, None where undeclared."""
    out = _nms_arrays(m).get("output confidence")
    if out is None or _array_type(out) is None:
        return None
    array = out.type.multiArrayType
    if len(array.shape) == 2:
        return int(array.shape[1]), int(array.shape[1])
    ranges = array.shapeRange.sizeRanges
    if len(ranges) == 2:
        return int(ranges[1].lowerBound), int(ranges[1].upperBound)
    return None


@rule("nms.output-shapes", _has_nms)
def nms_output_shapes(spec: Any) -> Iterator[Violation]:
    """Outputs declare 2-D shapes (a shapeRange of two dimensions), both the same way, with the
    same range of boxes."""
    for m in _nms_models(spec):
        arrays = _nms_arrays(m)
        styles = []
        for name in ("output confidence", "output coordinates"):
            f = arrays.get(name)
            if f is None or _array_type(f) is None:
                continue
            array = f.type.multiArrayType
            flexible = array.WhichOneof("ShapeFlexibility")
            if flexible == "enumeratedShapes":
                yield Violation("nms.output-shapes", m.where, f"{name} uses enumerated shapes; only a shapeRange is allowed")
                continue
            dims = len(array.shapeRange.sizeRanges) if flexible == "shapeRange" else len(array.shape)
            if dims not in (0, 2) or (flexible == "shapeRange" and len(array.shape)):
                yield Violation("nms.output-shapes", m.where, f"{name} declares {dims} dimensions, not 2")
                continue
            rows = (
                (array.shapeRange.sizeRanges[0].lowerBound, array.shapeRange.sizeRanges[0].upperBound) if flexible == "shapeRange" else tuple(array.shape[:1])
            )
            styles.append((flexible or ("shape" if dims else "none"), rows))
        if len(styles) == 2 and styles[0] != styles[1]:
            yield Violation("nms.output-shapes", m.where, f"confidence and coordinates declare their boxes differently: {styles[0]} vs {styles[1]}")


@rule("nms.labels-in-class-range", _has_nms)
def nms_labels_in_class_range(spec: Any) -> Iterator[Violation]:
    """The class labels count is within the output confidence's class axis."""
    for m in _nms_models(spec):
        n = m.spec.nonMaximumSuppression
        which = n.WhichOneof("ClassLabels")
        count = len(getattr(n, which).vector) if which else 0
        axis = _class_axis(m)
        if count and axis is not None and not axis[0] <= count <= (axis[1] if axis[1] >= 0 else count):
            yield Violation("nms.labels-in-class-range", m.where, f"{count} class labels for a class axis of {axis[0]}..{axis[1]}")


@rule("nms.class-count-multiple-of-80", _has_nms)
def nms_class_count_multiple_of_80(spec: Any) -> Iterator[Violation]:
    """Core ML's NMS model gives wrong or missing boxes unless its class axis is a multiple of 80
    (ultralytics#22309, coremltools#2158): the confidence it reads must have such a width."""
    for m in _nms_models(spec):
        confidence = _nms_arrays(m).get("input confidence")
        shape = list(confidence.type.multiArrayType.shape) if confidence is not None else []
        width = int(shape[-1]) if shape else None
        if width is None:
            axis = _class_axis(m)
            width = axis[1] if axis else None
        if width is None or width <= 0 or width % NMS_CLASS_MULTIPLE:
            yield Violation("nms.class-count-multiple-of-80", m.where, f"the confidence's class axis is {width}, not a multiple of {NMS_CLASS_MULTIPLE}")


# --- running ---------------------------------------------------------------------------------


def validate_spec(spec: Any) -> Validation:
    """Every rule that applies to `spec`, run; the result lists them and their violations."""
    result = Validation(specification_version=int(spec.specificationVersion))
    for name, find_violations in RULES.items():
        if not _APPLIES[name](spec):
            continue
        result.rules.append(name)
        result.violations.extend(find_violations(spec))
    if _has_program(spec):
        result.required_spec = required_spec(spec)[0]
    return result


def validate_package(path: Path) -> Validation:
    """Validate a saved .mlpackage without writing to it."""
    return validate_spec(read_package_spec(path))
