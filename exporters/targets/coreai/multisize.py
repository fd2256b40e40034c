"""Several sizes / configs in one `.aimodel`: one fixed-shape function per (config, size), named as
multisize.py names them, weights shared by the converter. The default function comes first."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ...base import ExportError, Runner
from ...multisize import FUNCTIONS_KEY, SizedExport
from ...stages import build_for_target, export_request
from .convert import Function, write_asset
from .target import TARGET, CoreAIRunner, traced_module


class CoreAIMultiSize:
    """One asset whose functions are the sizes; each function runs on its own in the runtime."""

    def write(self, entries: list[SizedExport], path: Path, staging: Path, precision: str, form: str) -> dict[str, Any]:
        if form != "functions":
            raise ExportError(f"Core AI writes several sizes as one function per size, not as {form!r}")
        functions = []
        metadata: dict[str, str] = {}
        for e in entries:
            opts = e.prepared.options[TARGET.name]
            built, _ = build_for_target(e.prepared.resolved, e.prepared.fused, TARGET, opts)
            shape = (1, 3, e.image_size, e.image_size)
            module, names = traced_module(built.module, precision, opts, shape, built.output_names)
            functions.append(Function(e.name, module, shape, names))
            if not metadata:  # the first (default) entry describes the asset; sizes are listed under FUNCTIONS_KEY
                metadata = dict(export_request(e.prepared.resolved, built, precision, opts, TARGET).metadata)
        metadata[FUNCTIONS_KEY] = json.dumps([e.as_entry() for e in entries])
        write_asset(functions, path, metadata)
        return {}

    def runner(self, path: Path, form: str, verifier: str) -> Callable[[dict[str, Any]], Runner]:
        return lambda entry: CoreAIRunner(path, str(entry["name"]))
