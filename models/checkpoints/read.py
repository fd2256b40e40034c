"""Reading tensors off disk without running untrusted code."""

from __future__ import annotations

import pickle
from pathlib import Path

import torch
from safetensors import safe_open

from mvit.errors import MvitError, one_line
from mvit.reading import check_regular, loads, open_regular

from .errors import CheckpointError

_NESTED = ("state_dict", "model_state_dict", "model", "module")


def read_tensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Tensors and string metadata from a .safetensors file or a pickled state dict.

    Pickles are opened with weights_only=True, so a file that would run code is refused.
    """
    if path.suffix == ".safetensors":
        try:
            check_regular(path, "a checkpoint")
            with safe_open(str(path), framework="pt") as f:
                return {k: f.get_tensor(k) for k in f.keys()}, dict(f.metadata() or {})
        except MvitError:
            raise
        except Exception as exc:  # safetensors raises several types for corrupt files
            raise CheckpointError(f"{path} is not a readable safetensors file ({_first_line(exc)})") from None
    try:
        fh = open_regular(path, "a checkpoint")
    except OSError as exc:
        raise CheckpointError(f"cannot open checkpoint {path}: {exc.strerror or exc}") from None
    try:
        obj = torch.load(fh, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        # torch says "GLOBAL ..." when the file names Python code to call; anything else is damage.
        if "GLOBAL" not in str(exc):
            raise CheckpointError(
                f"{path} is not a PyTorch checkpoint (damaged or another format); pass a .pt/.pth/.bin state dict or a .safetensors file"
            ) from None
        # torch's own message suggests weights_only=False, i.e. running the file's code: never.
        raise CheckpointError(
            f"{path} holds Python objects besides tensors, and mvit never unpickles those (they can run code); "
            "save a plain state dict with torch.save(model.state_dict()) or use .safetensors"
        ) from None
    except Exception as exc:
        raise CheckpointError(
            f"{path} is not a readable PyTorch checkpoint ({_first_line(exc)}); save it with torch.save(model.state_dict()) or as .safetensors"
        ) from None
    finally:
        fh.close()
    for key in _NESTED:
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
            break
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"{path} holds no state dict of tensors")
    return {k.removeprefix("module."): v for k, v in obj.items()}, {}


def read_json(path: Path) -> dict:
    try:
        with open_regular(path, "a checkpoint's JSON") as fh:
            return loads(fh.read())
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{path} is not readable JSON ({_first_line(exc)})") from None


def _first_line(exc: Exception) -> str:
    return one_line(exc, limit=200)
