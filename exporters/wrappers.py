"""Build the module a target traces: fused network + optional pixel preprocessing + task outputs.

BatchNorm is fused before anything is traced, so no export ever contains a BN op, and reshape/
permute chains through tensors above rank 5 are lowered (lower_rank.py), so no target sees one.
Output names for every task live here (OUTPUT_NAMES) and nowhere else.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from mvit.models import PreprocessSpec
from mvit.models.deeplabv3 import SegmentationMask
from mvit.models.detection_postprocess import DetectionDecoder, generate_anchors

from .base import ExportError
from .lower_rank import lower_rank
from .preprocessing import PixelPreprocess

INPUT_NAME = "image"
MAX_RANK = 5  # CoreML takes rank <= 5; ONNX and TFLite artefacts are held to the same limit

# Names of the traced module's outputs, per task and mode.
OUTPUT_NAMES: dict[str, list[str]] = {
    "classification": ["probabilities", "class_id"],
    "classification_coreml": ["probabilities"],  # ClassifierConfig adds the top class itself
    "segmentation": ["logits"],
    "segmentation_mask": ["mask"],
    "detection": ["boxes", "scores"],  # decoded xyxy in [0, 1] and softmax scores, no NMS
    "detection_raw": ["box_offsets", "class_logits"],
}
# Outputs of a detection artefact once the target has appended its NMS.
NMS_OUTPUT_NAMES = ["boxes", "scores", "class_ids"]


def output_key(task: str, target: str, options: dict[str, Any]) -> str:
    if task == "classification":
        return "classification_coreml" if target == "coreml" else "classification"
    if task == "segmentation":
        return "segmentation_mask" if options.get("mask") else "segmentation"
    if task == "detection":
        return "detection_raw" if options.get("raw_detection") else "detection"
    raise ValueError(f"no fixed output names for task {task!r}")


class _Classification(nn.Module):
    def __init__(self, net: nn.Module, with_class_id: bool) -> None:
        super().__init__()
        self.net, self.with_class_id = net, with_class_id

    def forward(self, x: torch.Tensor):
        probs = self.net(x).softmax(dim=-1)
        if self.with_class_id:
            return probs, probs.argmax(dim=-1).to(torch.int32)
        return probs


class _Detection(nn.Module):
    def __init__(self, net: nn.Module, decoder: DetectionDecoder | None) -> None:
        super().__init__()
        self.net, self.decoder = net, decoder

    def forward(self, x: torch.Tensor):
        offsets, logits = self.net(x)
        if self.decoder is None:
            return offsets, logits
        return self.decoder(offsets, logits)


class ExportModule(nn.Module):
    """pixels -> (optional in-graph preprocessing) -> task module."""

    def __init__(self, head: nn.Module, preprocess: nn.Module | None) -> None:
        super().__init__()
        self.preprocess = preprocess if preprocess is not None else nn.Identity()
        self.head = head

    def forward(self, image: torch.Tensor):
        return self.head(self.preprocess(image))


@dataclass
class BuiltModule:
    module: nn.Module
    output_names: list[str]
    anchors: torch.Tensor | None = None  # [A, 4] cx, cy, w, h for detection
    extras: dict[str, Any] = field(default_factory=dict)


def detection_anchors(net: nn.Module, image_size: int) -> torch.Tensor:
    from mvit.models.ssdlite import ASPECT_RATIOS

    return generate_anchors(net.feature_map_sizes(image_size), ASPECT_RATIOS)


def generic_output_names(net: nn.Module, image_size: int) -> list[str]:
    """A user's own network: outputs exported as returned, named output_0..k."""
    with torch.no_grad():
        out = net(torch.zeros(1, 3, image_size, image_size))
    n = len(out) if isinstance(out, (tuple, list)) else 1
    return ["output"] if n == 1 else [f"output_{i}" for i in range(n)]


def build_export_module(
    fused: nn.Module,
    task: str,
    image_size: int,
    *,
    target: str,
    preprocess: PreprocessSpec | None,
    options: dict[str, Any] | None = None,
    lower: bool = True,
) -> BuiltModule:
    """`fused` must already be BN-fused and in eval mode. `preprocess=None` leaves pixel
    preprocessing out (CoreML's ImageType does it; the verification reference does it in numpy).
    `lower=False` keeps tensors above rank 5 (a verification reference may stay the original
    network, so verification also proves the rewrite exact); `extras["rank_lowering"]` says what
    was rewritten."""
    options = options or {}
    pre = PixelPreprocess(preprocess) if preprocess is not None else None
    anchors = None
    extras: dict[str, Any] = {}
    net = fused
    if lower:
        net, extras["rank_lowering"] = lower_rank_for_export(fused, image_size, options)
    if task == "generic":
        head, names = net, generic_output_names(fused, image_size)
    else:
        names = list(OUTPUT_NAMES[output_key(task, target, options)])
        if task == "classification":
            head = _Classification(net, with_class_id=len(names) == 2)
        elif task == "segmentation":
            head = SegmentationMask(net) if options.get("mask") else net
        elif task == "detection":
            anchors = detection_anchors(fused, image_size)
            decoder = None if options.get("raw_detection") else DetectionDecoder(anchors)
            head = _Detection(net, decoder)
        else:
            raise ValueError(f"unknown task {task!r}")
    return BuiltModule(ExportModule(head, pre).eval(), names, anchors, extras)


def lower_rank_for_export(net: nn.Module, image_size: int, options: dict[str, Any]) -> tuple[nn.Module, dict[str, Any]]:
    # A seeded normal input stands in for normalised pixels: the capture runs the network for real.
    example = torch.randn(1, 3, image_size, image_size, generator=torch.Generator().manual_seed(0))
    lowered, info = lower_rank(net, example, MAX_RANK)
    if lowered is not net and options.get("dynamic_batch"):
        # The lowered graph holds concrete shapes, batch 1 included.
        raise ExportError(f"--dynamic-batch cannot be combined with a network whose tensors reach rank {info['max_rank_before']}: "
                          "its reshapes are lowered to rank <= 5 for batch 1 only; export without --dynamic-batch")
    return lowered, info
