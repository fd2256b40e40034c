"""What an artefact's own mvit metadata says of its export (mvit-verify, mvit-eval), every field
checked: it is data from a file, never code."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mvit.errors import MvitError, one_line
from mvit.reading import loads

from .base import ExportError, ExportTarget
from .options import known_options
from .quantize import PRECISIONS
from .resolve import check_size_bounds


@dataclass(frozen=True)
class RecordedExport:
    """What an artefact's mvit metadata says of its export, every field checked: it is data from
    a file, never code."""

    target: str
    options: dict[str, Any]  # the export options as recorded, checked against the known ones
    preprocess: dict[str, Any]  # PreprocessSpec as recorded, plus "raw_input"
    image_size: int
    precision: str
    weights: str
    model: str
    config: str
    raw: Mapping[str, str]  # every metadata field as the artefact holds it (task, labels, functions)


def read_recorded(path: Path, target_name: str, export_target: ExportTarget) -> RecordedExport:
    """The artefact's metadata read by its target and checked; a file mvit did not write is an ExportError."""
    try:
        meta = export_target.read_metadata(path)
    except MvitError:
        raise
    except Exception as exc:
        raise ExportError(f"cannot read {path} as an artefact of target {target_name}: {exc.__class__.__name__}: {one_line(exc)}") from None
    try:
        opts = loads(meta.get("export_options", "{}"))
        pre = loads(meta["preprocess"])
        size = int(meta["image_size"])
        precision = meta.get("precision", "fp32")
        if not isinstance(opts, dict) or not isinstance(pre, dict):
            raise ValueError("not JSON objects")
    except (KeyError, ValueError, TypeError):
        raise ExportError(f"{path} carries no mvit export metadata; it was not written by mvit-export") from None
    try:  # checked here, so the error names the file, not an --image-size the user never passed
        check_size_bounds(size, "the recorded image_size")
    except ExportError as exc:
        raise ExportError(f"{path} has malformed mvit metadata ({exc}); re-export it") from None
    unknown = set(opts) - known_options()
    if unknown or precision not in PRECISIONS or pre.get("channel_order", "RGB") not in ("RGB", "BGR"):
        raise ExportError(f"{path} has malformed mvit metadata (options {sorted(unknown)}, precision {precision!r}); re-export it")
    return RecordedExport(
        target=target_name,
        options=opts,
        preprocess=pre,
        image_size=size,
        precision=precision,
        weights=str(meta.get("weights", "")),
        model=str(meta.get("model", "")),
        config=str(meta.get("config", "A")),
        raw=meta,
    )
