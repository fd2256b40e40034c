"""The target as the registry hands it out: TARGET with its multi-size writer."""

from .multifunction import CoreMLMultiSize
from .target import TARGET

TARGET.multisize = CoreMLMultiSize()
