"""Task registry: name -> task unit. Adding a task is one module plus one line here."""

from __future__ import annotations

from .base import ExportTask
from .classification import TASK as CLASSIFICATION
from .detection import TASK as DETECTION
from .generic import TASK as GENERIC
from .segmentation import TASK as SEGMENTATION

TASKS: dict[str, ExportTask] = {t.name: t for t in (CLASSIFICATION, SEGMENTATION, DETECTION, GENERIC)}


def get_task(name: str) -> ExportTask:
    try:
        return TASKS[name]
    except KeyError:
        raise ValueError(f"unknown task {name!r}; known: {', '.join(TASKS)}") from None


def task_only_options() -> frozenset[str]:
    """Options some task owns; any other task refuses them."""
    return frozenset().union(*(t.options for t in TASKS.values()))
