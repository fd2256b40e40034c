"""The Core AI target: `.aimodel` assets for iOS/macOS 27, written by coreai-torch and run on Linux by
coreai-core's reference runtime (`runtime.py`)."""

from .multisize import CoreAIMultiSize
from .target import TARGET

TARGET.multisize = CoreAIMultiSize()
