"""CoreML's native NMS appended to a detector's MIL program.

The traced detector ends in decoded boxes (xyxy, normalised) and softmax class probabilities
(column 0 = background). MIL `non_maximum_suppression` (iOS 15+) wants centre/size boxes and
returns fixed-size padded outputs plus a valid count; this adds the conversions around it so the
artefact returns boxes (xyxy), scores and class ids, padded rows marked by class id -1 and score 0.

Semantics (CoreML's, not torchvision's): each box takes its best foreground class and boxes are
suppressed only against boxes of the same class (`per_class_suppression`), so one box appears at
most once; the eager reference `select_detections` can list a box under two classes.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mvit.models.detection_postprocess import NmsSettings


def centre_size_and_foreground(mb: Any, boxes: Any, probs: Any) -> tuple[Any, Any]:
    """MIL ops: xyxy boxes [1,A,4] -> centre/size [1,A,4]; probabilities [1,A,C+1] -> foreground
    [1,A,C] (column 0 is the background). What both NMS forms feed their NMS."""
    top_left = mb.slice_by_index(x=boxes, begin=[0, 0, 0], end=[0, 0, 2], end_mask=[True, True, False])
    bottom_right = mb.slice_by_index(x=boxes, begin=[0, 0, 2], end=[0, 0, 4], end_mask=[True, True, True])
    centre = mb.mul(x=mb.add(x=top_left, y=bottom_right), y=np.float32(0.5))
    size = mb.sub(x=bottom_right, y=top_left)
    foreground = mb.slice_by_index(x=probs, begin=[0, 0, 1], end=[0, 0, 0], end_mask=[True, True, True])
    return mb.concat(values=[centre, size], axis=-1), foreground


def append_nms(program: Any, settings: NmsSettings, output_names: list[str]) -> None:
    from coremltools.converters.mil import Builder as mb
    from coremltools.converters.mil.mil.scope import ScopeInfo, ScopeSource

    boxes_name, scores_name, class_ids_name = output_names[:3]
    k = int(settings.max_detections)
    function = program.functions["main"]
    # The torch frontend's validation wants every op to carry a torch module scope.
    scopes = (
        ScopeInfo(source=ScopeSource.TORCHSCRIPT_MODULE_TYPE, data=["CoreMLNonMaximumSuppression"]),
        ScopeInfo(source=ScopeSource.TORCHSCRIPT_MODULE_NAME, data=["nms"]),
    )
    with function, mb.scope(*scopes):
        boxes, probs = function.outputs
        centre_size, foreground = centre_size_and_foreground(mb, boxes, probs)
        kept_boxes, kept_probs, _, count = mb.non_maximum_suppression(
            boxes=centre_size,
            scores=foreground,
            iou_threshold=np.float32(settings.iou_threshold),
            score_threshold=np.float32(settings.score_threshold),
            max_boxes=k,
            per_class_suppression=True,
        )
        valid = mb.less(
            x=mb.range_1d(start=np.int32(0), end=np.int32(k), step=np.int32(1)),
            y=mb.expand_dims(x=count, axes=[-1]),
        )
        best = mb.reduce_max(x=kept_probs, axes=[-1], keep_dims=False)
        # +1: class ids index the model's classes, where 0 is the background column cut off above.
        best_class = mb.add(x=mb.reduce_argmax(x=kept_probs, axis=-1, keep_dims=False), y=np.int32(1))
        scores = mb.select(cond=valid, a=best, b=np.float32(0.0), name=scores_name)
        class_ids = mb.select(cond=valid, a=best_class, b=np.int32(-1), name=class_ids_name)
        kept_centre = mb.slice_by_index(x=kept_boxes, begin=[0, 0, 0], end=[0, 0, 2], end_mask=[True, True, False])
        half = mb.mul(
            x=mb.slice_by_index(x=kept_boxes, begin=[0, 0, 2], end=[0, 0, 4], end_mask=[True, True, True]),
            y=np.float32(0.5),
        )
        xyxy = mb.concat(values=[mb.sub(x=kept_centre, y=half), mb.add(x=kept_centre, y=half)], axis=-1)
        # Zero the padding rows so they never look like boxes.
        out_boxes = mb.select(cond=mb.expand_dims(x=valid, axes=[-1]), a=xyxy, b=np.float32(0.0), name=boxes_name)
        function.set_outputs([out_boxes, scores, class_ids])
        # The user-declared output types belonged to the two pre-NMS outputs.
        function.output_types = None
