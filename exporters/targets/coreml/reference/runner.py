"""The public entry points: evaluate a package, or hold it loaded as a Runner."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch

from mvit.exporters.base import RunnerDefaults

from .errors import MilReferenceError
from .evaluator import ProgramEvaluator, supported
from .image import to_program_input
from .loader import LoadedPackage, load_package
from .nms_model import as_detections, run_nms_model


class MilReferenceRunner(RunnerDefaults):
    """Runs a saved .mlpackage with the reference evaluator (the Runner protocol of exporters.base).

    `run` takes the cross-target contract input: for an image input, float32 NCHW [N, 3, H, W] RGB
    pixels 0..255 (channel order and 8-bit rounding are applied here as Core ML would, scale and
    bias by the program itself); a tensor input is passed through as typed. Outputs are numpy
    arrays keyed by the package's output names; float outputs are float32 (holding fp16-rounded
    values for an fp16 program when `fp16_emulation`). For a classifier the probabilities output
    is an array [N, num_classes] in label order and the label output an array of strings [N].

    A Vision pipeline (ML Program -> NonMaximumSuppression model) runs the program here and its
    NMS model with nms_model.py: `iouThreshold` / `confidenceThreshold` are optional inputs, the
    outputs `confidence` [k, C] and `coordinates` [k, 4] (k <= the model's max boxes; for a batch,
    each image's rows zero-padded to the max and stacked), plus `boxes`/`scores`/`class_ids` [N, k]:
    the same rows as Vision reports them (top label, corner box), the detection form every target's
    verification reads.
    """

    label = "mil-reference"
    verified_by = "mil-reference"  # what verification reports name (see /work/notes/exporters.md)

    def __init__(self, path: str | Path, fp16_emulation: bool = True, num_threads: int | None = None) -> None:
        self.package: LoadedPackage = load_package(path)
        self.fp16_emulation = fp16_emulation
        self.num_threads = num_threads
        self._evaluator = ProgramEvaluator(self.package.program, fp16_emulation)
        self.input_names = list(self.package.input_names)
        self.output_names = list(self.package.output_names)

    @property
    def precision(self) -> str:
        """ "fp16" if any op output in the program is fp16-typed, else "fp32"."""
        return "fp16" if self._evaluator.has_fp16_values else "fp32"

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        unknown = sorted(set(inputs) - set(self.input_names))
        if unknown:
            raise MilReferenceError(f"unknown input(s) {unknown}; this model takes {self.input_names}")
        feeds, overrides = {}, {}
        for name in self.input_names:
            if name not in inputs:
                if name in self.package.optional_inputs:
                    continue
                raise MilReferenceError(f"missing input {name!r}; this model takes {self.input_names}")
            image = self.package.images.get(name)
            if self.package.nms and name in (self.package.nms.iou_threshold_input, self.package.nms.confidence_threshold_input):
                overrides[name] = np.asarray(inputs[name], dtype=np.float64)
                continue
            feeds[name] = to_program_input(inputs[name], image) if image else np.asarray(inputs[name])
        with torch.no_grad(), _torch_threads(self.num_threads):
            return self._run_batched(feeds, overrides)

    def pre_nms(self, inputs: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray] | None:
        """What NMS reads, for image 0: boxes [A,4] xyxy and foreground scores [A,C-1]; None for a
        program without NMS. For a pipeline that is the ML Program's output, for a single program
        the inputs of its non_maximum_suppression op."""
        nms = self.package.nms
        if nms is not None:
            feeds = self._program_feeds(inputs)
            with torch.no_grad(), _torch_threads(self.num_threads):
                raw = self._evaluator.run(feeds)
            return _corners(_to_numpy(raw[nms.coordinates_input])), _to_numpy(raw[nms.confidence_input])
        if not any(op.op_type == "non_maximum_suppression" for op in self._evaluator.function.operations):
            return None
        feeds = self._program_feeds(inputs)
        with torch.no_grad(), _torch_threads(self.num_threads):
            raw = self._evaluator.run(feeds, capture="non_maximum_suppression")
        boxes = _to_numpy(raw["non_maximum_suppression:boxes"])[0]  # centre x, centre y, width, height
        scores = _to_numpy(raw["non_maximum_suppression:scores"])[0]
        return _corners(boxes), scores

    def _program_feeds(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The ML Program's inputs for image 0 (a pipeline's NMS thresholds are not the program's)."""
        feeds = {}
        for name in self.input_names:
            if name not in self._evaluator.function.inputs:
                continue
            image = self.package.images.get(name)
            x = np.asarray(inputs[name])[:1]
            feeds[name] = to_program_input(x, image) if image else x
        return feeds

    def _run_batched(self, feeds: dict[str, np.ndarray], overrides: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        # Image inputs are one image per prediction in Core ML; a batch runs image by image.
        shapes = [self._evaluator.input_shape(name) for name in feeds]
        n = next(iter(feeds.values())).shape[0] if feeds else 1
        if n > 1 and all(s is not None and len(s) > 0 and s[0] == 1 for s in shapes):
            parts = [self._run_once({k: v[i : i + 1] for k, v in feeds.items()}, overrides) for i in range(n)]
            if self.package.nms is not None:
                return _stack_padded(parts)
            return {k: np.concatenate([p[k] for p in parts], axis=0) for k in parts[0]}
        return self._run_once(feeds, overrides)

    def _run_once(self, feeds: dict[str, np.ndarray], overrides: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        raw = self._evaluator.run(feeds)
        nms = self.package.nms
        if nms is not None:
            given = {k: _to_numpy(raw[k]) for k in (nms.confidence_input, nms.coordinates_input)}
            outputs = run_nms_model(nms, given, overrides)
            return {**outputs, **as_detections(outputs[nms.confidence_output], outputs[nms.coordinates_output])}
        outputs = {}
        classifier = self.package.classifier
        for name in self.output_names:
            value = raw[name]
            if classifier and name == classifier.label_name:
                outputs[name] = np.asarray([value] if isinstance(value, str) else value)
            elif classifier and name == classifier.probabilities_name:
                outputs[name] = value.numpy().astype(np.float32).reshape(-1, value.shape[-1])
            else:
                outputs[name] = _to_numpy(value)
        return outputs


@contextmanager
def _torch_threads(n: int | None) -> Iterator[None]:
    """Run with `n` torch threads, then restore the caller's setting (None: leave it alone)."""
    if n is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _corners(centre_size: np.ndarray) -> np.ndarray:
    """[A, 4] centre x, centre y, width, height -> x0, y0, x1, y1."""
    half = centre_size[:, 2:] / 2
    return np.concatenate([centre_size[:, :2] - half, centre_size[:, :2] + half], axis=1)


def _stack_padded(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Per-image NMS results with different row counts as one batch: zero rows (the proto's own
    padding) fill each image up to the longest; the detection form pads with score 0, class -1."""
    rows = max(len(p["scores"][0]) for p in parts)
    fill = {"class_ids": -1}
    stacked = {}
    for key in parts[0]:
        axis = 1 if key in ("boxes", "scores", "class_ids") else 0
        padded = []
        for p in parts:
            value = p[key]
            widths = [(0, 0)] * value.ndim
            widths[axis] = (0, rows - value.shape[axis])
            padded.append(np.pad(value, widths, constant_values=fill.get(key, 0)))
        stacked[key] = np.concatenate(padded, axis=0) if axis == 1 else np.stack(padded)
    return stacked


def _to_numpy(value) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        arr = value.numpy()
        return arr.astype(np.float32) if arr.dtype.kind == "f" else arr
    return np.asarray(value)


def evaluate(path: str | Path, inputs: dict[str, np.ndarray], fp16_emulation: bool = True, num_threads: int | None = None) -> dict[str, np.ndarray]:
    """Evaluate the .mlpackage at `path` on `inputs` (see MilReferenceRunner.run)."""
    return MilReferenceRunner(path, fp16_emulation=fp16_emulation, num_threads=num_threads).run(inputs)


def program_op_types(path: str | Path) -> dict[str, int]:
    """Op type -> count over the program's main function (const included), sorted by type."""
    program = load_package(path).program
    counts = Counter(op.op_type for op in program.functions["main"].operations)
    return dict(sorted(counts.items()))


def unsupported_ops(path: str | Path) -> set[str]:
    """Op types in the program the reference evaluator cannot run (empty when it can run it all)."""
    return {t for t in program_op_types(path) if not supported(t)}
