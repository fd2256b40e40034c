"""The Vision-ready CoreML detector: an ML Program piped into a NonMaximumSuppression model.

Vision returns `VNRecognizedObjectObservation`s (labels, boxes) only for a Pipeline whose last
model is a NonMaximumSuppression model (the contract is coremltools' NonMaximumSuppression.proto);
a single ML Program with MIL NMS inside reaches an app as raw feature values.

The ML Program ends in `raw_confidence` [A, C] (softmax with the background column dropped) and
`raw_coordinates` [A, 4] (centre x, centre y, width, height, normalised), both fp32: fp16 arrays
are not valid NMS inputs before spec 7 (ultralytics#19953), and fp32 is what the proto describes
on every version. The stage outputs cannot share the pipeline's output names, hence `raw_`
(turicreate's convention). The NMS model picks the top box per class (`pickTop.perClass`), carries
the labels, takes optional `iouThreshold` / `confidenceThreshold` inputs, and returns
`confidence` [k, C] and `coordinates` [k, 4], k <= max_detections.

Core ML's NMS model gives wrong or missing boxes unless its class axis is a multiple of 80
(ultralytics#22309, coremltools#2158), so the foreground confidences are padded with zero columns
up to the next multiple of 80. A zero never wins a box's argmax over softmax confidences (all
above zero), so a padding class is never reported. The NMS model carries one label per column:
the real labels, then `padding_class_<column>` (nms_labels); the Xcode preview lists the same.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mvit.models.detection_postprocess import NmsSettings

from .nms import centre_size_and_foreground

CLASS_AXIS_MULTIPLE = 80
PADDING_LABEL = "padding_class_{}"
STAGE_OUTPUTS = ("raw_confidence", "raw_coordinates")
VISION_OUTPUTS = ("confidence", "coordinates")
THRESHOLD_INPUTS = ("iouThreshold", "confidenceThreshold")


def append_vision_outputs(program: Any) -> None:
    """Turn the traced detector's outputs (boxes [1,A,4] xyxy, probs [1,A,C+1]) into the two arrays
    the NMS model reads: foreground confidences [A,C] and centre/size coordinates [A,4]."""
    from coremltools.converters.mil import Builder as mb
    from coremltools.converters.mil.mil.scope import ScopeInfo, ScopeSource

    confidence_name, coordinates_name = STAGE_OUTPUTS
    function = program.functions["main"]
    # The torch frontend's validation wants every op to carry a torch module scope.
    scopes = (
        ScopeInfo(source=ScopeSource.TORCHSCRIPT_MODULE_TYPE, data=["VisionDetectorOutputs"]),
        ScopeInfo(source=ScopeSource.TORCHSCRIPT_MODULE_NAME, data=["vision_outputs"]),
    )
    with function, mb.scope(*scopes):
        boxes, probs = function.outputs
        centre_size, foreground = centre_size_and_foreground(mb, boxes, probs)
        coordinates = mb.squeeze(x=centre_size, axes=[0], name=coordinates_name)
        classes = int(probs.shape[-1]) - 1
        padding = padded_class_count(classes) - classes
        if padding:
            foreground = mb.pad(x=foreground, pad=np.array([0, padding], dtype=np.int32), mode="constant", constant_val=np.float32(0.0))
        confidence = mb.squeeze(x=foreground, axes=[0], name=confidence_name)
        function.set_outputs([confidence, coordinates])
        # The user-declared output types belonged to the traced outputs.
        function.output_types = None


def padded_class_count(classes: int) -> int:
    """The NMS model's class axis: `classes` rounded up to a multiple of 80."""
    return -(-classes // CLASS_AXIS_MULTIPLE) * CLASS_AXIS_MULTIPLE


def nms_labels(labels: list[str]) -> list[str]:
    """The NMS model's labels for a detector's labels (column 0, the background, dropped): the
    foreground labels, then one padding label per padded column."""
    foreground = list(labels)[1:]
    return foreground + [PADDING_LABEL.format(i) for i in range(len(foreground), padded_class_count(len(foreground)))]


def build_pipeline(program_model: Any, labels: list[str], settings: NmsSettings) -> Any:
    """ML Program + NonMaximumSuppression as one pipeline MLModel (weights stay the program's).

    `labels` are the NMS model's labels (nms_labels), one per confidence column.
    """
    import coremltools as ct
    from coremltools.models import datatypes
    from coremltools.models.pipeline import Pipeline

    stage = program_model.get_spec()
    # coremltools stamps the conversion date into the stage too; two exports must be identical.
    stage.description.metadata.userDefined.pop("com.github.apple.coremltools.conversion_date", None)
    outputs = {o.name: o for o in stage.description.output}
    num_classes = int(outputs[STAGE_OUTPUTS[0]].type.multiArrayType.shape[-1])
    if len(labels) != num_classes:
        raise ValueError(f"{len(labels)} labels for {num_classes} foreground classes")
    nms = _nms_spec(stage, labels, settings)

    # Placeholder feature types: the real descriptions are copied from the stages below.
    pipeline = Pipeline(
        input_features=[(stage.description.input[0].name, datatypes.Array(1)), *((name, datatypes.Double()) for name in THRESHOLD_INPUTS)],
        output_features=[(name, datatypes.Array(1)) for name in VISION_OUTPUTS],
    )
    pipeline.add_model(stage)
    pipeline.add_model(nms)
    spec = pipeline.spec
    # Every stage and the pipeline declare the same version: Core ML refuses a mix.
    spec.specificationVersion = stage.specificationVersion
    del spec.description.input[:]
    del spec.description.output[:]
    spec.description.input.add().CopyFrom(stage.description.input[0])
    spec.description.input[0].shortDescription = "Input image"
    for name in THRESHOLD_INPUTS:
        spec.description.input.add().CopyFrom(next(i for i in nms.description.input if i.name == name))
    for name in VISION_OUTPUTS:
        spec.description.output.add().CopyFrom(next(o for o in nms.description.output if o.name == name))
    return ct.models.MLModel(spec, weights_dir=program_model.weights_dir, skip_model_load=True)


def _nms_spec(stage: Any, labels: list[str], settings: NmsSettings) -> Any:
    from coremltools.proto import Model_pb2

    iou, confidence = float(settings.iou_threshold), float(settings.score_threshold)
    max_boxes = int(settings.max_detections)
    spec = Model_pb2.Model()
    spec.specificationVersion = stage.specificationVersion
    outputs = {o.name: o for o in stage.description.output}
    widths = {}
    for stage_name, name in zip(STAGE_OUTPUTS, VISION_OUTPUTS):
        spec.description.input.add().CopyFrom(outputs[stage_name])
        out = spec.description.output.add()
        out.CopyFrom(outputs[stage_name])
        out.name = name
        array = out.type.multiArrayType
        widths[name] = int(array.shape[-1])
        del array.shape[:]
        # Up to max_boxes rows (Core ML pads with zeros below a lower bound, none here).
        rows, cols = array.shapeRange.sizeRanges.add(), array.shapeRange.sizeRanges.add()
        rows.lowerBound, rows.upperBound = 0, max_boxes
        cols.lowerBound = cols.upperBound = widths[name]
    descriptions = {
        "confidence": "Boxes x class confidence (labels: the NMS model's class labels)",
        "coordinates": "Boxes x [centre x, centre y, width, height], relative to the image size",
        "iouThreshold": f"(optional) IoU above which a box is suppressed (default {iou})",
        "confidenceThreshold": f"(optional) lowest kept confidence (default {confidence})",
    }
    for name in THRESHOLD_INPUTS:
        feature = spec.description.input.add()
        feature.name = name
        feature.type.doubleType.SetInParent()
        feature.type.isOptional = True
    for feature in [*spec.description.input, *spec.description.output]:
        feature.shortDescription = descriptions.get(feature.name, feature.shortDescription)
    n = spec.nonMaximumSuppression
    n.confidenceInputFeatureName, n.coordinatesInputFeatureName = STAGE_OUTPUTS
    n.confidenceOutputFeatureName, n.coordinatesOutputFeatureName = VISION_OUTPUTS
    n.iouThresholdInputFeatureName, n.confidenceThresholdInputFeatureName = THRESHOLD_INPUTS
    n.iouThreshold, n.confidenceThreshold = iou, confidence
    n.pickTop.perClass = True
    n.stringClassLabels.vector.extend(labels)
    return spec
