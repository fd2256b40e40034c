"""mvit-eval's per-task scoring (evaluation/tasks.py): one entry for each task that has metrics,
and a model's outputs read into one prediction by output name, for the reference and artefacts alike."""

import numpy as np
import pytest

from mvit.evaluation.datasets import DatasetError
from mvit.evaluation.metrics import ClassificationRecords, DetectionRecords, SegmentationRecords
from mvit.evaluation.tasks import SCORING, MissingOutput, load_dataset, scoring_for
from mvit.exporters.tasks import TASKS
from mvit.models.detection_postprocess import NmsSettings


def test_every_task_with_metrics_is_scored_and_no_other():
    assert set(SCORING) == {name for name, task in TASKS.items() if task.metrics}
    assert {name: s.primary_metric for name, s in SCORING.items()} == {"classification": "top1", "segmentation": "miou", "detection": "map"}
    with pytest.raises(DatasetError, match="cannot score a 'generic' model: it knows classification, segmentation and detection"):
        scoring_for("generic")


def test_records_come_from_the_task():
    assert isinstance(SCORING["classification"].new_records(10), ClassificationRecords)
    assert SCORING["segmentation"].new_records(21).num_classes == 21
    assert isinstance(SCORING["detection"].new_records(81), DetectionRecords)
    assert not isinstance(SCORING["detection"].new_records(81), SegmentationRecords)


def test_outputs_become_one_prediction_by_name():
    settings = NmsSettings()
    probs = np.array([[0.1, 0.7, 0.2]], dtype=np.float32)
    assert SCORING["classification"].predict({"probabilities": probs}, 8, settings).tolist() == pytest.approx([0.1, 0.7, 0.2])
    with pytest.raises(MissingOutput, match="no 'probabilities' output"):
        SCORING["classification"].predict({"logits": probs}, 8, settings)
    logits = np.zeros((1, 3, 4, 4), dtype=np.float32)
    logits[0, 2] = 1.0  # class 2 everywhere
    mask = SCORING["segmentation"].predict({"logits": logits}, 8, settings)
    assert mask.shape == (8, 8) and (mask == 2).all()
    given = np.ones((1, 8, 8), dtype=np.int32)
    assert (SCORING["segmentation"].predict({"mask": given}, 8, settings) == 1).all()  # an in-graph mask is read as is
    boxes = np.array([[[0.1, 0.1, 0.5, 0.5], [0.12, 0.1, 0.5, 0.5]]], dtype=np.float32)
    scores = np.array([[[0.1, 0.9], [0.2, 0.8]]], dtype=np.float32)  # background, one class
    kept_boxes, kept_scores, kept_classes = SCORING["detection"].predict({"boxes": boxes, "scores": scores}, 8, settings)
    assert len(kept_boxes) == 1 and kept_scores[0] == pytest.approx(0.9)  # the overlapping box is suppressed


def test_a_dataset_is_loaded_by_its_task(tmp_path):
    with pytest.raises(DatasetError, match="no such dataset"):
        load_dataset(tmp_path / "missing", "classification", ["a"])
    (tmp_path / "a").mkdir()
    with pytest.raises(DatasetError, match="cannot score a 'generic' model"):
        load_dataset(tmp_path, "generic", ["a"])
