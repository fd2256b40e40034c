"""The public entry points: evaluate a package, or hold it loaded as a Runner."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch

from .errors import MilReferenceError
from .evaluator import ProgramEvaluator, supported
from .image import to_program_input
from .loader import LoadedPackage, load_package


class MilReferenceRunner:
    """Runs a saved .mlpackage with the reference evaluator (the Runner protocol of exporters.base).

    `run` takes the cross-target contract input: for an image input, float32 NCHW [N, 3, H, W] RGB
    pixels 0..255 (channel order and 8-bit rounding are applied here as Core ML would, scale and
    bias by the program itself); a tensor input is passed through as typed. Outputs are numpy
    arrays keyed by the package's output names; float outputs are float32 (holding fp16-rounded
    values for an fp16 program when `fp16_emulation`). For a classifier the probabilities output
    is an array [N, num_classes] in label order and the label output an array of strings [N].
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
        """"fp16" if any op output in the program is fp16-typed, else "fp32"."""
        return "fp16" if self._evaluator.has_fp16_values else "fp32"

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        unknown = sorted(set(inputs) - set(self.input_names))
        if unknown:
            raise MilReferenceError(f"unknown input(s) {unknown}; this model takes {self.input_names}")
        feeds = {}
        for name in self.input_names:
            if name not in inputs:
                raise MilReferenceError(f"missing input {name!r}; this model takes {self.input_names}")
            image = self.package.images.get(name)
            feeds[name] = to_program_input(inputs[name], image) if image else np.asarray(inputs[name])
        with torch.no_grad(), _torch_threads(self.num_threads):
            return self._run_batched(feeds)

    def pre_nms(self, inputs: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray] | None:
        """What the program's non_maximum_suppression op reads, for image 0: boxes [A,4] xyxy and
        foreground scores [A,C-1]; None for a program without NMS."""
        if not any(op.op_type == "non_maximum_suppression" for op in self._evaluator.function.operations):
            return None
        feeds = {}
        for name in self.input_names:
            image = self.package.images.get(name)
            x = np.asarray(inputs[name])[:1]
            feeds[name] = to_program_input(x, image) if image else x
        with torch.no_grad(), _torch_threads(self.num_threads):
            raw = self._evaluator.run(feeds, capture="non_maximum_suppression")
        boxes = _to_numpy(raw["non_maximum_suppression:boxes"])[0]  # centre x, centre y, width, height
        scores = _to_numpy(raw["non_maximum_suppression:scores"])[0]
        half = boxes[:, 2:] / 2
        return np.concatenate([boxes[:, :2] - half, boxes[:, :2] + half], axis=1), scores

    def _run_batched(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        # Image inputs are one image per prediction in Core ML; a batch runs image by image.
        shapes = [self._evaluator.input_shape(name) for name in feeds]
        n = next(iter(feeds.values())).shape[0] if feeds else 1
        if n > 1 and all(s is not None and len(s) > 0 and s[0] == 1 for s in shapes):
            parts = [self._run_once({k: v[i : i + 1] for k, v in feeds.items()}) for i in range(n)]
            return {k: np.concatenate([p[k] for p in parts], axis=0) for k in parts[0]}
        return self._run_once(feeds)

    def _run_once(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        raw = self._evaluator.run(feeds)
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


def _to_numpy(value) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        arr = value.numpy()
        return arr.astype(np.float32) if arr.dtype.kind == "f" else arr
    return np.asarray(value)


def evaluate(path: str | Path, inputs: dict[str, np.ndarray], fp16_emulation: bool = True,
             num_threads: int | None = None) -> dict[str, np.ndarray]:
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
