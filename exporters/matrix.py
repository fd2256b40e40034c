"""`python -m mvit.exporters.matrix`: export and verify every registered model x config x target.

The full-size companion of the XXS unit tests: it writes every artefact, its report, and one
markdown table of verdicts (the source of the table in docs/exporting.md).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from mvit.models import get_spec, list_models

from .api import export_model
from .base import ExportError
from .targets import target_names


def run_matrix(
    out: Path, models: list[str], configs: list[str], targets: list[str], precision: str,
    score_threshold: float | None = None,
) -> list[dict]:
    rows = []
    for model in models:
        for config in configs:
            if config != "A" and not get_spec(model).supports_patch_config:
                continue
            for target in targets:
                row: dict[str, Any] = {"model": model, "config": config, "target": target, "precision": precision}
                extra: dict[str, Any] = {}
                if score_threshold is not None and get_spec(model).task == "detection":
                    extra["nms"] = {"score_threshold": score_threshold}
                    row["score_threshold"] = score_threshold
                try:
                    result = export_model(model, target, out / model, config=config, precision=precision, **extra)
                    report = result.report or {}
                    verification = report.get("verification") or {}
                    outputs = verification.get("outputs", {})
                    row |= {
                        "verdict": result.verdict, "verified_by": report.get("verified_by"),
                        "size_mb": round(result.size_bytes / 2**20, 2),
                        "max_relative_error": max((o["relative_error"] for o in outputs.values()), default=None),
                        "failed": report.get("failed", []), "warnings": len(report.get("warnings", [])),
                    }
                    metrics = verification.get("task_metrics", {})
                    if "reference_detections" in metrics:
                        row |= {k: metrics[k] for k in ("reference_detections", "matched_detections")}
                except ExportError as exc:
                    row |= {"verdict": "error", "failed": [str(exc)]}
                except Exception as exc:  # one broken row must not hide the others
                    row |= {"verdict": "error", "failed": [f"{exc.__class__.__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"]}
                print(json.dumps(row), flush=True)
                rows.append(row)
    return rows


def markdown(rows: list[dict]) -> str:
    lines = ["| model | config | target | precision | verdict | verified by | max rel. error | MB |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        err = f"{r['max_relative_error']:.1e}" if r.get("max_relative_error") is not None else "-"
        verdict = r["verdict"] + (f" ({'; '.join(r['failed'])})" if r.get("failed") else "")
        if r.get("matched_detections") is not None:
            verdict += f", {r['matched_detections']}/{r['reference_detections']} boxes matched"
        lines.append(f"| {r['model']} | {r['config']} | {r['target']} | {r['precision']} | {verdict} | "
                     f"{r.get('verified_by') or '-'} | {err} | {r.get('size_mb', '-')} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("exports/matrix"))
    parser.add_argument("--models", default=",".join(list_models()), help="comma list (default: every registered model)")
    parser.add_argument("--configs", default="A,B")
    parser.add_argument("--targets", default=",".join(target_names()))
    parser.add_argument("--precision", default="fp32", choices=["fp32", "fp16"])
    parser.add_argument(
        "--score-threshold", type=float, default=None,
        help="detectors' NMS score threshold; random-weight detectors score about 1/81 per class, so "
             "below 0.05 (e.g. 0.0125) is needed for their boxes to be compared at all",
    )
    args = parser.parse_args(argv)
    unknown = sorted(set(args.models.split(",")) - set(list_models()))
    if unknown:
        print(f"error: unknown model(s) {', '.join(unknown)}; known: {', '.join(list_models())}", file=sys.stderr)
        return 2
    os.environ.setdefault("TQDM_DISABLE", "1")
    rows = run_matrix(args.out, args.models.split(","), args.configs.split(","), args.targets.split(","),
                      args.precision, args.score_threshold)
    table = markdown(rows)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"matrix-{args.precision}.md").write_text(table + "\n")
    print(table)
    return 0 if all(r["verdict"] == "pass" for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
