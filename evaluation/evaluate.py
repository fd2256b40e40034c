"""Score several models on the same labelled images, image by image, and keep per-image records."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .datasets import Dataset, Item, read_image, read_mask
from .inputs import Crop
from .runners import ModelUnderTest
from .tasks import SCORING


def choose(dataset: Dataset, limit: int | None, seed: int = 0) -> Dataset:
    """At most `limit` items, drawn at random with a fixed seed (every class has its chance, unlike
    the first N of a folder-sorted list), kept in the dataset's order."""
    if limit is None or limit >= len(dataset.items):
        return dataset
    keep = np.sort(np.random.default_rng(seed).permutation(len(dataset.items))[:limit])
    return Dataset(dataset.task, dataset.layout, dataset.root, [dataset.items[i] for i in keep])


def _score(model: ModelUnderTest, item: Item, image: np.ndarray, mask: np.ndarray | None, records) -> None:
    h, w = image.shape[:2]
    crop = Crop.of(w, h, model.recipe.resize_shortest, model.recipe.crop)
    SCORING[model.task].add(records, model.predict(crop.pixels(image)), item, crop, mask)


def evaluate(models: list[ModelUnderTest], dataset: Dataset, on_image: Callable[[], None] | None = None) -> dict:
    """{model name: records} over every item of `dataset`, each image read once for all models."""
    num_classes = len(models[0].labels)
    records = {m.name: SCORING[dataset.task].new_records(num_classes) for m in models}
    for item in dataset.items:
        image = read_image(item.image)
        mask = read_mask(item.mask, num_classes, (image.shape[1], image.shape[0])) if item.mask is not None else None
        for model in models:
            _score(model, item, image, mask, records[model.name])
        if on_image:
            on_image()
    return records
