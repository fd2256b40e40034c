"""`python -m mvit.exporters.matrix`: export and verify every registered model x config x target.

The full-size companion of the XXS unit tests: it writes every artefact, its report, and one
markdown table of verdicts (the source of the table in docs/exporting.md).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mvit.errors import MvitError
from mvit.models import get_spec, list_models
from mvit.work import Workers, pack_files, run_tasks, unpack_files

from .api import export_model
from .base import ExportError
from .targets import all_target_names
from .tasks import get_task


@dataclass(frozen=True)
class Row:
    """One export of the matrix: one independent task."""

    model: str
    config: str
    target: str
    precision: str
    score_threshold: float | None = None


def rows_of(models: list[str], configs: list[str], targets: list[str], precision: str, score_threshold: float | None = None) -> list[Row]:
    return [
        Row(model, config, target, precision, score_threshold if "nms" in get_task(get_spec(model).task).options else None)
        for model in models
        for config in configs
        if config == "A" or get_spec(model).supports_patch_config
        for target in targets
    ]


def export_row(out: Path | None, task: Row) -> dict[str, Any]:
    """Export and verify one row under `out`; with no `out` (a Ray worker, maybe another machine),
    in a scratch folder whose files come back with the row as "files"."""
    if out is None:
        with tempfile.TemporaryDirectory(prefix="mvit-matrix-") as scratch:
            shipped = export_row(Path(scratch), task)
            made = Path(scratch) / task.model
            shipped["files"] = {p.name: pack_files(p) for p in sorted(made.glob("[!.]*"))}  # not a failed run's staging
            return shipped
    row: dict[str, Any] = {"model": task.model, "config": task.config, "target": task.target, "precision": task.precision}
    extra: dict[str, Any] = {}
    if task.score_threshold is not None:
        extra["nms"] = {"score_threshold": task.score_threshold}
        row["score_threshold"] = task.score_threshold
    try:
        result = export_model(task.model, task.target, out / task.model, config=task.config, precision=task.precision, **extra)
        report = result.report or {}
        verification = report.get("verification") or {}
        outputs = verification.get("outputs", {})
        row |= {
            "verdict": result.verdict,
            "verified_by": report.get("verified_by"),
            "size_mb": round(result.size_bytes / 2**20, 2),
            "max_relative_error": max((o["relative_error"] for o in outputs.values()), default=None),
            "failed": report.get("failed", []),
            "warnings": len(report.get("warnings", [])),
        }
        metrics = verification.get("task_metrics", {})
        if "reference_detections" in metrics:
            row |= {k: metrics[k] for k in ("reference_detections", "matched_detections")}
    except ExportError as exc:
        row |= {"verdict": "error", "failed": [str(exc)]}
    except Exception as exc:  # one broken row must not hide the others
        row |= {"verdict": "error", "failed": [f"{exc.__class__.__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"]}
    return row


def run_matrix(
    out: Path,
    models: list[str],
    configs: list[str],
    targets: list[str],
    precision: str,
    score_threshold: float | None = None,
    workers: Workers = Workers(1),
) -> list[dict]:
    """Every row as one task (mvit.work): in this process, on local workers or on Ray; rows in table order."""
    tasks = rows_of(models, configs, targets, precision, score_threshold)
    found: dict[int, dict] = {}
    for index, row in run_tasks(export_row, None if workers.ships_files else out, tasks, workers):
        for name, files in row.pop("files", {}).items():
            unpack_files(files, out / tasks[index].model / name)
        print(json.dumps(row), flush=True)
        found[index] = row
    return [found[i] for i in range(len(tasks))]


def markdown(rows: list[dict]) -> str:
    lines = ["| model | config | target | precision | verdict | verified by | max rel. error | MB |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        err = f"{r['max_relative_error']:.1e}" if r.get("max_relative_error") is not None else "-"
        verdict = r["verdict"] + (f" ({'; '.join(r['failed'])})" if r.get("failed") else "")
        if r.get("matched_detections") is not None:
            verdict += f", {r['matched_detections']}/{r['reference_detections']} boxes matched"
        lines.append(
            f"| {r['model']} | {r['config']} | {r['target']} | {r['precision']} | {verdict} | {r.get('verified_by') or '-'} | {err} | {r.get('size_mb', '-')} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("exports/matrix"))
    parser.add_argument("--models", default=",".join(list_models()), help="comma list (default: every registered model)")
    parser.add_argument("--configs", default="A,B")
    parser.add_argument("--targets", default=",".join(all_target_names()))
    parser.add_argument("--precision", default="fp32", choices=["fp32", "fp16"])
    parser.add_argument(
        "--score-threshold",
        type=float,
        default=None,
        help="detectors' NMS score threshold; random-weight detectors score about 1/81 per class, so "
        "below 0.05 (e.g. 0.0125) is needed for their boxes to be compared at all",
    )
    parser.add_argument("--workers", type=int, default=None, help="rows exported at once by local worker processes (default: one per core; 1: in this process)")
    parser.add_argument("--ray", default=None, help="export the rows as Ray tasks on the cluster at this address (default: $RAY_ADDRESS)")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.models.split(",")) - set(list_models()))
    if unknown:
        print(f"error: unknown model(s) {', '.join(unknown)}; known: {', '.join(list_models())}", file=sys.stderr)
        return 2
    os.environ.setdefault("TQDM_DISABLE", "1")
    try:
        workers = Workers.choose(args.workers, args.ray)
        rows = run_matrix(args.out, args.models.split(","), args.configs.split(","), args.targets.split(","), args.precision, args.score_threshold, workers)
    except MvitError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    table = markdown(rows)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"matrix-{args.precision}.md").write_text(table + "\n")
    print(table)
    return 0 if all(r["verdict"] == "pass" for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
