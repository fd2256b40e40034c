"""Verification tolerances, in one place, per precision.

fp32 exports should reproduce PyTorch to float rounding (measured here: ONNX Runtime and LiteRT
within 7e-6, CoreML fp32 within 5e-6, shared/reference/measured.md), so fp32 limits are tight.
fp16 stores weights/activations with a 10-bit mantissa: about 1.5e-3 relative was measured on
CoreML fp16, so fp16 limits leave about 10x headroom over that.

relative error = max |artefact - reference| / max |reference| over each output.
Agreement checks on arg-max decisions (top-1, mask pixels) skip samples/pixels whose reference
margin between the best two classes is below `decision_margin` (top-5: between the 5th and 6th):
a random-weight network has near-ties everywhere, and a near-tie can flip under legitimate
rounding. The report counts the judged samples and warns when none was.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Tolerance:
    relative_error: float  # max, per float output
    cosine: float  # min cosine similarity, per sample and output
    decision_margin: float  # reference top1-top2 (and top5-top6) gap / max|output| below which a decision is not judged
    top1_agreement: float  # min fraction of judged samples with the same top-1
    top5_agreement: float  # min mean overlap of the top-5 sets
    mask_agreement: float  # min fraction of judged pixels with the same class
    mask_miou: float  # min mIoU between reference and artefact masks
    box_iou: float  # min IoU of each matched detection
    box_recall: float  # min fraction of confident reference detections matched in the artefact
    score_difference: float  # max |score difference| of matched detections

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


TOLERANCES: dict[str, Tolerance] = {
    "fp32": Tolerance(
        relative_error=1e-4, cosine=0.99999, decision_margin=1e-5, top1_agreement=1.0, top5_agreement=0.99,
        mask_agreement=0.999, mask_miou=0.99, box_iou=0.999, box_recall=1.0, score_difference=1e-4,
    ),
    "fp16": Tolerance(
        relative_error=2e-2, cosine=0.999, decision_margin=2e-2, top1_agreement=1.0, top5_agreement=0.8,
        mask_agreement=0.98, mask_miou=0.9, box_iou=0.9, box_recall=0.9, score_difference=2e-2,
    ),
}


def tolerance_for(precision: str) -> Tolerance:
    return TOLERANCES[precision]
