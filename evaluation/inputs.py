"""What a model sees of a dataset image: the recipe it ships with (resize the shortest edge, centre
crop), and the way back from its crop to the image's own pixels.

The pixels come from exporters.samples.resize_and_crop, the function verification uses, so an
artefact is judged on exactly the pixels a user's pipeline following its metadata would give it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from mvit.exporters.samples import resize_and_crop, to_nchw


@dataclass(frozen=True)
class Crop:
    """Where the model's crop lies: the image resized to (resized_w, resized_h), then cut at (left, top)."""

    width: int
    height: int
    resized_w: int
    resized_h: int
    left: int
    top: int
    size: int
    resize_shortest: int

    @classmethod
    def of(cls, width: int, height: int, resize_shortest: int, crop: int) -> Crop:
        # The same arithmetic as exporters.samples.resize_and_crop.
        scale = resize_shortest / min(height, width)
        new_w, new_h = max(crop, round(width * scale)), max(crop, round(height * scale))
        return cls(width, height, new_w, new_h, (new_w - crop) // 2, (new_h - crop) // 2, crop, resize_shortest)

    def pixels(self, image: np.ndarray) -> np.ndarray:
        """uint8 HWC RGB -> float32 [1, 3, crop, crop] RGB 0..255."""
        return to_nchw(resize_and_crop(image, self.resize_shortest, self.size))

    def mask(self, mask: np.ndarray) -> np.ndarray:
        """A class-index mask through the same resize (nearest: no invented classes) and crop."""
        resized = np.asarray(Image.fromarray(mask.astype(np.int32)).resize((self.resized_w, self.resized_h), Image.Resampling.NEAREST))
        return resized[self.top : self.top + self.size, self.left : self.left + self.size].astype(np.int64)

    def boxes_to_image(self, boxes: np.ndarray) -> np.ndarray:
        """[K, 4] xyxy normalised to the crop -> xyxy pixels of the original image."""
        b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4) * self.size
        b[:, [0, 2]] = (b[:, [0, 2]] + self.left) * self.width / self.resized_w
        b[:, [1, 3]] = (b[:, [1, 3]] + self.top) * self.height / self.resized_h
        return b
