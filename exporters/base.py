"""The one small interface every export target implements.

A target (coreml, onnx, tflite) is one package under targets/ whose `target.py` exposes a
`TARGET: ExportTarget` object. It knows how to write its artefact, read back its metadata and
run it. Shared concerns (preprocessing,
labels, tolerances, verification, reports) live beside this file, never inside a target.
"""

from __future__ import annotations

import importlib
import json
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal, Protocol, cast

import numpy as np
from torch import nn

from mvit.models.detection_postprocess import NmsSettings

from .checks import Check
from .errors import ExportError, TargetNotInstalled  # noqa: F401 (targets and callers import them from here)
from .profiling import OpProfiler

# int8-weights / int8 / palette4 / palette6: see quantize.py (what each means per target).
Precision = Literal["fp32", "fp16", "int8-weights", "int8", "palette4", "palette6"]


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
    channels_last_input: bool = False  # NHWC input (an option meaning "channels_last_input")
    dynamic_batch: bool = False  # a free batch dimension (an option meaning "dynamic_batch")
    metadata: dict[str, str] = field(default_factory=dict)  # written into the artefact as is
    options: ExportOptions = field(default_factory=lambda: ExportOptions())
    calibration: np.ndarray | None = None  # int8: pixels [N, 3, H, W] like the input, that set activation scales


# What shared code may ask of a target's own option, besides its value: "channels_last_input" (the
# artefact takes NHWC pixels), "dynamic_batch" (a free batch dimension), "nms_form" (which in-graph
# NMS form a detection artefact gets; its choices are the target's `nms_forms`), "multisize_form"
# (how several sizes share one artefact; its choices are the target's `multisize_forms`). "": only
# the target itself reads it.
OptionMeaning = Literal["", "channels_last_input", "dynamic_batch", "nms_form", "multisize_form"]


@dataclass(frozen=True)
class TargetOption:
    """An option only some targets have, declared by the target as data (its `options`): the CLI
    flag, the library keyword, the recorded `export_options` key and the file-name tag are all
    read from here, so shared code never names it."""

    name: str  # library keyword and recorded key, e.g. "nhwc"
    flag: str  # e.g. "--nhwc"
    help: str
    choices: tuple[str, ...] = ()  # (): an on/off flag; else one of these values (the default first)
    tag: str = ""  # file-name tag of an export with it ...
    tag_when: Any = True  # ... when its value is this
    means: OptionMeaning = ""
    owner: str = ""  # how "--flag applies to ... exports only" names its targets (default: their names)

    def tag_for(self, value: Any) -> str | None:
        return self.tag if self.tag and value == self.tag_when else None


