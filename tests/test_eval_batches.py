"""mvit-eval gives each model its images in batches: in dataset order, bounded in count and bytes,
and scored exactly as image by image."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mvit.evaluation import evaluate as evaluation
from mvit.evaluation.runners import ModelUnderTest
from mvit.evaluation.scale import to_arrays
from mvit.evaluation.tasks import load_dataset
from mvit.models import PreprocessSpec

LABELS = ["dark", "light"]
IMAGES = 7


def _folders(root: Path) -> Path:
    """IMAGES images of different sizes and brightness, alternating between the two labels."""
    for i in range(IMAGES):
        label = LABELS[i % 2]
        (root / label).mkdir(parents=True, exist_ok=True)
        shade = np.full((40 + 3 * i, 50 + 5 * i, 3), 20 + 30 * i, np.uint8)
        Image.fromarray(shade).save(root / label / f"{i}.png")
    return root


class Recording:
    """A model whose probabilities follow the image's brightness, recording each batch it is given."""

    def __init__(self) -> None:
        self.batches: list[list[float]] = []

    def model(self, name: str, crop: int) -> ModelUnderTest:
        spec = PreprocessSpec(crop, crop, 1 / 255, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0), "RGB")
        return ModelUnderTest(name, "recording", None, "classification", LABELS, spec, self.predict_batch)

    def predict_batch(self, batch: list[np.ndarray]) -> list[np.ndarray]:
        means = [float(pixels.mean()) for pixels in batch]
        self.batches.append(means)
        return [np.array([255.0 - m, m]) for m in means]


@pytest.fixture
def dataset(tmp_path):
    return load_dataset(_folders(tmp_path / "shades"), "classification", LABELS)


def _scored(dataset, monkeypatch, images: int, nbytes: int = evaluation.BATCH_BYTES) -> tuple[dict, list[list[list[float]]]]:
    monkeypatch.setattr(evaluation, "BATCH_IMAGES", images)
    monkeypatch.setattr(evaluation, "BATCH_BYTES", nbytes)
    small, large = Recording(), Recording()
    records = evaluation.evaluate([small.model("small", 16), large.model("large", 32)], dataset)
    return {name: to_arrays(r) for name, r in records.items()}, [small.batches, large.batches]


def test_each_model_gets_batches_of_at_most_batch_images_in_dataset_order(dataset, monkeypatch):
    _, (small, large) = _scored(dataset, monkeypatch, images=3)
    assert [len(b) for b in small] == [len(b) for b in large] == [3, 3, 1]
    one_by_one = [m for batch in _scored(dataset, monkeypatch, images=1)[1][0] for m in batch]
    assert [m for batch in small for m in batch] == one_by_one
    assert len(set(one_by_one)) == IMAGES  # every image is a different shade: the order is checked


def test_a_batch_ends_once_its_pixels_reach_batch_bytes(dataset, monkeypatch):
    per_image = 3 * (16 * 16 + 32 * 32) * 4  # both models' float32 crops
    _, (small, _) = _scored(dataset, monkeypatch, images=50, nbytes=2 * per_image)
    assert [len(b) for b in small] == [2, 2, 2, 1]


def test_batched_records_equal_image_by_image_records(dataset, monkeypatch):
    batched, _ = _scored(dataset, monkeypatch, images=4)
    single, _ = _scored(dataset, monkeypatch, images=1)
    for name in ("small", "large"):
        assert batched[name].keys() == single[name].keys()
        for key in batched[name]:
            np.testing.assert_array_equal(batched[name][key], single[name][key])
