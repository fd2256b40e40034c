"""The target as the registry hands it out: TARGET with its multi-size writer."""

from .multisize import CoreAIMultiSize
from .target import TARGET

TARGET.multisize = CoreAIMultiSize()