@dataclass(frozen=True)
class ExportOptions:
    """The task and layout options of one export, checked (options.normalise_options) and typed.

    What is passed between layers; `as_dict()` is its JSON form in metadata and reports.
    """

    mask: bool = False  # segmentation: class mask inside the model
    raw_detection: bool = False  # detection: raw box/score tensors, anchors beside the artefact
    raw_input: bool = False  # the normalised tensor as input instead of pixels
    nms: NmsSettings | None = None  # detection: NMS inside the artefact, with these settings
    # The target's own options that are on, as it declares them (TargetOption), with their values.
    target_options: tuple[tuple[TargetOption, Any], ...] = ()

    def option(self, name: str) -> Any:
        """The value of the target's own option `name`; None when it is off or not the target's."""
        return next((value for declared, value in self.target_options if declared.name == name), None)

    def meaning(self, means: OptionMeaning) -> TargetOption | None:
        """The target option that is on and means `means` (see OptionMeaning), if any."""
        return next((declared for declared, _ in self.target_options if declared.means == means), None)

    def as_dict(self) -> dict[str, Any]:
        """The options that are on, as JSON-able data (the artefact's `export_options`)."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name != "target_options" and value not in (None, False):
                out[f.name] = value.as_dict() if isinstance(value, NmsSettings) else value
        out.update((declared.name, value) for declared, value in self.target_options)
        return out

    @classmethod
    def from_dict(cls, data: ExportOptions | Mapping[str, Any] | None, declared: Iterable[TargetOption] = ()) -> ExportOptions:
        """From `as_dict()` output (or already typed), the target's own options among `declared`;
        unknown keys are an error."""
        if isinstance(data, ExportOptions):
            return data
        data = dict(data or {})
        own = {option.name: option for option in declared}
        known = {f.name for f in fields(cls) if f.name != "target_options"} | set(own)
        if set(data) - known:
            raise ExportError(f"unknown export option(s) {sorted(set(data) - known)}; known: {sorted(known)}")
        target_options = tuple((option, data.pop(name)) for name, option in own.items() if data.get(name) not in (None, False))
        for name in own:
            data.pop(name, None)
        nms = data.pop("nms", None)
        if isinstance(nms, dict):
            nms = NmsSettings.from_dict(nms)
        return cls(**{k: v for k, v in data.items() if v is not None}, nms=nms or None, target_options=target_options)


class Runner(Protocol):
    """An artefact loaded to run; `RunnerDefaults` answers what most runners answer alike."""

    input_names: list[str]
    output_names: list[str]
    verified_by: str  # who ran it, as verification reports name it

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]: ...

    def run_many(self, inputs: list[dict[str, np.ndarray]]) -> list[dict[str, np.ndarray]]:
        """The outputs of each inputs dict, in order (a runner that pays a start-up per call pays it once here)."""

    def time_runs(self, inputs: dict[str, np.ndarray], warmups: int, runs: int, on_step: StepCallback | None = None) -> tuple[float, list[float]]:
        """(first run ms, `runs` timed runs ms after `warmups` untimed ones); `on_step` after each warm-up and run."""

    def pre_nms(self, inputs: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray] | None:
        """What the artefact's NMS reads for image 0 (boxes [A,4] xyxy, foreground scores [A,C-1]);
        None where it has no NMS or the runtime does not expose it."""


StepCallback = Callable[[], None]


def time_calls(call: Callable[[], object], warmups: int, runs: int, on_step: StepCallback | None = None) -> tuple[float, list[float]]:
    """(first call ms, timed calls ms). The first call is timed alone: it pays lazy initialisation
    (kernel selection, XNNPACK packing, allocator growth)."""
    start = time.perf_counter_ns()
    call()
    first_ms = (time.perf_counter_ns() - start) / 1e6
    for _ in range(warmups):
        call()
        if on_step:
            on_step()
    times = []
    for _ in range(runs):
        start = time.perf_counter_ns()
        call()
        times.append((time.perf_counter_ns() - start) / 1e6)
        if on_step:
            on_step()
    return first_ms, times


class RunnerDefaults(ABC):
    """What most runners answer alike; a runner overrides what differs (Core AI's runs in a child process)."""

    verified_by = "unknown"

    @abstractmethod
    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]: ...

    def run_many(self, inputs: list[dict[str, np.ndarray]]) -> list[dict[str, np.ndarray]]:
        return [self.run(one) for one in inputs]

    def time_runs(self, inputs: dict[str, np.ndarray], warmups: int, runs: int, on_step: StepCallback | None = None) -> tuple[float, list[float]]:
        return time_calls(lambda: self.run(inputs), warmups, runs, on_step)

    def pre_nms(self, inputs: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray] | None:
        return None


class MultiSizeWriter(Protocol):
    """How a target holds several sizes in one artefact (its `multisize_forms`)."""

    def write(self, entries: list[Any], path: Path, staging: Path, precision: str, form: str) -> dict[str, Any]:
        """Write one artefact of every entry (multisize.SizedExport) at `path`; returns report fields
        (under "checks", a list of checks.Check only the writer can make)."""

    def runner(self, path: Path, form: str, verifier: str) -> Callable[[dict[str, Any]], Runner]:
        """recorded entry -> the runner of that function / size / signature of the artefact."""


NO_XCODE_PREVIEW = "none: Xcode previews CoreML packages only"


def read_back_fields(metadata: Mapping[str, str], preview: str | None = None, note: str = NO_XCODE_PREVIEW) -> dict[str, Any]:
    """The export report's view of an artefact, read back from its metadata: its output names and
    the Xcode preview it gets."""
    fields: dict[str, Any] = {}
    if "output_names" in metadata:
        fields["output_names"] = json.loads(metadata["output_names"])
    fields["xcode_preview"] = preview
    fields["xcode_preview_note"] = note
    return fields


class TargetDefaults:
    """What most targets answer alike; a target overrides what differs (CoreML: most of it)."""

    preprocess_in_graph = True
    multisize: MultiSizeWriter | None = None
    multisize_forms: tuple[str, ...] = ()  # one size per artefact: a list of sizes is refused
    op_profiler: OpProfiler | None = None
    quiet_load_options: Mapping[str, Any] = {}
    options: tuple[TargetOption, ...] = ()
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
    name = ""

    def output_names_with_nms(self, options: ExportOptions) -> list[str]:
        return list(self.nms_output_names)

    def benchmark_unavailable_reason(self) -> str | None:
        return None

    def load_verifier(self, path: Path, verifier: str, num_threads: int | None = None) -> Runner:
        raise ExportError(f"--verifier {verifier} applies to CoreML exports only; {self.name} artefacts have one runtime")

    def structure_checks(self, path: Path) -> tuple[dict[str, Any], list[Check]]:
        return {}, []

    def report_fields(self, path: Path) -> dict[str, Any]:
        return read_back_fields(self.read_metadata(path))  # type: ignore[attr-defined]


