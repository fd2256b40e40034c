"""A class-folder dataset of any size, made from the bundled handwritten digits (scikit-learn).

    python tests/make_digit_folders.py OUT COUNT   # OUT/0 ... OUT/9, COUNT PNG scenes in all

The scenes are the trained classifier fixture's held-out kind (tests/trained_fixtures.py): each
digit pasted on a textured background, drawn again with another seed for every pass over the
digits, so COUNT can exceed the 1,797 digits and the images still differ. Nothing is committed:
tests and the scale benchmark write the folder into a temporary directory when they need it.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import trained_fixtures as tf
from eval_datasets import margin_of, save

PASS_SEED = 20261206


def digit_folders(out: Path, count: int) -> Path:
    _, _, images, labels = tf._digits()
    size, margin = tf.CLASSIFIER.image_size, margin_of(tf.CLASSIFIER)
    for label in tf.LABELS:
        (out / label).mkdir(parents=True, exist_ok=True)
    written = 0
    for rounds in range(-(-count // len(images))):
        take = min(len(images), count - written)
        scenes = tf.classification_scenes(np.random.default_rng([PASS_SEED, rounds]), images[:take], size)
        for scene, label in zip(scenes, labels[:take]):
            save(out / tf.LABELS[int(label)] / f"{written:06d}.png", scene, margin)
            written += 1
    return out


if __name__ == "__main__":
    digit_folders(Path(sys.argv[1]), int(sys.argv[2]))
