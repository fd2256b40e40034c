"""The segmentation judge: mIoU between the reference and artefact masks over the decided pixels
of all samples pooled, so a near-tie sliver is not a class missed, while a broken graph still fails."""

import numpy as np

from mvit.exporters.tasks.base import SampleOutputs
from mvit.exporters.tasks.segmentation import _Judge
from mvit.exporters.tolerances import QUANTISED_TOLERANCES

TOL = QUANTISED_TOLERANCES["int8-weights"]  # mask mIoU >= 0.8: per sample, the sliver made it 0.75


def _logits(classes: np.ndarray, confident: np.ndarray, n: int = 11) -> np.ndarray:
    """[1, n, H, W] logits whose argmax is `classes`; a wide margin where `confident`, a near-tie elsewhere."""
    out = np.zeros((1, n, *classes.shape), dtype=np.float32)
    margin = np.where(confident, 5.0, 0.01)
    np.put_along_axis(out[0], classes[None], margin[None], axis=0)
    return out


def _scene() -> np.ndarray:
    classes = np.zeros((32, 32), dtype=np.int64)
    classes[4:12, 4:12], classes[18:28, 16:26] = 3, 7
    return classes


def _judge(reference: np.ndarray, artefact: np.ndarray, confident: np.ndarray) -> dict[str, float]:
    judge = _Judge(TOL)
    for _ in range(3):
        judge.add(SampleOutputs({"logits": _logits(reference, confident)}, {"logits": _logits(artefact, confident)}, lambda: None))
    result = judge.finish()
    return {c.name: c.passed for c in result.checks} | {"miou": result.metrics["mask_miou"]}


def test_a_near_tie_sliver_of_another_class_is_not_a_class_missed():
    reference, confident = _scene(), np.ones((32, 32), dtype=bool)
    artefact = reference.copy()
    artefact[0, 0:3] = 9  # a class the reference never shows, on three near-tie pixels
    confident[0, 0:3] = False
    out = _judge(reference, artefact, confident)
    assert out["mask_miou"] and out["mask_pixel_agreement"] and out["miou"] == 1.0


def test_a_graph_that_loses_the_objects_fails():
    reference, confident = _scene(), np.ones((32, 32), dtype=bool)
    artefact = np.zeros_like(reference)  # background everywhere: agreement is still about 0.84
    out = _judge(reference, artefact, confident)
    assert not out["mask_miou"] and out["miou"] < 0.5