class ExportTarget(Protocol):
    """Everything a caller needs to know about a target is asked of this object."""

    name: str  # "coreml" | "onnx" | "tflite"
    suffix: str  # ".mlpackage" | ".onnx" | ".tflite"
    runtime: str  # what benchmarks call the runtime that runs it: "coreml" | "onnxruntime" | "litert"
    install_hint: str  # e.g. "pip install 'mvit[onnx]'"
    preprocess_in_graph: bool  # pixel preprocessing inside the graph (False: CoreML's ImageType does it)
    options: tuple[TargetOption, ...]  # the options only this target has, as data; other targets drop them
    verifiers: tuple[str, ...]  # --verifier values besides "auto"
    nms_output_names: list[str]  # a detection artefact's outputs once the target's NMS is appended
    nms_best_class_only: bool  # the native NMS keeps each box under its best class only (CoreML)
    class_id_output: bool  # a classifier gets a class_id output (CoreML's ClassifierConfig adds its own label)
    harness_ready: bool  # --into-harness can copy it into the iOS app
    export_rewrites: frozenset[str]  # exporters/rewrites/ names applied to the traced module
    # precision -> export_rewrites a quantised export of that precision is traced without
    # (the target's quantiser would leave the rewritten ops float)
    rewrites_skipped_for: Mapping[str, frozenset[str]]
    nms_forms: tuple[str, ...]  # detection NMS forms it can write (its "nms_form" option), the default first; () for one
    precisions: tuple[str, ...]  # --precision values it writes (quantize.py says what each means for it)
    multisize_forms: tuple[str, ...]  # how it holds several sizes in one artefact (multisize.py; its "multisize_form" option), the default first
    multisize: MultiSizeWriter | None  # writes and runs those forms; set by the target's package
    op_profiler: OpProfiler | None  # its per-op views (profiling.py) for mvit-bench profile and placement; None: it has none
    # load() keyword arguments for a runner that shares its process with others (benchmarks,
    # evaluation): ONNX Runtime's idle threads keep spinning after a call and slow the next model.
    quiet_load_options: Mapping[str, Any]

    def quantisation_settings(self, precision: str) -> dict[str, Any]:
        """What its quantiser does for a quantised precision, recorded in the artefact's metadata."""

    def output_names_with_nms(self, options: ExportOptions) -> list[str]:
        """A detection artefact's outputs once its NMS is appended, in the chosen form."""

    def available(self) -> bool: ...

    def export(self, request: ExportRequest, path: Path) -> None:
        """Write the artefact to `path` (a temporary path; the caller renames it into place)."""

    def read_metadata(self, path: Path) -> dict[str, str]: ...

    def report_fields(self, path: Path) -> dict[str, Any]:
        """The report's view of the saved artefact read back from it (output names, Xcode preview)."""

    def op_histogram(self, path: Path) -> dict[str, int]:
        """Op type -> count in the saved graph (used to prove BN fusion and rank limits)."""

    def max_tensor_rank(self, path: Path) -> int: ...

    def structure_checks(self, path: Path) -> tuple[dict[str, Any], list[Check]]:
        """(summary for the report, one check per structural rule) of the saved artefact, read only."""

    def load(self, path: Path, num_threads: int | None = None) -> Runner:
        """A runner for verification and benchmarks; raises ExportError where the OS can't run it."""

    def load_verifier(self, path: Path, verifier: str, num_threads: int | None = None) -> Runner:
        """A runner by --verifier name (one of `verifiers`)."""

    def benchmark_unavailable_reason(self) -> str | None:
        """Why this machine cannot time this target's artefacts (None: it can)."""


def without_rewrites(target: ExportTarget, names: frozenset[str]) -> ExportTarget:
    """The target as build_for_target sees it, minus the export rewrites `names`."""
    return cast(ExportTarget, _TargetView(target, names)) if names & target.export_rewrites else target


class _TargetView:
    def __init__(self, target: ExportTarget, dropped: frozenset[str]) -> None:
        self._target = target
        self.export_rewrites = target.export_rewrites - dropped

    def __getattr__(self, name: str) -> Any:
        return getattr(self._target, name)
