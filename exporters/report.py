"""The JSON report written beside each artefact (atomically: temp file, then rename)."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

REPORT_SCHEMA = "mvit-export-report/1"


def report_path_for(artefact: Path) -> Path:
    return artefact.with_name(artefact.name + ".report.json")


def write_json_atomic(path: Path, data: Any) -> None:
    """Sorted keys, no timestamps: the same export writes the same report bytes."""
    text = json.dumps(data, indent=2, sort_keys=True, default=str) + "\n"
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_report(artefact: Path, report: dict[str, Any]) -> Path:
    path = report_path_for(artefact)
    write_json_atomic(path, {"schema": REPORT_SCHEMA, **report})
    return path
