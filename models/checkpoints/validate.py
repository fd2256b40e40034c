"""Checks on the numbers a checkpoint's own files state, before anything is built from them.

A config.json or metadata value is data from a stranger: every one is type- and range-checked,
and an error names the file and the field, never an option the user did not pass.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from .errors import CheckpointError

MAX_CLASSES = 100_000  # ImageNet-21k has 21,841; a claim of millions is a broken or hostile file


def positive_int(config: dict, key: str, path: Path, *, default: int | None, upper: int) -> int | None:
    """config[key] as an int in 1..upper (absent: default)."""
    if key not in config or config[key] is None:
        return default
    value = config[key]
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= upper:
        raise CheckpointError(f"{path}: {key} is {value!r}; it must be a whole number from 1 to {upper}")
    return value


def finite_triple(value: Any, key: str, path: Path, *, positive: bool = False) -> tuple[float, float, float]:
    """A per-channel value (image_mean / image_std): three finite numbers, or one for all three."""
    items = [value] * 3 if isinstance(value, (int, float)) and not isinstance(value, bool) else value
    ok = isinstance(items, (list, tuple)) and len(items) == 3 and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and (v > 0 or not positive) for v in items)
    if not ok:
        kind = "positive" if positive else "finite"
        raise CheckpointError(f"{path}: {key} is {value!r}; it must be three {kind} numbers (R, G, B)")
    return (float(items[0]), float(items[1]), float(items[2]))


def hf_labels(config: dict, path: Path) -> list[str] | None:
    """id2label in class order; every id 0..n-1 exactly once (a gap would shift every later label)."""
    id2label = config.get("id2label")
    if not id2label:
        return None
    if not isinstance(id2label, dict):
        raise CheckpointError(f"{path}: id2label is not a JSON object of id -> label")
    try:
        ids = {int(k): v for k, v in id2label.items()}
    except (TypeError, ValueError):
        bad = next(k for k in id2label if not str(k).lstrip("-").isdigit())
        raise CheckpointError(f"{path}: id2label has the key {bad!r}, which is not a class number") from None
    missing = [i for i in range(len(ids)) if i not in ids]
    if missing:
        raise CheckpointError(
            f"{path}: id2label has no entry for class {missing[0]} (its ids must be 0..{len(ids) - 1}); "
            "fix id2label or pass --labels FILE")
    if len(ids) > MAX_CLASSES:
        raise CheckpointError(f"{path}: id2label has {len(ids)} classes; mvit accepts up to {MAX_CLASSES}")
    return [str(ids[i]) for i in range(len(ids))]
