"""Fixed verification inputs: real photographs plus seeded noise, no downloads.

The photographs ship inside the scikit-image wheel (licences in docs/verification.md):
astronaut (NASA, public domain), chelsea and coffee (CC0). Each is resized (shortest edge) and
centre-cropped per the model's PreprocessSpec, exactly what a user's pipeline would do, and
kept as integer RGB pixels so every export sees identical values.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import skimage.data
from PIL import Image

PHOTOS = ("astronaut", "chelsea", "coffee")
NOISE_SEEDS = (0, 1)


@dataclass(frozen=True)
class Sample:
    name: str
    pixels: np.ndarray  # float32 [1, 3, H, W], RGB, integer values 0..255

    @property
    def hwc_uint8(self) -> np.ndarray:
        return self.pixels[0].transpose(1, 2, 0).astype(np.uint8)


def photo(name: str) -> np.ndarray:
    """A bundled photograph as uint8 HWC RGB."""
    if name not in PHOTOS:
        raise ValueError(f"unknown sample photo {name!r}: use one of {PHOTOS}")
    return getattr(skimage.data, name)()


def resize_and_crop(image: np.ndarray, resize_shortest: int, crop: int) -> np.ndarray:
    """Resize the shortest edge to `resize_shortest` (bilinear), then centre-crop `crop` x `crop`."""
    h, w = image.shape[:2]
    scale = resize_shortest / min(h, w)
    new_w, new_h = max(crop, round(w * scale)), max(crop, round(h * scale))
    resized = np.asarray(Image.fromarray(image).resize((new_w, new_h), Image.Resampling.BILINEAR))
    top, left = (new_h - crop) // 2, (new_w - crop) // 2
    return resized[top : top + crop, left : left + crop]


def to_nchw(image: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(image.transpose(2, 0, 1)[None].astype(np.float32))


def verification_samples(resize_shortest: int, crop: int, noise: bool = True) -> list[Sample]:
    samples = [Sample(name, to_nchw(resize_and_crop(photo(name), resize_shortest, crop))) for name in PHOTOS]
    if noise:
        for seed in NOISE_SEEDS:
            rng = np.random.default_rng(seed)
            samples.append(Sample(f"noise_{seed}", rng.integers(0, 256, (1, 3, crop, crop)).astype(np.float32)))
    return samples
