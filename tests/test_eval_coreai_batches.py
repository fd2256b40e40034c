"""mvit-eval on a Core AI asset starts the runtime's child process once per batch of images, not
once per image, and scores exactly what image-by-image runs score."""

from __future__ import annotations

import subprocess

import numpy as np
import pytest
import trained_fixtures as tf
from eval_datasets import classification_folders

from mvit.evaluation import evaluate as evaluation
from mvit.evaluation.runners import artefact_model
from mvit.evaluation.scale import to_arrays
from mvit.evaluation.tasks import load_dataset
from mvit.exporters.targets import get_target
from mvit.exporters.targets.coreai import runtime

pytestmark = pytest.mark.slow  # Apple's Linux runtime: about a second per child process
IMAGES = 8


@pytest.fixture(scope="module")
def asset(shared_export):
    return shared_export(None, "coreai", checkpoint=tf.CLASSIFIER.checkpoint, precision="fp32", image_size=tf.CLASSIFIER.image_size, verify=False).path


@pytest.fixture
def children(monkeypatch) -> list[list[str]]:
    """The runtime child processes started, by their command lines."""
    started: list[list[str]] = []
    real = subprocess.Popen

    def counting(args, *rest, **kwargs):
        if runtime._CHILD in args:
            started.append(list(args))
        return real(args, *rest, **kwargs)

    monkeypatch.setattr(runtime.subprocess, "Popen", counting)
    return started


def test_a_batch_of_images_is_one_child_process_and_scores_as_single_runs(asset, tmp_path, monkeypatch, children):
    dataset = load_dataset(classification_folders(tmp_path / "digits"), "classification", tf.LABELS)
    dataset = evaluation.choose(dataset, IMAGES)
    model = artefact_model(asset, 1)
    monkeypatch.setattr(evaluation, "BATCH_IMAGES", 3)
    batched = to_arrays(evaluation.evaluate([model], dataset)[model.name])
    assert len(children) == 3  # 3 + 3 + 2 images

    children.clear()
    monkeypatch.setattr(evaluation, "BATCH_IMAGES", 1)
    single = to_arrays(evaluation.evaluate([model], dataset)[model.name])
    assert len(children) == IMAGES
    assert batched.keys() == single.keys() and batched["top1"].size == IMAGES
    for key in batched:
        np.testing.assert_array_equal(batched[key], single[key])


def test_run_many_is_one_child_process_with_the_outputs_of_single_runs(asset, children):
    runner = get_target("coreai").load(asset)
    rng = np.random.default_rng(0)
    size = tf.CLASSIFIER.image_size
    feeds = [{"image": rng.uniform(0, 255, (1, 3, size, size)).astype(np.float32)} for _ in range(3)]
    together = runner.run_many(feeds)
    assert len(children) == 1
    alone = [runner.run(feed) for feed in feeds]
    assert len(children) == 1 + len(feeds)
    for a, b in zip(together, alone, strict=True):
        assert a.keys() == b.keys() == set(runner.output_names)
        for name in a:
            np.testing.assert_array_equal(a[name], b[name])
