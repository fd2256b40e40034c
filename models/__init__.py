"""PyTorch definitions of MobileViT and its heads, the model registry, BN fusion, checkpoints.

Knows nothing about export or benchmarking.
"""

from .fusion import fuse_batchnorm
from .mobilevit import PATCH_CONFIGS, MobileViT
from .mobilevit_v2 import MobileViTV2
from .registry import ModelSpec, PreprocessSpec, create_model, get_spec, list_models

__all__ = [
    "PATCH_CONFIGS",
    "MobileViT",
    "MobileViTV2",
    "ModelSpec",
    "PreprocessSpec",
    "create_model",
    "fuse_batchnorm",
    "get_spec",
    "list_models",
]
