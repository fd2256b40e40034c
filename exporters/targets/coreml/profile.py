"""CoreML's per-op views exist only on Apple's systems; on any host each says where to find them."""

from __future__ import annotations

from pathlib import Path

from ...base import ExportError
from ...profiling import Example, Placement, Profile


class CoreMLOpProfiler:
    def profile(self, path: Path, example: Example, threads: int, warmups: int, runs: int) -> Profile:
        raise ExportError(f"{path}: profiling coreml artefacts needs macOS (Xcode's Core ML performance report)")

    def placement(self, path: Path, example: Example) -> Placement:
        raise ExportError(f"{path}: coreml placement is read from the iOS harness's results JSON (--base-harness / --candidate-harness), not from the artefact")
