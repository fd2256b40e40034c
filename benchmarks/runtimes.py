"""The runtimes a benchmark row can use, and how each gets its model loaded.

PyTorch eager runs the registry module directly, in its fastest eager setting (BN fused,
channels_last: about 1.7x faster than NCHW for XS and S, because one 1x1 conv is pathologically
slow in NCHW). Every
other runtime runs an artefact built by the exporters (`mvit.exporters.api.export_model`, or a
target's own `export` for comparison models outside the registry) and loaded with
`get_target(name).load(path, num_threads)`: one code path builds and runs artefacts.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from mvit.errors import MvitError
from mvit.exporters.base import StepCallback, time_calls
from mvit.exporters.targets import ARTEFACT_RUNTIMES, FOLDER_MARKERS, RUNTIME_TARGETS
from mvit.files import publish, staging_dir

from .comparison_models import CVT13, CVT13_INPUT_SIZE, build_cvt13
from .runtime_names import RUNTIMES, TARGET_RUNTIMES  # noqa: F401 (callers read them here)


class RuntimeUnavailable(MvitError):
    """This row cannot run here, or this artefact cannot be run; the message says why.

    `mvit-bench run` skips such a row; where it is the whole command (ab), it is bad input."""


@dataclass(frozen=True)
class BenchModel:
    name: str
    config: str  # "A" | "B" | "-" (no MobileViT blocks)
    task: str
    input_size: int
    in_registry: bool

    @property
    def build_config(self) -> str:
        return "A" if self.config == "-" else self.config

    def build(self) -> nn.Module:
        """The eval-mode network taking the normalised NCHW tensor."""
        if not self.in_registry:
            return build_cvt13()
        from mvit.models import create_model

        return create_model(self.name, self.build_config)

    @property
    def raw_input(self) -> bool:
        """Registry models are exported with preprocessing inside (pixels 0..255 in); CvT-13 is
        exported taking the normalised tensor."""
        return not self.in_registry


def bench_model(name: str, config: str, image_size: int | None = None) -> BenchModel:
    if name == CVT13:
        return BenchModel(CVT13, "-", "classification", image_size or CVT13_INPUT_SIZE, False)
    from mvit.models import get_spec

    spec = get_spec(name)  # KeyError names the known models
    return BenchModel(name, config if spec.supports_patch_config else "-", spec.task, image_size or spec.input_size, True)


def example_input(model: BenchModel, seed: int = 0) -> np.ndarray:
    """A fixed input: RGB pixels 0..255 for image-input artefacts, a normal tensor for raw ones."""
    rng = np.random.default_rng(seed)
    shape = (1, 3, model.input_size, model.input_size)
    if model.raw_input:
        return rng.standard_normal(shape, dtype=np.float32)
    return rng.uniform(0.0, 255.0, shape).astype(np.float32)


def runtime_available(runtime: str) -> None:
    """Raise RuntimeUnavailable with the reason when `runtime` cannot run on this machine."""
    if runtime not in RUNTIMES:
        raise RuntimeUnavailable(f"unknown runtime {runtime!r}; choose from {', '.join(RUNTIMES)}")
    if runtime == "pytorch":
        return
    from mvit.exporters.base import ExportError
    from mvit.exporters.targets import get_target

    try:
        target = get_target(RUNTIME_TARGETS[runtime])  # raises TargetNotInstalled with the pip command
    except ExportError as exc:
        raise RuntimeUnavailable(f"{runtime} skipped: {exc}") from None
    reason = target.benchmark_unavailable_reason()
    if reason:
        raise RuntimeUnavailable(reason)


def build_artefact(model: BenchModel, runtime: str, out_dir: Path, precision: str = "fp32", reuse: bool = False) -> Path:
    """Export `model` for `runtime` into `out_dir` (fp32, no verification: this is timing).

    `reuse`: take an artefact already in `out_dir` whose own metadata says it is this model,
    config, size and precision with default options and random weights (the caller vouches it
    was built by the same code)."""
    target_name = RUNTIME_TARGETS[runtime]
    out_dir.mkdir(parents=True, exist_ok=True)
    if reuse:
        existing = find_artefact(model, target_name, out_dir, precision)
        if existing is not None:
            return existing
    with converter_output_to_stderr():
        if model.in_registry:
            from mvit.exporters.api import export_model

            result = export_model(
                model.name,
                target_name,
                out_dir,
                config=model.build_config,
                precision=precision,
                image_size=model.input_size,
                verify=False,
            )
            return Path(result.path)
        return _export_comparison_model(model, target_name, out_dir, precision)


def find_artefact(model: BenchModel, target_name: str, out_dir: Path, precision: str) -> Path | None:
    from mvit.exporters.targets import get_target

    target = get_target(target_name)
    wanted = {"model": model.name, "config": model.build_config if model.in_registry else "-", "image_size": str(model.input_size), "precision": precision}
    for path in sorted(out_dir.glob(f"*{target.suffix}")):
        if path.name.startswith("."):  # a temp file some interrupted export left behind
            continue
        try:
            meta = target.read_metadata(path)
        except Exception:  # not an artefact this target can read: not ours to reuse
            continue
        if all(meta.get(k) == v for k, v in wanted.items()) and meta.get("export_options", "{}") == "{}" and meta.get("weights", "random").startswith("random"):
            return path
    return None


@contextlib.contextmanager
def converter_output_to_stderr():
    """Converters (litert-torch) print progress on stdout, some of it from native code; send
    fd 1 to stderr meanwhile so stdout carries only mvit-bench's tables and reports."""
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        os.dup2(2, 1)
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def _export_comparison_model(model: BenchModel, target_name: str, out_dir: Path, precision: str) -> Path:
    """Models outside the registry go through the same target's `export`, raw-input."""
    from mvit.exporters.base import ExportRequest
    from mvit.exporters.preprocessing import preprocess_dict
    from mvit.exporters.targets import get_target
    from mvit.models import PreprocessSpec, fuse_batchnorm

    target = get_target(target_name)
    module = model.build()
    try:
        module = fuse_batchnorm(module)
    except ValueError:
        pass  # a BN the fuser cannot reach stays; the export is still the same network
    size = model.input_size
    # ImageNet recipe (CvT was trained with it); raw input, so it only documents the artefact.
    spec = PreprocessSpec(256, 224, 1 / 255, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225), "RGB").with_size(size)
    preprocess = preprocess_dict(spec, raw_input=True, in_graph=False)
    request = ExportRequest(
        module=module,
        model_name=model.name,
        task=model.task,
        input_shape=(1, 3, size, size),
        output_names=["logits"],
        labels=[f"class_{i}" for i in range(1000)],
        preprocess=preprocess,
        precision=precision,  # type: ignore[arg-type]
        metadata={
            "model": model.name,
            "task": model.task,
            "config": "-",
            "precision": precision,
            "image_size": str(size),
            "preprocess": json.dumps(preprocess, sort_keys=True),
        },
    )
    final = out_dir / f"{model.name}_{size}_{precision}{target.suffix}"
    # The exporters' own staging: a private folder removed whatever happens, and only a finished
    # export published under `final` (replacing an earlier one, .mlpackage folders included).
    with staging_dir(out_dir) as work:
        tmp = work / final.name
        target.export(request, tmp)
        publish([(tmp, final)], folder_artefacts=FOLDER_MARKERS)
    return final


