"""mvit-eval's results: one JSON document and the same figures as a markdown table."""

from __future__ import annotations

from typing import Any

from mvit.exporters.tasks import get_task

from .bootstrap import CONFIDENCE, SEED

SCHEMA = "mvit-eval/1"


def document(
    dataset: dict[str, Any],
    models: list[dict[str, Any]],
    scores: dict[str, dict[str, Any]],
    *,
    resamples: int,
    reference: str | None,
    skipped: list[dict[str, str]],
    verdicts: list[dict[str, Any]],
) -> dict[str, Any]:
    return {
        "schema": SCHEMA,
        "dataset": dataset,
        "bootstrap": {"resamples": resamples, "seed": SEED, "confidence": CONFIDENCE, "unit": "image"},
        "reference": reference,
        "models": [{**m, "metrics": scores[m["name"]]} for m in models],
        "skipped": skipped,
        "verdicts": verdicts,
    }


def _pct(value: float | None) -> str:
    return "n/a" if value is None else points(value, signed=False)


def points(value: float, signed: bool = True) -> str:
    """A fraction in points (x100), two decimals; -0.00 is shown as +0.00."""
    rounded = round(100 * value, 2) + 0.0
    return f"{rounded:+.2f}" if signed else f"{rounded:.2f}"


def _ci(ci: list[float] | None, signed: bool = False) -> str:
    if not ci:
        return ""
    return f" [{points(ci[0], signed)}, {points(ci[1], signed)}]"


def markdown(doc: dict[str, Any]) -> str:
    data = doc["dataset"]
    columns = get_task(data["task"]).metrics
    reference = doc["reference"]
    header = ["model", "precision"] + [name for _, name in columns]
    if reference:
        header += [f"{name} vs {reference}" for _, name in columns]
    lines = [
        f"# Accuracy on {data['path']}",
        "",
        f"{data['task']}, {data['layout']} layout, {data['images']} images. Figures in percent; "
        f"[{doc['bootstrap']['confidence']:.0%} interval] from {doc['bootstrap']['resamples']} bootstrap resamples "
        "of the images" + (f"; differences are paired (same resampled images), in points, model minus {reference}." if reference else "."),
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    for model in doc["models"]:
        m = model["metrics"]
        row = [model["name"], model.get("precision") or ""]
        row += [_pct(m[key]["value"]) + _ci(m[key]["ci"]) for key, _ in columns]
        if reference:
            for key, _ in columns:
                diff = m[key].get("difference")
                row.append("" if diff is None or diff["value"] is None else points(diff["value"]) + _ci(diff["ci"], signed=True))
        lines.append("| " + " | ".join(row) + " |")
    if doc["skipped"]:
        lines += ["", "Not scored:"] + [f"- {s['artefact']}: {s['reason']}" for s in doc["skipped"]]
    if doc["verdicts"]:
        lines += ["", "## Variants", ""] + [f"- {v['line']}" for v in doc["verdicts"]]
    return "\n".join(lines) + "\n"
