"""The one small interface every export target implements.

A target (coreml, onnx, tflite) is one module exposing a `TARGET: ExportTarget` object. It knows
how to write its artefact, read back its metadata and run it. Shared concerns (preprocessing,
labels, tolerances, verification, reports) live beside this file, never inside a target.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal, Protocol, cast

import numpy as np
from torch import nn

from mvit.errors import MvitError
from mvit.models.detection_postprocess import NmsSettings

# int8-weights / int8 / palette4 / palette6: see quantize.py (what each means per target).
Precision = Literal["fp32", "fp16", "int8-weights", "int8", "palette4", "palette6"]


class ExportError(MvitError):
    """A user-facing failure: the message is one line saying what was wrong and what to do."""


class TargetNotInstalled(ExportError):
    pass


def importable(*modules: str) -> bool:
    """True when every module imports: how a target tells whether its extra is installed."""
    try:
        for name in modules:
            importlib.import_module(name)
    except ImportError:
        return False
    return True


@dataclass
class ExportRequest:
    """Everything a target needs to write one artefact.

    `module` is the BN-fused, eval-mode network already wrapped for export (preprocessing and
    post-processing inside, per the options), taking `input_shape` float32 NCHW RGB pixels 0..255
    (or the raw normalised tensor when `raw_input`). `output_names` name its outputs in order.
    """

    module: nn.Module
    model_name: str
    task: str
    input_shape: tuple[int, int, int, int]
    output_names: list[str]
    labels: list[str]
    preprocess: dict[str, Any]  # PreprocessSpec as a dict, plus "raw_input": bool
    precision: Precision = "fp16"
    channels_last_input: bool = False  # NHWC input (tflite option)
    dynamic_batch: bool = False  # onnx option
    metadata: dict[str, str] = field(default_factory=dict)  # written into the artefact as is
    options: ExportOptions = field(default_factory=lambda: ExportOptions())
    calibration: np.ndarray | None = None  # int8: pixels [N, 3, H, W] like the input, that set activation scales


@dataclass(frozen=True)
class ExportOptions:
    """The task and layout options of one export, checked (options.normalise_options) and typed.

    What is passed between layers; `as_dict()` is its JSON form in metadata and reports.
    """

    mask: bool = False  # segmentation: class mask inside the model
    raw_detection: bool = False  # detection: raw box/score tensors, anchors beside the artefact
    raw_input: bool = False  # the normalised tensor as input instead of pixels
    nhwc: bool = False  # TFLite: NHWC input
    dynamic_batch: bool = False  # ONNX: dynamic batch dimension
    nms: NmsSettings | None = None  # detection: NMS inside the artefact, with these settings
    coreml_nms: str | None = None  # CoreML detection: "vision" pipeline or "program"

    def nms_dict(self) -> dict[str, Any] | None:
        return asdict(self.nms) if self.nms is not None else None

    def as_dict(self) -> dict[str, Any]:
        """The options that are on, as JSON-able data (the artefact's `export_options`)."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value not in (None, False):
                out[f.name] = asdict(value) if isinstance(value, NmsSettings) else value
        return out

    @classmethod
    def from_dict(cls, data: ExportOptions | Mapping[str, Any] | None) -> ExportOptions:
        """From `as_dict()` output (or already typed); unknown keys are an error."""
        if isinstance(data, ExportOptions):
            return data
        data = dict(data or {})
        known = {f.name for f in fields(cls)}
        if set(data) - known:
            raise ExportError(f"unknown export option(s) {sorted(set(data) - known)}; known: {sorted(known)}")
        nms = data.pop("nms", None)
        if isinstance(nms, dict):
            nms = NmsSettings(**nms)
        return cls(**{k: v for k, v in data.items() if v is not None}, nms=nms or None)


class Runner(Protocol):
    input_names: list[str]
    output_names: list[str]

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]: ...


