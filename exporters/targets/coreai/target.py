"""The Core AI target: `.aimodel` assets written by coreai-torch, run by coreai-core's Linux runtime.

Core AI has no image input type and no classifier configuration, so preprocessing runs inside the
graph (fp32 pixels 0..255 in, as the ONNX and TFLite targets take them) and the labels and
preprocessing are recorded in the asset's metadata. Detection ends in the graph's own fixed-size
NMS (graph_nms.py): Core AI has no NMS op.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from mvit.errors import EXIT_FAILED, MvitError, one_line

from ...base import ExportError, ExportOptions, ExportRequest, RunnerDefaults, StepCallback, TargetDefaults, TargetOption, importable
from . import compress, graph_nms, runtime
from .asset_files import read_metadata
from .convert import Function, HalfPrecision, decode_metadata, write_asset
from .options import OPTIONS
from .program_summary import summarise

SINGLE_FUNCTION = "main"
# Said wherever its numbers appear: the Linux runtime is Apple's reference path, not a device.
RUNTIME_LABEL = "coreai-runtime (Linux reference, not device numbers)"


class AssetFailed(ExportError):
    """A damaged or unrunnable asset: a failed check (exit 1), never a pass."""

    exit_code = EXIT_FAILED


def _failing(exc: MvitError) -> AssetFailed:
    return AssetFailed(one_line(exc))


class CoreAIRunner(RunnerDefaults):
    """One function of an asset; every `run` is one child process of runtime.py."""

    verified_by = RUNTIME_LABEL

    def __init__(self, path: Path, function: str = SINGLE_FUNCTION) -> None:
        self.path, self.function = Path(path), function
        try:
            runtime.check_asset(self.path)
            meta = TARGET.read_metadata(self.path)
        except MvitError as exc:
            raise _failing(exc) from None
        self.input_names = ["image"]
        try:
            self.output_names = [str(n) for n in json.loads(meta.get("output_names", "[]"))]
        except ValueError:
            raise AssetFailed(f"{self.path}: its recorded output names are malformed; re-export it") from None

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return self.run_many([inputs])[0]

    def time_runs(self, inputs: dict[str, np.ndarray], warmups: int, runs: int, on_step: StepCallback | None = None) -> tuple[float, list[float]]:
        """Timed inside the runtime's process: a call timed here would time the process start too."""
        feed = {n: np.ascontiguousarray(inputs[n], dtype=np.float32) for n in self.input_names}
        try:
            seconds = runtime.time_runs(self.path, self.function, feed, warmup=0, runs=1 + warmups + runs)
        except MvitError as exc:
            raise _failing(exc) from None
        if on_step is not None:
            for _ in range(warmups + runs):
                on_step()
        return seconds[0] * 1e3, [s * 1e3 for s in seconds[1 + warmups :]]

    def run_many(self, inputs: list[dict[str, np.ndarray]]) -> list[dict[str, np.ndarray]]:
        """Several inputs in one child process: loading the asset costs more than one run."""
        feeds = [{n: np.ascontiguousarray(one[n], dtype=np.float32) for n in self.input_names} for one in inputs]
        try:
            return runtime.run(self.path, self.function, feeds)
        except MvitError as exc:
            raise _failing(exc) from None


class CoreAITarget(TargetDefaults):
    name = "coreai"
    suffix = ".aimodel"
    runtime = "coreai"
    install_hint = "pip install 'mvit[coreai]'"
    # None: the stem conv with the normalisation folded in converts, but aborts coreai-core's runtime
    # when the function loads (SIGABRT, measured with coreai-core 1.0.0b3); the layout rewrites
    # were measured for other runtimes' kernels.
    export_rewrites: frozenset[str] = frozenset()
    # int8-weights through coreai-torch's private compression module, pinned (compress.py).
    precisions: tuple[str, ...] = ("fp32", "fp16", "int8-weights")
    nms_output_names = list(graph_nms.OUTPUT_NAMES)
    multisize_forms: tuple[str, ...] = ("functions",)  # one asset, one fixed-shape function per size/config
    options: tuple[TargetOption, ...] = OPTIONS

    def quantisation_settings(self, precision: str) -> dict[str, Any]:
        if precision != "int8-weights":
            raise ExportError(f"--precision {precision}: the Core AI target writes {', '.join(self.precisions)} only")
        compress.check_compression_available()
        return dict(compress.SETTINGS)

    def available(self) -> bool:
        return importable("coreai_torch", "coreai.runtime")

    def export(self, request: ExportRequest, path: Path) -> None:
        module, names = traced_module(request.module, request.precision, request.options, request.input_shape, request.output_names)
        write_asset([Function(SINGLE_FUNCTION, module, request.input_shape, names)], path, request.metadata)

    def read_metadata(self, path: Path) -> dict[str, str]:
        try:
            return decode_metadata(read_metadata(path))
        except MvitError as exc:
            raise _failing(exc) from None

    def op_histogram(self, path: Path) -> dict[str, int]:
        return dict(self._summary(path)["ops"])

    def max_tensor_rank(self, path: Path) -> int:
        return int(self._summary(path)["max_rank"])

    def _summary(self, path: Path) -> dict[str, Any]:
        try:
            return summarise(path)
        except MvitError as exc:
            raise _failing(exc) from None

    def load(self, path: Path, num_threads: int | None = None) -> CoreAIRunner:
        return CoreAIRunner(path)


def traced_module(
    module: nn.Module, precision: str, options: ExportOptions, input_shape: tuple[int, ...], output_names: list[str]
) -> tuple[nn.Module, list[str]]:
    """The module coreai-torch converts and its output names, from the wrapped network."""
    traced: nn.Module = module
    if precision == "fp16":
        traced = HalfPrecision(module)
    elif precision == "int8-weights":
        traced = compress.with_int8_weights(module)
    if options.nms is None:
        return traced, list(output_names)
    return graph_nms.with_nms(traced, options.nms, input_shape), list(graph_nms.OUTPUT_NAMES)


TARGET = CoreAITarget()
