"""A user's own network (`--model pkg.module:factory`): outputs exported as returned, named
output / output_0..k, judged by the numeric comparison alone; no Xcode preview type fits."""

from __future__ import annotations

import torch
from torch import nn

from ..base import ExportOptions
from ..tolerances import Tolerance
from .base import Head
from .detection import _NumericOnly


def output_names(net: nn.Module, image_size: int) -> list[str]:
    with torch.no_grad():
        out = net(torch.zeros(1, 3, image_size, image_size))
    n = len(out) if isinstance(out, (tuple, list)) else 1
    return ["output"] if n == 1 else [f"output_{i}" for i in range(n)]


class GenericTask:
    name = "generic"
    options: frozenset[str] = frozenset()
    coreml_preview: str | None = None
    metrics: tuple[tuple[str, str], ...] = ()
    classifier = False
    preview_labels = False
    class_map_beside_logits = False
    multi_size = True

    def head(self, net: nn.Module, original: nn.Module, image_size: int, options: ExportOptions, class_id_output: bool) -> Head:
        return Head(net, output_names(original, image_size))

    def judge(self, tol: Tolerance, options: ExportOptions, nms_best_class_only: bool) -> _NumericOnly:
        return _NumericOnly()


TASK = GenericTask()
