"""The trained test fixtures (issue 9): where they are, their input size, and their data.

Random weights hide bugs (near-ties everywhere, tiny biases), so these small networks are trained
by tests/data/make_trained_fixtures.py on real images that ship with installed packages:
scikit-learn's 1797 handwritten 8x8 digits, upscaled, coloured and pasted onto crops of
scikit-image's bundled photos. The held-out scenes are regenerated here from the same seeds
(nothing but the checkpoints is stored), so tests and docs/trained-fixture.md judge the same data.

Pixels are what every artefact takes: float32 [N, 3, H, W], RGB, integer values 0..255. The
fixtures were trained with Apple's recipe (BGR, x/255, no mean/std), recorded in each checkpoint.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image

TRAINED_DIR = Path(__file__).parent / "data" / "trained"
METRICS_FILE = TRAINED_DIR / "metrics.json"
LABELS = [str(d) for d in range(10)]
SEED = 0
HELDOUT_DIGITS = 360  # of 1797, never seen in training
# Backgrounds: scikit-image photos that load offline and are not the verification photos
# (astronaut, chelsea, coffee in exporters/samples.py), so verification sees unfamiliar images.
BACKGROUNDS = ("rocket", "immunohistochemistry", "hubble_deep_field", "retina", "camera", "coins", "moon", "grass", "gravel", "brick", "clock", "page")
BACKGROUND_SHORT_SIDE = 192


@dataclass(frozen=True)
class Fixture:
    name: str  # registered model name
    task: str
    image_size: int
    num_classes: int

    @property
    def checkpoint(self) -> Path:
        return TRAINED_DIR / f"{self.name}_digits.safetensors"


CLASSIFIER = Fixture("mobilevit_xxs", "classification", 64, 10)
SEGMENTER = Fixture("deeplabv3_mobilevit_xxs", "segmentation", 128, 11)  # class 0 = background
DETECTOR = Fixture("ssdlite_mobilevit_xxs", "detection", 128, 11)  # class 0 = background
FIXTURES = {f.task: f for f in (CLASSIFIER, SEGMENTER, DETECTOR)}


def recorded_metrics() -> dict:
    return json.loads(METRICS_FILE.read_text())


@lru_cache(maxsize=1)
def _digits() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(train images, train labels, held-out images, held-out labels); images float 0..1, 8x8."""
    from sklearn.datasets import load_digits

    data = load_digits()
    order = np.random.default_rng(SEED).permutation(len(data.target))
    images = (data.images / 16.0).astype(np.float32)
    held, train = order[:HELDOUT_DIGITS], order[HELDOUT_DIGITS:]
    return images[train], data.target[train], images[held], data.target[held]


@lru_cache(maxsize=1)
def _backgrounds() -> tuple[np.ndarray, ...]:
    import skimage.data

    out = []
    for name in BACKGROUNDS:
        im = getattr(skimage.data, name)()
        if im.ndim == 2:
            im = np.repeat(im[..., None], 3, axis=2)
        im = Image.fromarray(np.ascontiguousarray(im[..., :3]))
        scale = BACKGROUND_SHORT_SIDE / min(im.size)
        im = im.resize((round(im.width * scale), round(im.height * scale)), Image.Resampling.BILINEAR)
        out.append(np.asarray(im, dtype=np.float32))
    return tuple(out)


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    photo = _backgrounds()[rng.integers(len(BACKGROUNDS))]
    crop = int(rng.integers(size, min(photo.shape[:2]) + 1))
    top = int(rng.integers(photo.shape[0] - crop + 1))
    left = int(rng.integers(photo.shape[1] - crop + 1))
    patch = Image.fromarray(photo[top : top + crop, left : left + crop].astype(np.uint8))
    return np.asarray(patch.resize((size, size), Image.Resampling.BILINEAR), dtype=np.float32)


