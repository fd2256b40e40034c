"""The Core AI target: `.aimodel` assets for iOS/macOS 27, written by coreai-torch and run on Linux by
coreai-core's reference runtime (`runtime.py`).

Importing the package imports nothing: the registry reads `options.py` without the target's
extra, and hands out the target from `assembled.py`, where its converter is imported.
"""
