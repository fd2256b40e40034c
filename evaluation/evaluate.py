"""Score several models on the same labelled images, in batches, and keep per-image records.

Each image is read once for all models; each model gets a batch of images at once (its runner's
`run_many`), so a runtime that starts a process per call (Core AI's) starts once per batch. A batch
holds crops and masks only, at most BATCH_IMAGES of them and about BATCH_BYTES, whatever the
dataset's image sizes; what a model returns for them is smaller still (logits, boxes, a mask of
8 bytes a pixel against the pixels' 12).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from .datasets import Dataset, Item, read_image, read_mask
from .inputs import Crop
from .runners import ModelUnderTest
from .tasks import SCORING

BATCH_IMAGES = 50  # one chunk of scale.py: one runtime start per chunk and model
BATCH_BYTES = 64 * 2**20


def choose(dataset: Dataset, limit: int | None, seed: int = 0) -> Dataset:
    """At most `limit` items, drawn at random with a fixed seed (every class has its chance, unlike
    the first N of a folder-sorted list), kept in the dataset's order."""
    if limit is None or limit >= len(dataset.items):
        return dataset
    keep = np.sort(np.random.default_rng(seed).permutation(len(dataset.items))[:limit])
    return Dataset(dataset.task, dataset.layout, dataset.root, [dataset.items[i] for i in keep])


@dataclass
class _Prepared:
    """One image as each model sees it: its crop (and pixels) per model, and its mask."""

    item: Item
    crops: list[Crop]
    pixels: list[np.ndarray]
    mask: np.ndarray | None

    @property
    def nbytes(self) -> int:
        return sum(p.nbytes for p in self.pixels) + (self.mask.nbytes if self.mask is not None else 0)


def _prepare(models: list[ModelUnderTest], item: Item, num_classes: int) -> _Prepared:
    image = read_image(item.image)
    h, w = image.shape[:2]
    mask = read_mask(item.mask, num_classes, (w, h)) if item.mask is not None else None
    crops = [Crop.of(w, h, m.recipe.resize_shortest, m.recipe.crop) for m in models]
    return _Prepared(item, crops, [crop.pixels(image) for crop in crops], mask)


def batches(models: list[ModelUnderTest], items: list[Item], num_classes: int) -> Iterator[list[_Prepared]]:
    """The items prepared, in dataset order, in batches of at most BATCH_IMAGES and about BATCH_BYTES."""
    batch: list[_Prepared] = []
    held = 0
    for item in items:
        batch.append(_prepare(models, item, num_classes))
        held += batch[-1].nbytes
        if len(batch) == BATCH_IMAGES or held >= BATCH_BYTES:
            yield batch
            batch, held = [], 0
    if batch:
        yield batch


def evaluate(models: list[ModelUnderTest], dataset: Dataset) -> dict:
    """{model name: records} over every item of `dataset`, each image read once for all models."""
    num_classes = len(models[0].labels)
    records = {m.name: SCORING[dataset.task].new_records(num_classes) for m in models}
    for batch in batches(models, dataset.items, num_classes):
        for k, model in enumerate(models):
            predictions = model.predict_batch([one.pixels[k] for one in batch])
            for one, prediction in zip(batch, predictions, strict=True):
                SCORING[model.task].add(records[model.name], prediction, one.item, one.crops[k], one.mask)
    return records
