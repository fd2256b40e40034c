"""The TFLite (LiteRT) export target: everything only this format knows."""

from .multisize import TFLiteMultiSize
from .target import TARGET

TARGET.multisize = TFLiteMultiSize()
