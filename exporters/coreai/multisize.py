"""Several sizes / configs in one `.aimodel`: one fixed-shape function per (config, size), named as
multisize.py names them, weights shared by the converter. The default function comes first."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .convert import Function, write_asset


def write_functions(entries: list[Any], path: Path, precision: str) -> dict[str, Any]:
    from .. import api
    from ..multisize import FUNCTIONS_KEY
    from .target import TARGET, traced_module

    functions = []
    metadata: dict[str, str] = {}
    for e in entries:
        opts = e.prepared.options[TARGET.name]
        built, _ = api.build_for_target(e.prepared.resolved, e.prepared.fused, TARGET, opts)
        shape = (1, 3, e.image_size, e.image_size)
        module, names = traced_module(built.module, precision, opts, shape, built.output_names)
        functions.append(Function(e.name, module, shape, names))
        if not metadata:  # the first (default) entry describes the asset; sizes are listed under FUNCTIONS_KEY
            metadata = dict(api._request(e.prepared.resolved, built, precision, opts, TARGET).metadata)
    metadata[FUNCTIONS_KEY] = json.dumps([e.as_entry() for e in entries])
    write_asset(functions, path, metadata)
    return {}
