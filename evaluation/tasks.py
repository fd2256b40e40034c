"""How mvit-eval scores each task: where its labelled data comes from, the records that score it,
and how a model's outputs become one prediction. The task's own facts (its output names, its
metrics) are the export task's (mvit.exporters.tasks); this adds what only scoring needs."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from mvit.exporters.tasks import ExportTask, get_task
from mvit.exporters.tasks.detection import artefact_detections
from mvit.models.detection_postprocess import NmsSettings, select_detections

from .bootstrap import Records
from .datasets import Dataset, DatasetError, Item, classification_items, coco_items, voc_items
from .inputs import Crop
from .metrics import ClassificationRecords, DetectionRecords, SegmentationRecords

Prediction = Any  # probabilities [C] | mask [crop, crop] | (boxes, scores, classes)


class MissingOutput(KeyError):
    """A model's outputs lack the one a prediction is read from."""


def _output(out: dict[str, Any], name: str) -> np.ndarray:
    if name not in out:
        raise MissingOutput(f"no {name!r} output (it has {sorted(out)})")
    return np.asarray(out[name])


def mask_from_logits(logits: np.ndarray, size: int) -> np.ndarray:
    """Class mask at the crop size; logits upsampled bilinearly first, as the in-graph `--mask` does."""
    t = torch.as_tensor(np.asarray(logits, dtype=np.float32))
    if t.ndim == 3:
        t = t[None]
    up = F.interpolate(t, size=(size, size), mode="bilinear", align_corners=False)
    return up.argmax(1)[0].numpy()


def _probabilities(out: dict[str, Any], crop: int, settings: NmsSettings) -> Prediction:
    return _output(out, "probabilities").reshape(-1)


def _mask(out: dict[str, Any], crop: int, settings: NmsSettings) -> Prediction:
    if "mask" in out:
        return np.asarray(out["mask"]).reshape(crop, crop)
    return mask_from_logits(_output(out, "logits"), crop)


def _detections(out: dict[str, Any], crop: int, settings: NmsSettings) -> Prediction:
    if "class_ids" in out:  # NMS inside the model
        return artefact_detections(out)
    # Decoded boxes and scores: `settings` select, as an app's own NMS would.
    boxes, scores = (torch.from_numpy(np.asarray(_output(out, k), dtype=np.float32)[0]) for k in ("boxes", "scores"))
    return tuple(t.numpy() for t in select_detections(boxes, scores, settings))


def _add_label(records: Any, prediction: Prediction, item: Item, crop: Crop, mask: np.ndarray | None) -> None:
    records.add(prediction, item.label)


def _add_mask(records: Any, prediction: Prediction, item: Item, crop: Crop, mask: np.ndarray | None) -> None:
    if mask is None:
        raise DatasetError(f"{item.image}: no mask to score it against")
    records.add(prediction, crop.mask(mask))


def _add_boxes(records: Any, prediction: Prediction, item: Item, crop: Crop, mask: np.ndarray | None) -> None:
    boxes, scores, classes = prediction
    records.add(crop.boxes_to_image(boxes), scores, classes, item.boxes)


@dataclass(frozen=True)
class Scoring:
    task: ExportTask
    items: Callable[[Path, list[str]], tuple[str, list[Item]]]  # (dataset layout, items) of a dataset root
    new_records: Callable[[int], Records]  # from the number of classes
    # A model's outputs by name -> one prediction; the NMS settings select from decoded boxes.
    predict: Callable[[dict[str, Any], int, NmsSettings], Prediction]
    add: Callable[[Any, Prediction, Item, Crop, np.ndarray | None], None]  # one image's prediction to the records

    @property
    def primary_metric(self) -> str:
        return self.task.metrics[0][0]


_SCORINGS = [
    Scoring(get_task("classification"), classification_items, lambda n: ClassificationRecords(), _probabilities, _add_label),
    Scoring(get_task("segmentation"), voc_items, SegmentationRecords, _mask, _add_mask),
    Scoring(get_task("detection"), coco_items, DetectionRecords, _detections, _add_boxes),
]
SCORING: dict[str, Scoring] = {s.task.name: s for s in _SCORINGS}
SCORED_TASKS = tuple(SCORING)


def scored_list() -> str:
    return f"{', '.join(SCORED_TASKS[:-1])} and {SCORED_TASKS[-1]}"


def scoring_for(task: str) -> Scoring:
    try:
        return SCORING[task]
    except KeyError:
        raise DatasetError(f"mvit-eval cannot score a {task!r} model: it knows {scored_list()}") from None


def load_dataset(root: Path, task: str, labels: list[str]) -> Dataset:
    """The items of `root` for `task`, every reference to a file and a label checked."""
    root = Path(root)
    if not root.exists():
        raise DatasetError(f"{root}: no such dataset folder or file")
    layout, items = scoring_for(task).items(root, labels)
    return Dataset(task, layout, root, items)
