"""Read a saved .mlpackage back into a MIL program, without the macOS Core ML runtime.

coremltools' own MIL proto loader (converters/mil/frontend/milproto/load.py) rebuilds the program
and reads the weights from Data/com.apple.CoreML/weights/weight.bin, so the program evaluated here
is exactly the one the package holds. The model description supplies what the program itself does
not: which inputs are images (and their channel order) and the classifier wrapper.

A pipeline (mvit's Vision-ready detector) is read as its ML Program stage plus the
NonMaximumSuppression model after it (nms_model.py runs that one); no other pipeline is accepted.
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..validate import read_package_spec
from .errors import MilReferenceError
from .nms_model import NmsModel, read_nms_model


@dataclass(frozen=True)
class ImageInput:
    name: str
    color_space: str  # "RGB" | "BGR" | "GRAYSCALE" (Core ML's ImageFeatureType.ColorSpace)
    height: int
    width: int


@dataclass(frozen=True)
class ClassifierOutputs:
    label_name: str  # spec.description.predictedFeatureName
    probabilities_name: str  # spec.description.predictedProbabilitiesName


@dataclass
class LoadedPackage:
    path: Path
    spec: object  # coremltools.proto.Model_pb2.Model
    program: Any  # coremltools.converters.mil.mil.Program
    input_names: list[str]
    output_names: list[str]
    images: dict[str, ImageInput]
    classifier: ClassifierOutputs | None
    nms: NmsModel | None = None  # the pipeline's NonMaximumSuppression stage, run after the program
    optional_inputs: frozenset[str] = frozenset()  # inputs a caller may leave out (NMS thresholds)


def _quiet_import_coremltools():
    # coremltools prints a line per missing macOS library and a torch-version warning on import;
    # none of it matters for reading a package.
    logging.getLogger("coremltools").setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            warnings.simplefilter("ignore")
            import coremltools  # noqa: F401
            from coremltools.converters.mil.frontend.milproto.load import load as load_milproto
    except ImportError:
        raise MilReferenceError("reading .mlpackage files needs coremltools: pip install 'mvit[coreml]'") from None
    # Not coremltools' load_spec: its package reader rewrites Manifest.json, and a package that
    # is checked must only be read.

    return read_package_spec, load_milproto


def load_package(path: str | Path) -> LoadedPackage:
    path = Path(path)
    if not path.exists():
        raise MilReferenceError(f"{path}: no such file; pass the path of a saved .mlpackage")
    if not (path.is_dir() and path.suffix == ".mlpackage"):
        raise MilReferenceError(f"{path}: not an .mlpackage folder; ML Programs are saved as .mlpackage")
    load_spec, load_milproto = _quiet_import_coremltools()
    try:
        spec = load_spec(str(path))
    except Exception as exc:  # a corrupt manifest or protobuf
        raise MilReferenceError(f"{path}: cannot read the package ({exc}); re-export it") from exc
    program_spec, nms = _stages(path, spec)
    weights = path / "Data" / "com.apple.CoreML" / "weights"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            program = load_milproto(program_spec, program_spec.specificationVersion, str(weights))
    except Exception as exc:  # a truncated weight.bin or a program coremltools cannot parse
        raise MilReferenceError(f"{path}: cannot read the program or its weights ({exc.__class__.__name__}); re-export it") from exc
    if "main" not in program.functions:
        raise MilReferenceError(f"{path}: the ML Program has no 'main' function; re-export it")
    return LoadedPackage(
        path=path,
        spec=spec,
        program=program,
        input_names=[f.name for f in spec.description.input],
        output_names=[f.name for f in spec.description.output],
        images=_image_inputs(program_spec),
        classifier=_classifier(spec),
        nms=nms,
        optional_inputs=frozenset(f.name for f in spec.description.input if f.type.isOptional),
    )


def _stages(path: Path, spec: Any) -> tuple[Any, NmsModel | None]:
    """(the ML Program spec, the NMS stage or None): a single ML Program, or a pipeline of an ML
    Program followed by a NonMaximumSuppression model that reads the program's outputs."""
    kind = spec.WhichOneof("Type")
    if kind == "mlProgram":
        return spec, None
    stages = list(spec.pipeline.models) if kind == "pipeline" else []
    kinds = [s.WhichOneof("Type") for s in stages]
    if kinds != ["mlProgram", "nonMaximumSuppression"]:
        what = f"a pipeline of {kinds}" if kind == "pipeline" else f"a Core ML {kind!r} model"
        raise MilReferenceError(
            f"{path}: holds {what}; the reference evaluator runs ML Programs, alone or followed by a "
            "NonMaximumSuppression model (convert with convert_to='mlprogram')"
        )
    program, nms_spec = stages
    versions = {spec.specificationVersion, program.specificationVersion, nms_spec.specificationVersion}
    if len(versions) > 1:
        raise MilReferenceError(
            f"{path}: the pipeline and its models declare different specification versions {sorted(versions)}; Core ML refuses that, re-export it"
        )
    nms = read_nms_model(nms_spec)
    produced = {o.name for o in program.description.output}
    missing = sorted({nms.confidence_input, nms.coordinates_input} - produced)
    if missing:
        raise MilReferenceError(f"{path}: the NonMaximumSuppression model reads {missing}, which the ML Program does not output; re-export it")
    return program, nms


def _image_inputs(spec) -> dict[str, ImageInput]:
    from coremltools.proto import FeatureTypes_pb2

    names = {v: k for k, v in FeatureTypes_pb2.ImageFeatureType.ColorSpace.items()}
    images = {}
    for feature in spec.description.input:
        if feature.type.WhichOneof("Type") == "imageType":
            t = feature.type.imageType
            images[feature.name] = ImageInput(feature.name, names[t.colorSpace], t.height, t.width)
    return images


def _classifier(spec) -> ClassifierOutputs | None:
    d = spec.description
    if not d.predictedFeatureName:
        return None
    return ClassifierOutputs(d.predictedFeatureName, d.predictedProbabilitiesName)