def _paste(rng: np.random.Generator, canvas: np.ndarray, digit: np.ndarray, side: int) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """Alpha-blend one upscaled, coloured digit; returns its ink mask and (x1, y1, x2, y2) box of the ink."""
    size = canvas.shape[0]
    # A blank 1-pixel frame first: sklearn's digits touch their 8x8 border, which would paste as a square.
    framed = np.pad(digit, 1)
    alpha = np.asarray(Image.fromarray(framed).resize((side, side), Image.Resampling.BILINEAR))
    alpha = np.clip(alpha * 1.6, 0.0, 1.0)
    top, left = (int(rng.integers(size - side + 1)) for _ in range(2))
    region = canvas[top : top + side, left : left + side]
    hue = float(rng.uniform(0, 360))
    colour = np.asarray(
        Image.new("HSV", (1, 1), (int(hue * 255 / 360), int(rng.integers(100, 256)), int(rng.integers(60, 256)))).convert("RGB"), dtype=np.float32
    ).reshape(3)
    # Keep the ink readable: a colour too close in brightness to what lies under it is inverted.
    if abs(colour.mean() - region.mean()) < 50:
        colour = 255 - colour
        if abs(colour.mean() - region.mean()) < 50:
            colour = colour * 0.3 if region.mean() > 128 else 255 - (255 - colour) * 0.3
    canvas[top : top + side, left : left + side] = region * (1 - alpha[..., None]) + colour * alpha[..., None]
    ink = np.zeros((size, size), dtype=bool)
    ink[top : top + side, left : left + side] = alpha > 0.5
    ys, xs = np.nonzero(ink)
    return ink, (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)


def _to_pixels(canvas: np.ndarray) -> np.ndarray:
    return np.round(np.clip(canvas, 0, 255)).astype(np.float32).transpose(2, 0, 1)


