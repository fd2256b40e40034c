"""Checkpoint loading and saving: Hugging Face folders, ml-cvnets, timm, and our own format."""

from .convert import from_format, to_format
from .errors import CheckpointError
from .keymaps import KEY_MAPS
from .load import CheckpointInfo, load_checkpoint, save_checkpoint

__all__ = [
    "KEY_MAPS",
    "CheckpointError",
    "CheckpointInfo",
    "from_format",
    "load_checkpoint",
    "save_checkpoint",
    "to_format",
]
