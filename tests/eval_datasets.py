"""The trained fixtures' held-out scenes as labelled datasets on disk, in mvit-eval's three layouts.

Each image carries a margin that the artefact's own recipe (resize the shortest edge to R,
centre-crop S, recorded at export) cuts off again: the image is R x R (the scene plus its edge
replicated (R - S) / 2 each side), so the resize is the identity and the crop returns the scene's
exact pixels. Models scored on these files therefore see the very scenes
tests/data/trained/metrics.json was computed on.

    python tests/eval_datasets.py OUT   # writes OUT/digits (class folders), OUT/voc, OUT/coco
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import trained_fixtures as tf
from PIL import Image

from mvit.exporters.resolve import resolve_model

DETECTION_SCENES = 60  # detection is the slowest to score; its fixture records no mAP to match anyway


def margin_of(fixture: tf.Fixture) -> int:
    spec = resolve_model(None, checkpoint=fixture.checkpoint, image_size=fixture.image_size).preprocess
    return (spec.resize_shortest - spec.crop) // 2


def save(path: Path, chw: np.ndarray, margin: int) -> None:
    hwc = chw.transpose(1, 2, 0).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.pad(hwc, ((margin, margin), (margin, margin), (0, 0)), mode="edge")).save(path)


def classification_folders(root: Path) -> Path:
    pixels, labels = tf.heldout("classification")
    margin = margin_of(tf.CLASSIFIER)
    for i, (p, label) in enumerate(zip(pixels, labels)):
        save(root / tf.LABELS[label] / f"{i:03d}.png", p, margin)
    return root


def voc(root: Path) -> Path:
    pixels, masks = tf.heldout("segmentation")
    margin = margin_of(tf.SEGMENTER)
    (root / "SegmentationClass").mkdir(parents=True)
    for i, (p, m) in enumerate(zip(pixels, masks)):
        save(root / "JPEGImages" / f"{i:03d}.png", p, margin)  # PNG: lossless, so the recorded figure holds
        # The margin is labelled 255 (VOC's "void"): the crop removes it, and it must not be scored anyway.
        Image.fromarray(np.pad(m.astype(np.uint8), margin, constant_values=255), mode="L").save(root / "SegmentationClass" / f"{i:03d}.png")
    split = root / "ImageSets" / "Segmentation" / "val.txt"
    split.parent.mkdir(parents=True)
    split.write_text("".join(f"{i:03d}\n" for i in range(len(pixels))))
    return root


def coco(root: Path, count: int = DETECTION_SCENES) -> Path:
    pixels, boxes, classes = tf.heldout("detection", count)
    size = tf.DETECTOR.image_size
    assert margin_of(tf.DETECTOR) == 0  # its recipe resizes 128 to 128 and crops 128: boxes stay where they are
    images, annotations = [], []
    for i, (p, b, c) in enumerate(zip(pixels, boxes, classes)):
        save(root / "images" / f"{i:03d}.png", p, 0)
        images.append({"id": i, "file_name": f"{i:03d}.png", "width": size, "height": size})
        for box, cls in zip(b * size, c):
            x1, y1, x2, y2 = box.tolist()
            annotations.append({"id": len(annotations), "image_id": i, "category_id": int(cls), "bbox": [x1, y1, x2 - x1, y2 - y1], "iscrowd": 0})
    categories = [{"id": k + 1, "name": name} for k, name in enumerate(tf.LABELS)]
    (root / "annotations.json").write_text(json.dumps({"images": images, "annotations": annotations, "categories": categories}))
    return root


if __name__ == "__main__":
    out = Path(sys.argv[1])
    classification_folders(out / "digits")
    voc(out / "voc")
    coco(out / "coco")
    print(f"wrote {out / 'digits'}, {out / 'voc'} and {out / 'coco'}")