def classification_scenes(rng: np.random.Generator, digits: np.ndarray, size: int) -> np.ndarray:
    """One digit per scene, covering most of it: [N, 3, size, size] RGB pixels."""
    out = np.empty((len(digits), 3, size, size), dtype=np.float32)
    for i, digit in enumerate(digits):
        canvas = _background(rng, size)
        _paste(rng, canvas, digit, int(rng.integers(size * 9 // 16, size * 7 // 8 + 1)))
        out[i] = _to_pixels(canvas)
    return out


def segmentation_scenes(rng: np.random.Generator, digits: np.ndarray, labels: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Two digits per scene (the i-th and a random other); mask = 1 + digit on ink, 0 elsewhere."""
    pixels = np.empty((len(digits), 3, size, size), dtype=np.float32)
    masks = np.zeros((len(digits), size, size), dtype=np.int64)
    for i in range(len(digits)):
        canvas = _background(rng, size)
        j = int(rng.integers(len(digits)))
        for k in (j, i):  # the i-th last, so it is never hidden
            ink, _ = _paste(rng, canvas, digits[k], int(rng.integers(size * 5 // 16, size * 9 // 16 + 1)))
            masks[i][ink] = 1 + int(labels[k])
        pixels[i] = _to_pixels(canvas)
    return pixels, masks


def detection_scenes(rng: np.random.Generator, digits: np.ndarray, labels: np.ndarray, size: int):
    """One to three digits per scene, not overlapping; boxes are normalised xyxy of the ink, classes 1 + digit."""
    pixels = np.empty((len(digits), 3, size, size), dtype=np.float32)
    boxes, classes = [], []
    for i in range(len(digits)):
        canvas = _background(rng, size)
        picks = [i, *rng.integers(len(digits), size=int(rng.integers(0, 3))).tolist()]
        taken = np.zeros((size, size), dtype=bool)
        b, c = [], []
        for k in picks:
            for _ in range(10):  # a few tries at a free spot, else leave this digit out
                trial = canvas.copy()
                ink, box = _paste(rng, trial, digits[k], int(rng.integers(size // 5, size // 2 + 1)))
                x1, y1, x2, y2 = box
                if not taken[max(0, y1 - 2) : y2 + 2, max(0, x1 - 2) : x2 + 2].any():
                    canvas = trial
                    taken[y1:y2, x1:x2] = True
                    b.append([x1 / size, y1 / size, x2 / size, y2 / size])
                    c.append(1 + int(labels[k]))
                    break
        pixels[i] = _to_pixels(canvas)
        boxes.append(np.asarray(b, dtype=np.float32).reshape(-1, 4))
        classes.append(np.asarray(c, dtype=np.int64))
    return pixels, boxes, classes


def train_digits() -> tuple[np.ndarray, np.ndarray]:
    images, labels, _, _ = _digits()
    return images, labels


def heldout(task: str, count: int | None = None):
    """The held-out scenes of a task's fixture, identical on every call.

    classification: (pixels, labels); segmentation: (pixels, masks); detection: (pixels, boxes, classes).
    """
    fixture = FIXTURES[task]
    _, _, images, labels = _digits()
    images, labels = images[:count], labels[:count]
    rng = np.random.default_rng([SEED, 1, list(FIXTURES).index(task)])
    if task == "classification":
        return classification_scenes(rng, images, fixture.image_size), labels.astype(np.int64)
    if task == "segmentation":
        return segmentation_scenes(rng, images, labels, fixture.image_size)
    return detection_scenes(rng, images, labels, fixture.image_size)


def save_scenes(folder: Path, pixels: np.ndarray) -> Path:
    """Scenes ([N, 3, H, W] pixels 0..255) as PNG files a user's folder would hold, in name order."""
    folder.mkdir(parents=True, exist_ok=True)
    for i, scene in enumerate(pixels):
        Image.fromarray(scene.transpose(1, 2, 0).astype(np.uint8)).save(folder / f"scene_{i:03d}.png")
    return folder


def to_network_input(pixels: np.ndarray) -> np.ndarray:
    """Apple's recipe the fixtures were trained with: BGR, x/255, no mean/std."""
    return np.ascontiguousarray(pixels[:, ::-1] / 255.0, dtype=np.float32)


# Held-out metrics, shared by the training script and docs/trained-fixture.md so both count alike.
DETECTION_SCORE = 0.3  # a detection counts from this score on
DETECTION_IOU = 0.5  # and matches a same-class true box it overlaps this much


def classification_accuracy(probabilities: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    return {"top1_accuracy": float((probabilities.argmax(1) == labels).mean())}


def segmentation_scores(logits_or_mask: np.ndarray, masks: np.ndarray) -> dict[str, float]:
    """Pixel accuracy and mIoU over the 11 classes; logits at any stride are upsampled first."""
    import torch
    import torch.nn.functional as F

    pred = np.asarray(logits_or_mask)
    if pred.ndim == 4:
        up = F.interpolate(torch.from_numpy(pred.astype(np.float32)), size=masks.shape[-2:], mode="bilinear", align_corners=False)
        pred = up.argmax(1).numpy()
    pred = pred.reshape(masks.shape)
    ious = []
    for c in range(SEGMENTER.num_classes):
        union = np.logical_or(pred == c, masks == c).sum()
        if union:
            ious.append(np.logical_and(pred == c, masks == c).sum() / union)
    return {"pixel_accuracy": float((pred == masks).mean()), "miou": float(np.mean(ious))}


def detection_scores(found: list[tuple[np.ndarray, np.ndarray, np.ndarray]], boxes: list[np.ndarray], classes: list[np.ndarray]) -> dict[str, float]:
    """Recall and precision of (boxes, scores, classes) per scene against the true boxes."""
    import torch

    from mvit.models.detection_postprocess import box_iou

    hits = n_true = n_found = 0
    for (fb, fs, fc), tb, tc in zip(found, boxes, classes):
        keep = fs >= DETECTION_SCORE
        fb, fc = fb[keep], fc[keep]
        n_true, n_found = n_true + len(tb), n_found + len(fb)
        if len(fb) == 0 or len(tb) == 0:
            continue
        iou = box_iou(torch.from_numpy(np.asarray(tb, np.float32)), torch.from_numpy(np.asarray(fb, np.float32))).numpy()
        iou[tc[:, None] != fc[None, :]] = 0
        used = np.zeros(len(fb), dtype=bool)
        for t in range(len(tb)):
            cand = np.where(used, 0, iou[t])
            if cand.max() >= DETECTION_IOU:
                used[cand.argmax()] = True
                hits += 1
    return {"recall": hits / max(n_true, 1), "precision": hits / max(n_found, 1)}
