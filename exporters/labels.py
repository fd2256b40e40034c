"""Class labels for an export: checkpoint id2label, else a --labels file, else the model's defaults."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mvit.models.checkpoints.validate import check_label_text
from mvit.reading import read_regular_text

from .base import ExportError


def read_labels_file(path: Path) -> list[str]:
    try:
        text = read_regular_text(path, "--labels")
    except (OSError, UnicodeDecodeError) as exc:
        raise ExportError(f"cannot read labels file {path}: {exc.__class__.__name__}; give a UTF-8 text file, one label per line") from None
    return [line.strip() for line in text.splitlines() if line.strip()]


def labels_from_info(info: Any) -> list[str] | None:
    """id2label from checkpoint info (CheckpointInfo.labels, or a dict {"0": "cat", ...}), in class order."""
    if info is None:
        return None
    labels = info.get("labels") if isinstance(info, dict) else getattr(info, "labels", None)
    if labels is None:
        return None
    if isinstance(labels, dict):
        return [str(labels[k]) for k in sorted(labels, key=lambda k: int(k))]
    return [str(label) for label in labels]


def resolve_labels(
    num_classes: int,
    *,
    labels_file: Path | None = None,
    checkpoint_info: Any = None,
    defaults: list[str] | None = None,
) -> list[str]:
    if labels_file is not None:
        labels, source = read_labels_file(labels_file), f"labels file {labels_file}"
    elif (from_ckpt := labels_from_info(checkpoint_info)) is not None:
        labels, source = from_ckpt, "the checkpoint's id2label"
    else:
        labels, source = defaults or [f"class_{i}" for i in range(num_classes)], "the model's default labels"
    check_label_text(labels, source)
    if len(labels) != num_classes:
        raise ExportError(f"{source} has {len(labels)} labels but the model has {num_classes} classes; give exactly one label per class")
    return labels
