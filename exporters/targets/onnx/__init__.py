"""The ONNX export target: everything only this format knows."""

from .multisize import OnnxMultiSize
from .target import TARGET

TARGET.multisize = OnnxMultiSize()
