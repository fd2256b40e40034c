"""The Core AI target: `.aimodel` assets for iOS/macOS 27, written by coreai-torch and run on Linux by
coreai-core's reference runtime (`runtime.py`)."""

from typing import Any


def __getattr__(name: str) -> Any:
    # Lazy: the runtime's child processes import this package and need neither torch nor the converter.
    if name == "TARGET":
        from .target import TARGET

        return TARGET
    raise AttributeError(name)
