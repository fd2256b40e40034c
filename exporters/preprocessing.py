"""One preprocessing spec per model, applied identically inside exports and in the reference.

Every export takes the same RGB pixels (0..255). The spec says how they become the network's
input: input = (pixels[channel_order] * scale - mean) / std (see mvit.models.PreprocessSpec).
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import numpy as np
import torch
from torch import nn

from mvit.models import PreprocessSpec


def preprocess_dict(spec: PreprocessSpec, *, raw_input: bool, in_graph: bool) -> dict[str, Any]:
    """The spec as plain JSON-able data for ExportRequest.preprocess and artefact metadata."""
    d = asdict(spec)
    d["mean"], d["std"] = list(spec.mean), list(spec.std)
    d["raw_input"] = raw_input
    d["in_graph"] = in_graph
    return d


def normalise(pixels: np.ndarray, spec: PreprocessSpec) -> np.ndarray:
    """Reference preprocessing: float32 NCHW RGB 0..255 -> the network's input tensor (numpy, eager)."""
    x = pixels.astype(np.float64)
    if spec.channel_order == "BGR":
        x = x[:, ::-1]
    x = x * spec.scale
    if spec.has_mean_std:
        x = (x - np.asarray(spec.mean).reshape(1, 3, 1, 1)) / np.asarray(spec.std).reshape(1, 3, 1, 1)
    return np.ascontiguousarray(x, dtype=np.float32)


class PixelPreprocess(nn.Module):
    """The same recipe inside the graph (ONNX, TFLite): RGB 0..255 in, normalised tensor out.

    Scale, mean and std fold into one multiply-add per channel; the BGR flip is a channel reverse.
    """

    def __init__(self, spec: PreprocessSpec) -> None:
        super().__init__()
        self.flip = spec.channel_order == "BGR"
        std = torch.tensor(spec.std, dtype=torch.float64).reshape(1, 3, 1, 1)
        mean = torch.tensor(spec.mean, dtype=torch.float64).reshape(1, 3, 1, 1)
        self.use_bias = spec.has_mean_std
        if self.use_bias:
            self.register_buffer("mul", (spec.scale / std).float(), persistent=False)
            self.register_buffer("add", (-mean / std).float(), persistent=False)
        else:
            self.scale = float(spec.scale)

    mul: torch.Tensor  # buffers, when mean/std are used
    add: torch.Tensor

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        x = pixels.flip(1) if self.flip else pixels
        if self.use_bias:
            return x * self.mul + self.add
        return x * self.scale
