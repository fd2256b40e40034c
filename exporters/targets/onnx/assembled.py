"""The target as the registry hands it out: TARGET with its multi-size writer."""

from .multisize import OnnxMultiSize
from .target import TARGET

TARGET.multisize = OnnxMultiSize()