class TargetDefaults:
    """What most targets answer alike; a target overrides what differs (CoreML: most of it)."""

    preprocess_in_graph = True
    own_options: frozenset[str] = frozenset()
    verifiers: tuple[str, ...] = ()
    nms_best_class_only = False
    class_id_output = True
    harness_ready = False
    # Graph rewrites of the traced module (exporters/rewrites/), each measured faster on the runtime.
    export_rewrites: frozenset[str] = frozenset({"fold_preprocessing", "patch_layout"})
    rewrites_skipped_for: Mapping[str, frozenset[str]] = {}
    nms_forms: tuple[str, ...] = ()  # one NMS form: nothing to choose
    nms_output_names: list[str] = []
    precisions: tuple[str, ...] = ("fp32", "fp16", "int8-weights", "int8")
    writes_own_sizes = False
    name = ""

    def output_names_with_nms(self, options: ExportOptions) -> list[str]:
        return list(self.nms_output_names)

    def benchmark_unavailable_reason(self) -> str | None:
        return None

    def load_verifier(self, path: Path, verifier: str, num_threads: int | None = None) -> Runner:
        raise ExportError(f"--verifier {verifier} applies to CoreML exports only; {self.name} artefacts have one runtime")

    def structure_checks(self, path: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        return {}, []

    def write_sizes(self, entries: list[Any], path: Path, precision: str) -> dict[str, Any]:
        raise NotImplementedError(f"{self.name} multi-size artefacts are written by exporters/multisize.py")

    def size_runner(self, path: Path, entry: Mapping[str, Any]) -> Runner:
        raise NotImplementedError(f"{self.name} multi-size artefacts are run by exporters/multisize.py")


class ExportTarget(Protocol):
    """Everything a caller needs to know about a target is asked of this object."""

    name: str  # "coreml" | "onnx" | "tflite"
    suffix: str  # ".mlpackage" | ".onnx" | ".tflite"
    runtime: str  # what benchmarks call the runtime that runs it: "coreml" | "onnxruntime" | "litert"
    install_hint: str  # e.g. "pip install 'mvit[onnx]'"
    preprocess_in_graph: bool  # pixel preprocessing inside the graph (False: CoreML's ImageType does it)
    own_options: frozenset[str]  # layout options only this target has ("nhwc", "dynamic_batch"); others drop them
    verifiers: tuple[str, ...]  # --verifier values besides "auto"
    nms_output_names: list[str]  # a detection artefact's outputs once the target's NMS is appended
    nms_best_class_only: bool  # the native NMS keeps each box under its best class only (CoreML)
    class_id_output: bool  # a classifier gets a class_id output (CoreML's ClassifierConfig adds its own label)
    harness_ready: bool  # --into-harness can copy it into the iOS app
    export_rewrites: frozenset[str]  # exporters/rewrites/ names applied to the traced module
    # precision -> export_rewrites a quantised export of that precision is traced without
    # (the target's quantiser would leave the rewritten ops float)
    rewrites_skipped_for: Mapping[str, frozenset[str]]
    nms_forms: tuple[str, ...]  # detection NMS forms it can write (--coreml-nms), the default first; () for one
    precisions: tuple[str, ...]  # --precision values it writes (quantize.py says what each means for it)
    multisize_forms: tuple[str, ...]  # how it holds several sizes in one artefact (multisize.py), the default first
    writes_own_sizes: bool  # its package writes and runs multi-size artefacts itself (write_sizes, size_runner)

    def quantisation_settings(self, precision: str) -> dict[str, Any]:
        """What its quantiser does for a quantised precision, recorded in the artefact's metadata."""

    def output_names_with_nms(self, options: ExportOptions) -> list[str]:
        """A detection artefact's outputs once its NMS is appended, in the chosen form."""

    def available(self) -> bool: ...

    def export(self, request: ExportRequest, path: Path) -> None:
        """Write the artefact to `path` (a temporary path; the caller renames it into place)."""

    def read_metadata(self, path: Path) -> dict[str, str]: ...

    def op_histogram(self, path: Path) -> dict[str, int]:
        """Op type -> count in the saved graph (used to prove BN fusion and rank limits)."""

    def max_tensor_rank(self, path: Path) -> int: ...

    def structure_checks(self, path: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """(summary for the report, one check per structural rule) of the saved artefact, read only."""

    def load(self, path: Path, num_threads: int | None = None) -> Runner:
        """A runner for verification and benchmarks; raises ExportError where the OS can't run it."""

    def load_verifier(self, path: Path, verifier: str, num_threads: int | None = None) -> Runner:
        """A runner by --verifier name (one of `verifiers`)."""

    def benchmark_unavailable_reason(self) -> str | None:
        """Why this machine cannot time this target's artefacts (None: it can)."""

    def write_sizes(self, entries: list[Any], path: Path, precision: str) -> dict[str, Any]:
        """Write one artefact holding every multisize.SizedExport in `entries` (when writes_own_sizes)."""

    def size_runner(self, path: Path, entry: Mapping[str, Any]) -> Runner:
        """A runner for one recorded {"name", "image_size", "config"} entry (when writes_own_sizes)."""


def without_rewrites(target: ExportTarget, names: frozenset[str]) -> ExportTarget:
    """The target as build_for_target sees it, minus the export rewrites `names`."""
    return cast(ExportTarget, _TargetView(target, names)) if names & target.export_rewrites else target


class _TargetView:
    def __init__(self, target: ExportTarget, dropped: frozenset[str]) -> None:
        self._target = target
        self.export_rewrites = target.export_rewrites - dropped

    def __getattr__(self, name: str) -> Any:
        return getattr(self._target, name)
