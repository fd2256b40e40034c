"""Which Xcode preview a CoreML package gets, and the class map the segmenter preview reads.

Xcode previews three kinds of image model (coremltools' "Xcode Model Preview Types"):
- `imageClassifier`: an image in, the ClassifierConfig's label and probabilities out;
- `imageSegmenter`: an image in, a MultiArray out, labels in the preview params. Apple's own
  DeepLabV3 and the MobileViT DeepLabV3 packages Hugging Face's exporters write give one Int32
  class index per input pixel, so every segmenter mvit writes carries that class map as `mask`
  (the same tensor `--mask` gives alone), after the `logits` apps already read;
- `objectDetector`: recognised by structure, a pipeline ending in Core ML's NonMaximumSuppression
  model with `confidence` and `coordinates` outputs (the default `--coreml-nms vision`).
A package whose outputs no preview reads (custom networks, tensor input, detectors without the
Vision pipeline) declares none and says why in the `xcode_preview` metadata key.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ...base import ExportOptions, ExportRequest, read_back_fields
from ...tasks import get_task
from .options import NMS_FORMS
from .pipeline import nms_labels

PREVIEW_TYPE_KEY = "com.apple.coreml.model.preview.type"
PREVIEW_PARAMS_KEY = "com.apple.coreml.model.preview.params"
NO_PREVIEW_KEY = "xcode_preview"  # the reason, where no preview applies
NO_PREVIEW = "none: a custom network's outputs match no Xcode preview type"
CLASS_MAP_OUTPUT = "mask"


@dataclass(frozen=True)
class XcodePreview:
    type: str | None  # the preview type, None where no preview reads the outputs
    note: str  # what the preview reads, or why there is none


def preview_for(task: str, options: ExportOptions, outputs: list[str] | None = None) -> XcodePreview:
    """`outputs`: the package's output names where known (a segmenter converted without the class
    map, such as an enumerated-shapes package, declares the preview but has only logits)."""
    declared = get_task(task).coreml_preview
    if declared is None:
        return XcodePreview(None, NO_PREVIEW)
    if options.raw_input:
        return XcodePreview(None, "none: the input is a tensor (--raw-input) and Xcode's previews feed an image")
    if declared == "objectDetector":
        if options.nms is None:
            return XcodePreview(
                None,
                "none: Xcode's object-detector preview reads a Vision pipeline's confidence and "
                "coordinates; this detector has no NMS (--no-nms / --raw-detection)",
            )
        if (options.option("coreml_nms") or NMS_FORMS[0]) != "vision":
            return XcodePreview(
                None,
                "none: --coreml-nms program outputs boxes, scores and class_ids, which Xcode's "
                "object-detector preview does not read; the default --coreml-nms vision does",
            )
        return XcodePreview(declared, "recognised by structure: a pipeline ending in Core ML's NonMaximumSuppression model (outputs confidence, coordinates)")
    if declared == "imageSegmenter":
        if outputs is not None and CLASS_MAP_OUTPUT not in outputs:
            return XcodePreview(
                declared,
                f"declared, but this package has no class map output '{CLASS_MAP_OUTPUT}' "
                f"(outputs {outputs}); Xcode's segmentation preview may not read logits",
            )
        return XcodePreview(
            declared,
            f"reads the class map output '{CLASS_MAP_OUTPUT}' (int32 [1, H, W], one class index per input pixel) with the labels in the preview params",
        )
    return XcodePreview(declared, "reads the ClassifierConfig outputs classLabel and probabilities")


def adds_class_map(task: str, output_names: list[str]) -> bool:
    """A segmenter that outputs logits gets the class map beside them; `--mask` already is one."""
    return get_task(task).class_map_beside_logits and output_names == ["logits"]


class LogitsAndClassMap(nn.Module):
    """The segmenter's logits, and the class per input pixel as `SegmentationMask` computes it
    (bilinear upsampling to the input size, then argmax), from one run of the network."""

    def __init__(self, segmenter: nn.Module) -> None:
        super().__init__()
        self.segmenter = segmenter

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self.segmenter(x)
        upsampled = F.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=False)
        return logits, upsampled.argmax(dim=1).to(torch.int32)


def with_class_map(task: str, module: nn.Module, output_names: list[str]) -> tuple[nn.Module, list[str]]:
    """What CoreML traces: a logits segmenter gains the class map output; anything else is unchanged."""
    if not adds_class_map(task, output_names):
        return module, output_names
    return LogitsAndClassMap(module).eval(), [*output_names, CLASS_MAP_OUTPUT]


def record_outputs(request: ExportRequest, outputs: list[str]) -> None:
    """Record what the package really outputs when the class map was added (the exporter recorded
    the network's outputs), so its metadata and the export report name them."""
    if adds_class_map(request.task, list(request.output_names)) and CLASS_MAP_OUTPUT in outputs:
        request.metadata["output_names"] = json.dumps(outputs)


def preview_metadata(request: ExportRequest) -> dict[str, str]:
    """The preview keys Xcode reads, or the reason there is none."""
    recorded = request.metadata.get("output_names")
    outputs = json.loads(recorded) if recorded else list(request.output_names)
    preview = preview_for(request.task, request.options, outputs)
    meta: dict[str, str] = {}
    if preview.type is None:
        meta[NO_PREVIEW_KEY] = preview.note
    else:
        meta[PREVIEW_TYPE_KEY] = preview.type
        meta["xcode_preview_note"] = preview.note
    if get_task(request.task).preview_labels:
        # Xcode's previews name the classes from these params; the object detector's must be the
        # NMS model's, column for column (background dropped, padding columns named).
        labels = nms_labels(list(request.labels)) if preview.type == "objectDetector" else list(request.labels)
        meta[PREVIEW_PARAMS_KEY] = json.dumps({"labels": labels})
    return meta


def report_fields(artefact_metadata: dict[str, str]) -> dict[str, Any]:
    """The export report's view of a CoreML package, read back from it: its output names and the
    Xcode preview it gets."""
    if PREVIEW_TYPE_KEY in artefact_metadata:
        return read_back_fields(artefact_metadata, artefact_metadata[PREVIEW_TYPE_KEY], artefact_metadata.get("xcode_preview_note", ""))
    if NO_PREVIEW_KEY in artefact_metadata:
        return read_back_fields(artefact_metadata, None, artefact_metadata[NO_PREVIEW_KEY])
    return read_back_fields(artefact_metadata)
