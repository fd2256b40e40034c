"""Calibration images (`--calibration DIR`): a folder of photos -> the artefact's input pixels.

Each image is resized and centre-cropped as the verification photos are (samples.py), from the
model's PreprocessSpec, so activation ranges are measured on what the artefact will really see.
Without a folder the verification photos are used, with a warning: three photos set rough
activation ranges, the user's own images set the right ones.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from mvit.reading import open_regular

from .base import ExportError
from .samples import PHOTOS, Sample, photo, resize_and_crop, to_nchw

# What --calibration, --images and mvit-eval's datasets read as images.
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif")  # a VOC id is looked up in this order
# What Pillow raises for a file that is not a readable image (missing, truncated, not an image),
# and ImageTooLarge (a ValueError) for one refused before decoding.
UNREADABLE_IMAGE = (OSError, UnidentifiedImageError, ValueError)
# Checked from the header, before a pixel is decoded. 64 MP is above an iPhone's 48 MP photo
# (8064x6048; 108-200 MP Android sensors save binned 12 MP photos by default) and far below what
# a PNG of a few hundred KB can claim: 20000x20000, 1.2 GB decoded as RGB. Larger images: resize first.
MAX_PIXELS = 64_000_000
# The shortest side is resized to the model's input before the crop, so the long side grows by the
# same factor: a 1 x 100000 strip becomes 72 x 7.2 million pixels (1.5 GB). No photo a model is
# shown is 20 times longer than wide; with this bound the resize stays under 70 MB even at 1024.
MAX_ASPECT = 20
# Enough for stable min/max ranges; more only slows int8 calibration (CoreML's runs in numpy).
MAX_IMAGES = 64
DEFAULT_WARNING = "int8 calibrated on the 3 verification photos (no --calibration DIR given): a folder of your own images gives better activation scales"


class ImageTooLarge(ValueError):
    """An image refused from its header: too many pixels, or too thin to resize."""


def unreadable_reason(exc: BaseException) -> str:
    """Why an image could not be read, for an error line: the size rule it broke, else Pillow's error type."""
    return str(exc) if isinstance(exc, ImageTooLarge) else exc.__class__.__name__


@contextlib.contextmanager
def open_image(path: Path, what: str = "an image") -> Iterator[Image.Image]:
    """Pillow's lazy image of a regular file (a FIFO would block the open), its size checked before decoding."""
    with open_regular(path, what) as fh:
        try:
            im = Image.open(fh)
        except Image.DecompressionBombError:
            raise ImageTooLarge(f"it claims more than {MAX_PIXELS // 10**6} million pixels; mvit reads images up to that, resize it first") from None
        with im:
            w, h = im.size
            if w * h > MAX_PIXELS:
                raise ImageTooLarge(f"it is {w}x{h}, more than {MAX_PIXELS // 10**6} million pixels; resize it first")
            if max(w, h) > MAX_ASPECT * max(1, min(w, h)):
                raise ImageTooLarge(
                    f"it is {w}x{h}, one side more than {MAX_ASPECT} times the other; resizing its short "
                    "side to the model's input would blow up the long one: crop it first"
                )
            yield im


def image_files(directory: Path, flag: str = "--calibration") -> list[Path]:
    """The image files of a --calibration / --images folder, its class sub-folders included (a
    classification val/ folder as it is); an error when there are none. Taken in turn from each
    folder, so the first images of a limited read cover every class, not only the first."""
    directory = Path(directory)
    if not directory.is_dir():
        raise ExportError(f"{flag} {directory} is not a folder; give a folder of images (.png, .jpg, ...), or of class folders of images")
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
        raise ExportError(
            f"{flag} {directory} holds no images ({', '.join(IMAGE_SUFFIXES)}), directly or in class folders; add some photos like the ones the model will see"
        )
    return [files[i] for i in range(max(map(len, by_folder))) for files in by_folder if i < len(files)]


def read_upright_rgb(path: Path) -> np.ndarray:
    """uint8 HWC RGB, upright as the phone shows it: a portrait photo is stored landscape plus an
    EXIF orientation, and the app turns it. Pillow's errors (UNREADABLE_IMAGE) pass through for the
    caller to name in its own words."""
    with open_image(path) as im:
        return np.asarray(ImageOps.exif_transpose(im).convert("RGB"))


def read_images(directory: Path, resize_shortest: int, crop: int, limit: int = MAX_IMAGES, flag: str = "--calibration") -> np.ndarray:
    """The first `limit` images of `directory` (image_files' order), as float32 [N, 3, crop, crop] RGB pixels 0..255."""
    files = image_files(directory, flag)
    out = []
    for path in files[:limit]:
        try:
            rgb = read_upright_rgb(path)
        except UNREADABLE_IMAGE as exc:
            raise ExportError(f"cannot read {flag} image {path}: {unreadable_reason(exc)}; remove it or replace it with a readable image") from None
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
