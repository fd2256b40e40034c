"""Build the module a target traces: fused network + optional pixel preprocessing + task outputs.

BatchNorm is fused before anything is traced, so no export ever contains a BN op, and reshape/
permute chains through tensors above rank 5 are lowered (lower_rank.py), so no target sees one.
What each task wraps around the network, and its output names, is the task's (tasks/).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from mvit.models import PreprocessSpec

from .base import ExportError, ExportOptions, ExportTarget
from .lower_rank import RankLowering, lower_rank
from .preprocessing import PixelPreprocess
from .rewrites import rewrite_for_export
from .targets import get_target
from .tasks import get_task

INPUT_NAME = "image"
MAX_RANK = 5  # CoreML takes rank <= 5; ONNX and TFLite artefacts are held to the same limit

# Outputs of a detection artefact once the target has appended its NMS (targets may add more).
NMS_OUTPUT_NAMES = ["boxes", "scores", "class_ids"]


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
    rank_lowering: RankLowering | None = None  # None: not lowered (a verification reference)
    export_rewrites: dict[str, Any] | None = None  # rewrite name -> its report entry; None: none applied


def build_export_module(
    fused: nn.Module,
    task: str,
    image_size: int,
    *,
    target: ExportTarget | str,
    preprocess: PreprocessSpec | None,
    options: ExportOptions | Mapping[str, Any] | None = None,
    lower: bool = True,
) -> BuiltModule:
    """`fused` must already be BN-fused and in eval mode. `preprocess=None` leaves pixel
    preprocessing out (CoreML's ImageType does it; the verification reference does it in numpy).
    `lower=False` keeps tensors above rank 5 (a verification reference may stay the original
    network, so verification also proves the rewrite exact) and applies none of the target's
    `export_rewrites`; the result's `rank_lowering` and `export_rewrites` say what was rewritten."""
    options = ExportOptions.from_dict(options)
    export_target = get_target(target) if isinstance(target, str) else target
    net, rank_lowering, export_rewrites = fused, None, None
    if lower:
        # Only the traced module is rewritten; the reference (lower=False) stays the network as written.
        net, folded, export_rewrites = rewrite_for_export(fused, preprocess, image_size, export_target.export_rewrites)
        preprocess = None if folded else preprocess
        net, rank_lowering = lower_rank_for_export(net, image_size, options)
    pre = PixelPreprocess(preprocess) if preprocess is not None else None
    head = get_task(task).head(net, fused, image_size, options, class_id_output=export_target.class_id_output)
    return BuiltModule(ExportModule(head.module, pre).eval(), head.output_names, head.anchors, rank_lowering, export_rewrites)


def lower_rank_for_export(net: nn.Module, image_size: int, options: ExportOptions) -> tuple[nn.Module, RankLowering]:
    # A seeded normal input stands in for normalised pixels: the capture runs the network for real.
    example = torch.randn(1, 3, image_size, image_size, generator=torch.Generator().manual_seed(0))
    lowered, info = lower_rank(net, example, MAX_RANK)
    dynamic = options.meaning("dynamic_batch")
    if lowered is not net and dynamic is not None:
        # The lowered graph holds concrete shapes, batch 1 included.
        raise ExportError(
            f"{dynamic.flag} cannot be combined with a network whose tensors reach rank {info.max_rank_before}: "
            f"its reshapes are lowered to rank <= 5 for batch 1 only; export without {dynamic.flag}"
        )
    return lowered, info
