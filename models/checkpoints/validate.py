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
# A std divides 0..1 pixels: trained ones are 0.2-0.3, and below 1e-3 a pixel step of 1/255 becomes
# a jump of 4+ in the first activation (1e-30: 1e28, inf in fp16). Such a value is a typo or a trap.
MIN_STD = 1e-3
# Labels end up in CoreML's ClassifierConfig, the report and error lines. ImageNet-21k's longest is
# under 300 characters and all of them together under 1 MB; 10 MB of label text is not a label set.
MAX_LABEL_CHARS = 1000
MAX_LABELS_TEXT = 2_000_000


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
    ok = (
        isinstance(items, (list, tuple))
        and len(items) == 3
        and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and (v > 0 or not positive) for v in items)
    )
    if not ok:
        kind = "positive" if positive else "finite"
        raise CheckpointError(f"{path}: {key} is {_short(value)}; it must be three {kind} numbers (R, G, B)")
    if key.endswith("std") and min(items) < MIN_STD:
        raise CheckpointError(
            f"{path}: {key} is {_short(value)}; a standard deviation of 0..1 pixels below {MIN_STD} "
            "is not one a network was trained with (typical: 0.2-0.3); fix the file or pass --std R,G,B"
        )
    return (float(items[0]), float(items[1]), float(items[2]))


def hf_labels(config: dict, path: Path) -> list[str] | None:
    """id2label in class order; every id 0..n-1 exactly once (a gap would shift every later label)."""
    id2label = config.get("id2label")
    if not id2label:
        return None
    if not isinstance(id2label, dict):
        raise CheckpointError(f"{path}: id2label is not a JSON object of id -> label")
    ids: dict[int, Any] = {}
    for key, label in id2label.items():
        # Only plain ASCII digits: int() would also take '０', '1_0' and ' 1', and '0' vs '00' would
        # silently name one class twice (the later one winning).
        if not (key.isascii() and key.isdigit()) or (len(key) > 1 and key.startswith("0")):
            raise CheckpointError(f"{path}: id2label has the key {_short(key)}, which is not a class number (0, 1, 2, ...)")
        if not isinstance(label, str):
            raise CheckpointError(f"{path}: id2label[{key!r}] is {_short(label)}; labels are strings")
        ids[int(key)] = label
    missing = [i for i in range(len(ids)) if i not in ids]
    if missing:
        raise CheckpointError(f"{path}: id2label has no entry for class {missing[0]} (its ids must be 0..{len(ids) - 1}); fix id2label or pass --labels FILE")
    if len(ids) > MAX_CLASSES:
        raise CheckpointError(f"{path}: id2label has {len(ids)} classes; mvit accepts up to {MAX_CLASSES}")
    labels = [ids[i] for i in range(len(ids))]
    check_label_text(labels, f"{path}: id2label")
    return labels


def check_label_text(labels: list[str], source: str) -> None:
    """Labels of a sane length: each up to MAX_LABEL_CHARS, all together up to MAX_LABELS_TEXT."""
    long = next((i for i, label in enumerate(labels) if len(label) > MAX_LABEL_CHARS), None)
    if long is not None:
        raise CheckpointError(f"{source}: label {long} is {len(labels[long])} characters long; mvit accepts labels up to {MAX_LABEL_CHARS} characters")
    total = sum(len(label) for label in labels)
    if total > MAX_LABELS_TEXT:
        raise CheckpointError(f"{source}: its labels hold {total} characters in all; mvit accepts up to {MAX_LABELS_TEXT}")


def _short(value: Any) -> str:
    """A value quoted from a file, cut short: a stranger's file can hold megabytes in one field."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
