"""The Core AI target: `.aimodel` assets for iOS/macOS 27, written by coreai-torch and run on Linux by
coreai-core's reference runtime (`runtime.py`)."""
