"""The one small interface every task implements (classification, segmentation, detection, generic).

A task owns what differs by task: its output names, the head wrapped around the network, the
options it takes, the Xcode preview type of its CoreML package, and how verification judges an
artefact's outputs beyond the numeric comparison every float output gets.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import torch
from torch import nn

from ..base import ExportOptions
from ..checks import Check
from ..tolerances import Tolerance


@dataclass
class Head:
    module: nn.Module  # takes the normalised input tensor
    output_names: list[str]
    anchors: torch.Tensor | None = None  # [A, 4] cx, cy, w, h for detection


@dataclass
class SampleOutputs:
    """One verification sample: the reference's outputs, the artefact's, and a way to read what
    the artefact's NMS op was given (None where the runner cannot)."""

    reference: dict[str, np.ndarray]
    artefact: dict[str, np.ndarray]
    pre_nms: Callable[[], tuple[np.ndarray, np.ndarray] | None]


@dataclass
class Judgement:
    metrics: dict[str, float] = field(default_factory=dict)
    checks: list[Check] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    # Extra float tensors to compare like outputs (name -> (reference, artefact)) for this sample.
    tensors: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)


class Judge(Protocol):
    def add(self, sample: SampleOutputs) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Take one sample; return extra float tensors to compare numerically (may be empty)."""

    def finish(self) -> Judgement: ...


class ExportTask(Protocol):
    name: str
    options: frozenset[str]  # task-only options it takes ("mask", "raw_detection", "nms")
    coreml_preview: str | None  # Xcode preview type ("imageClassifier"...), None: no preview fits
    # What mvit-eval reports for it, (key, column title), the headline metric first; () when
    # there is no labelled data to score it against.
    metrics: tuple[tuple[str, str], ...]
    classifier: bool  # class probabilities first: CoreML's classifier type carries them with the labels
    preview_labels: bool  # Xcode's preview names the classes from labels in the preview params
    class_map_beside_logits: bool  # a CoreML package adds the class per pixel beside logits (Xcode's segmenter reads it)
    multi_size: bool  # one artefact may serve several input sizes (False: anchors and NMS are built for one)

    def head(self, net: nn.Module, original: nn.Module, image_size: int, options: ExportOptions, class_id_output: bool) -> Head:
        """`net` is what gets traced (maybe rank-lowered); `original` the network as written."""

    def judge(self, tol: Tolerance, options: ExportOptions, nms_best_class_only: bool) -> Judge: ...


def margin(scores: np.ndarray, axis: int) -> np.ndarray:
    """Gap between the best two classes, relative to the output's scale (like relative_error)."""
    top2 = -np.partition(-scores, 1, axis=axis)
    scale = max(float(np.abs(scores).max(initial=0.0)), 1e-30)
    return (np.take(top2, 0, axis=axis) - np.take(top2, 1, axis=axis)) / scale
