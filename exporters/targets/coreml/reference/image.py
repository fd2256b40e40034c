"""What Core ML does to an image before an ML Program sees it.

An `ImageType` input reaches the program as a float tensor [1, C, H, W] holding the image's 8-bit
pixel values in the input's colour space order (BGR images have blue in channel 0). The `scale`
and `bias` of the ImageType are NOT applied by the runtime for ML Programs: coremltools writes them
into the program as its first ops (`mul` by scale, `add` of bias, named `<input>__scaled__` /
`<input>__biased__`), so evaluating the program applies them exactly as the device does.

So the runner's contract input (float32 NCHW RGB 0..255) becomes the program input by:
rounding to 8-bit values (a CVPixelBuffer / PIL image holds uint8), then reordering channels.
"""

from __future__ import annotations

import numpy as np

from .errors import MilReferenceError
from .loader import ImageInput


def to_program_input(pixels: np.ndarray, image: ImageInput) -> np.ndarray:
    """float NCHW RGB pixels 0..255 -> the float32 tensor the program's image input receives."""
    x = np.asarray(pixels)
    channels = 1 if image.color_space.startswith("GRAYSCALE") else 3
    expected = f"[N, {channels}, {image.height}, {image.width}]"
    if x.ndim != 4 or x.shape[1] != channels or x.shape[2:] != (image.height, image.width):
        raise MilReferenceError(
            f"input {image.name!r}: got shape {list(x.shape)}, expected {expected} "
            f"{'RGB' if channels == 3 else 'grey'} pixels 0..255 (NCHW); resize the image to the model's size first"
        )
    if not np.all(np.isfinite(x)):
        raise MilReferenceError(f"input {image.name!r}: contains NaN or inf; pass pixel values 0..255")
    # 8-bit pixels: Core ML reads images from 8-bit buffers, so fractional values cannot reach it.
    x = np.clip(np.rint(x), 0, 255).astype(np.float32)
    if image.color_space == "BGR":
        x = x[:, ::-1]
    elif image.color_space not in ("RGB", "GRAYSCALE", "GRAYSCALE_FLOAT16"):
        raise MilReferenceError(f"input {image.name!r}: colour space {image.color_space} is not supported")
    return np.ascontiguousarray(x)
