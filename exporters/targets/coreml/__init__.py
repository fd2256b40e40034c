"""The CoreML export target: everything only this format knows."""

from .multifunction import CoreMLMultiSize
from .target import TARGET

TARGET.multisize = CoreMLMultiSize()