@dataclass
class LoadedModel:
    infer: Callable[[], object]  # one inference on the fixed example input
    load_ms: float
    artefact: str | None
    # (warmups, runs, on_step) -> (first inference ms, timed runs ms): the runner's own timing, so one
    # that runs in a child process (Core AI's) times there, not the process start.
    timed: Callable[[int, int, StepCallback | None], tuple[float, list[float]]]


def load_pytorch(model: BenchModel, threads: int, x: np.ndarray) -> LoadedModel:
    from mvit.models import fuse_batchnorm

    torch.set_num_threads(threads)
    start = time.perf_counter()
    module = model.build()
    try:
        module = fuse_batchnorm(module)
    except ValueError:
        pass
    # Module.to accepts memory_format at run time; torch's stubs list only device/dtype/tensor.
    module = module.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    load_ms = (time.perf_counter() - start) * 1e3
    warm_heap()
    # Eager modules take the normalised tensor; the pixel->tensor affine is outside the timing.
    tensor = torch.from_numpy(x if model.raw_input else (x / 255.0).astype(np.float32))
    tensor = tensor.contiguous(memory_format=torch.channels_last)

    def infer():
        with torch.inference_mode():
            return module(tensor)

    return LoadedModel(infer, load_ms, None, functools.partial(time_calls, infer))


# glibc serves blocks above its mmap threshold (128 KiB at first) with fresh mmaps, page-faulted
# in on every forward; freeing one large block raises the threshold (up to 32 MiB), after which
# activations come from the reused heap. Measured (docs/benchmark-results.md): eager XXS at 256 took 4032 page
# faults per forward in a fresh process and 35 after this, and ran 1.1-1.6x slower without it.
_HEAP_WARMING_BYTES = 30 * 2**20


def warm_heap() -> None:
    """One large allocation, touched and freed, so eager runs at the speed a warm process has."""
    block = torch.empty(_HEAP_WARMING_BYTES, dtype=torch.uint8)
    block.fill_(1)
    del block


def load_artefact(runtime: str, artefact: Path, threads: int, x: np.ndarray, spinning: bool = False) -> LoadedModel:
    """`spinning=True` only to show what the runtime's default costs (`solo_check --old`)."""
    from mvit.exporters.targets import get_target

    target = get_target(RUNTIME_TARGETS[runtime])
    start = time.perf_counter()
    runner = target.load(artefact, threads, **({} if spinning else target.quiet_load_options))
    load_ms = (time.perf_counter() - start) * 1e3
    feeds = {"image": x}
    return LoadedModel(lambda: runner.run(feeds), load_ms, str(artefact), functools.partial(runner.time_runs, feeds))


def artefact_runtime(path: Path) -> str:
    """The runtime that runs an artefact, from its file suffix."""
    try:
        return ARTEFACT_RUNTIMES[path.suffix]
    except KeyError:
        raise RuntimeUnavailable(f"{path}: unknown artefact type {path.suffix!r}; pass a {', '.join(sorted(ARTEFACT_RUNTIMES))} artefact") from None
