"""The JSON report written beside each artefact (atomically, with normal file modes)."""

from __future__ import annotations

from pathlib import Path

REPORT_SCHEMA = "mvit-export-report/1"


def report_path_for(artefact: Path) -> Path:
    return artefact.with_name(artefact.name + ".report.json")
