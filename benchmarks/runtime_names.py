"""The runtimes a benchmark row can name: PyTorch eager and every export target's runtime.

Apart from runtimes.py (which loads models, and so torch) because reading a results file checks
its runtime names against these."""

from __future__ import annotations

from mvit.exporters.targets import RUNTIME_TARGETS, all_target_names

RUNTIMES = ("pytorch", *RUNTIME_TARGETS)
TARGET_RUNTIMES = {target: runtime for runtime, target in RUNTIME_TARGETS.items()}  # export target -> its runtime
# What `mvit-bench run` times without --runtime: PyTorch and the runtime of every target `--target all` exports.
DEFAULT_RUN_RUNTIMES = ("pytorch", *(TARGET_RUNTIMES[name] for name in all_target_names()))
