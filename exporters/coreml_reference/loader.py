"""Read a saved .mlpackage back into a MIL program, without the macOS Core ML runtime.

coremltools' own MIL proto loader (converters/mil/frontend/milproto/load.py) rebuilds the program
and reads the weights from Data/com.apple.CoreML/weights/weight.bin, so the program evaluated here
is exactly the one the package holds. The model description supplies what the program itself does
not: which inputs are images (and their channel order) and the classifier wrapper.
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import MilReferenceError


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


def _quiet_import_coremltools():
    # coremltools prints a line per missing macOS library and a torch-version warning on import;
    # none of it matters for reading a package.
    logging.getLogger("coremltools").setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            warnings.simplefilter("ignore")
            import coremltools  # noqa: F401
            from coremltools.converters.mil.frontend.milproto.load import load as load_milproto
            from coremltools.models.utils import load_spec
    except ImportError:
        raise MilReferenceError("reading .mlpackage files needs coremltools: pip install 'mvit[coreml]'") from None
    return load_spec, load_milproto


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
    kind = spec.WhichOneof("Type")
    if kind != "mlProgram":
        raise MilReferenceError(
            f"{path}: holds a Core ML {kind!r} model; the reference evaluator runs ML Programs only "
            "(convert with convert_to='mlprogram')"
        )
    weights = path / "Data" / "com.apple.CoreML" / "weights"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            program = load_milproto(spec, spec.specificationVersion, str(weights))
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
        images=_image_inputs(spec),
        classifier=_classifier(spec),
    )


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
