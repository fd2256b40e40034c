"""The CoreML target's own options, declared without importing coremltools (the registry reads them
for the command line whether or not the coreml extra is installed)."""

from __future__ import annotations

from ...base import TargetOption

# Single-program form (MIL NMS inside, padded boxes/scores/class_ids) vs the Vision pipeline.
NMS_FORMS = ("vision", "program")
MULTISIZE_FORMS = ("functions", "enumerated")
NMS_FORM_OPTION = TargetOption(
    "coreml_nms",
    "--coreml-nms",
    "CoreML detection: vision (default: a pipeline ending in Core ML's NonMaximumSuppression model, what Vision reads) | "
    "program (one ML Program with MIL NMS inside: boxes, scores, class_ids)",
    choices=NMS_FORMS,
    tag="nmsprogram",
    tag_when="program",
    means="nms_form",
    owner="CoreML",
)
SHAPES_OPTION = TargetOption(
    "coreml_shapes",
    "--coreml-shapes",
    "Several sizes in CoreML: functions (default: one fixed-shape function per size, iOS 18) | enumerated (EnumeratedShapes, iOS 16-17, config A)",
    choices=MULTISIZE_FORMS,
    means="multisize_form",
    owner="CoreML",
)
OPTIONS: tuple[TargetOption, ...] = (NMS_FORM_OPTION, SHAPES_OPTION)
