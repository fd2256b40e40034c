"""Calibration images (`--calibration DIR`): a folder of photos -> the artefact's input pixels.

Each image is resized and centre-cropped as the verification photos are (samples.py), from the
model's PreprocessSpec, so activation ranges are measured on what the artefact will really see.
Without a folder the verification photos are used, with a warning: three photos set rough
activation ranges, the user's own images set the right ones.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .base import ExportError
from .samples import PHOTOS, Sample, photo, resize_and_crop, to_nchw

# What --calibration, --images and mvit-eval's datasets read as images.
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif")  # a VOC id is looked up in this order
# What Pillow raises for a file that is not a readable image (missing, truncated, not an image).
UNREADABLE_IMAGE = (OSError, UnidentifiedImageError, ValueError)
# Enough for stable min/max ranges; more only slows int8 calibration (CoreML's runs in numpy).
MAX_IMAGES = 64
DEFAULT_WARNING = ("int8 calibrated on the 3 verification photos (no --calibration DIR given): "
                   "a folder of your own images gives better activation scales")


def image_files(directory: Path, flag: str = "--calibration") -> list[Path]:
    """The image files of a --calibration / --images folder, its class sub-folders included (a
    classification val/ folder as it is); an error when there are none. Taken in turn from each
    folder, so the first images of a limited read cover every class, not only the first."""
    directory = Path(directory)
    if not directory.is_dir():
        raise ExportError(f"{flag} {directory} is not a folder; give a folder of images (.png, .jpg, ...), "
                          "or of class folders of images")
    by_folder: list[list[Path]] = []
    try:
        for root, dirs, names in os.walk(directory):  # symlinked folders are not followed
            dirs.sort()
            files = sorted(Path(root) / n for n in names if Path(n).suffix.lower() in IMAGE_SUFFIXES)
            files = [p for p in files if p.is_file()]
            if files:
                by_folder.append(files)
    except OSError as exc:
        raise ExportError(f"cannot read {flag} {directory}: {exc.strerror or exc}") from None
    if not by_folder:
        raise ExportError(f"{flag} {directory} holds no images ({', '.join(IMAGE_SUFFIXES)}), directly or in class folders; "
                          "add some photos like the ones the model will see")
    return [files[i] for i in range(max(map(len, by_folder))) for files in by_folder if i < len(files)]


def read_upright_rgb(path: Path) -> np.ndarray:
    """uint8 HWC RGB, upright as the phone shows it: a portrait photo is stored landscape plus an
    EXIF orientation, and the app turns it. Pillow's errors (UNREADABLE_IMAGE) pass through for the
    caller to name in its own words."""
    with Image.open(path) as im:
        return np.asarray(ImageOps.exif_transpose(im).convert("RGB"))


def read_images(directory: Path, resize_shortest: int, crop: int, limit: int = MAX_IMAGES,
                flag: str = "--calibration") -> np.ndarray:
    """The first `limit` images of `directory` (image_files' order), as float32 [N, 3, crop, crop] RGB pixels 0..255."""
    files = image_files(directory, flag)
    out = []
    for path in files[:limit]:
        try:
            rgb = read_upright_rgb(path)
        except UNREADABLE_IMAGE as exc:
            raise ExportError(f"cannot read {flag} image {path}: {exc.__class__.__name__}; "
                              "remove it or replace it with a readable image") from None
        out.append(to_nchw(resize_and_crop(rgb, resize_shortest, crop))[0])
    return np.stack(out)


def calibration_pixels(directory: Path | None, resize_shortest: int, crop: int) -> tuple[np.ndarray, str | None]:
    """(pixels, warning or None): the folder's images, else the verification photos with a warning."""
    if directory is not None:
        return read_images(directory, resize_shortest, crop), None
    photos = [to_nchw(resize_and_crop(photo(name), resize_shortest, crop))[0] for name in PHOTOS]
    return np.stack(photos), DEFAULT_WARNING


def as_samples(pixels: np.ndarray, prefix: str = "calibration") -> list[Sample]:
    """Images as verification samples (quantised exports are also judged on them)."""
    return [Sample(f"{prefix}_{i}", p[None].astype(np.float32)) for i, p in enumerate(pixels)]
