"""Held-out accuracy of the trained fixtures in PyTorch and in every exported artefact.

    .venv/bin/python tests/data/fixture_accuracy.py --out docs/trained-fixture.md

Each fixture in tests/data/trained/ is exported through `mvit-export` (a subprocess, as a user
runs it) in every target and precision, each artefact is run by its target's own runner on the
held-out scenes of tests/trained_fixtures.py, and the table gives the task metric there next to
PyTorch's and the verification relative error from the export's report.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import trained_fixtures as tf  # noqa: E402
from make_trained_fixtures import evaluate  # noqa: E402

from mvit.exporters.targets import get_target  # noqa: E402
from mvit.exporters.verify import artefact_detections  # noqa: E402
from mvit.models.checkpoints import load_checkpoint  # noqa: E402

MVIT_EXPORT = Path(sys.executable).with_name("mvit-export")
TARGETS = ("onnx", "tflite", "coreml")
PRECISIONS = ("fp32", "fp16")
METRIC_NAMES = {
    "classification": ("top1_accuracy",),
    "segmentation": ("pixel_accuracy", "miou"),
    "detection": ("recall", "precision"),
}
COMMAND = "`.venv/bin/python tests/data/fixture_accuracy.py --out docs/trained-fixture.md`"


def export(fixture: tf.Fixture, target: str, precision: str, out: Path) -> tuple[Path, dict]:
    proc = subprocess.run(
        [
            str(MVIT_EXPORT),
            "--checkpoint",
            str(fixture.checkpoint),
            "--target",
            target,
            "--precision",
            precision,
            "--image-size",
            str(fixture.image_size),
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
    )
    if proc.returncode not in (0, 1):
        raise SystemExit(f"error: mvit-export failed for {fixture.name} {target} {precision}: {proc.stderr.strip()}")
    path = Path(proc.stdout.split()[0])
    return path, json.loads(path.with_name(path.name + ".report.json").read_text())


def artefact_metrics(task: str, path: Path, target: str, data) -> dict[str, float]:
    runner = get_target(target).load(path)
    pixels = data[0]
    outs = [runner.run({"image": pixels[i : i + 1]}) for i in range(len(pixels))]
    if task == "classification":
        probs = np.concatenate([np.asarray(o["probabilities"]).reshape(1, -1) for o in outs])
        return tf.classification_accuracy(probs, data[1])
    if task == "segmentation":
        return tf.segmentation_scores(np.concatenate([np.asarray(o["logits"]) for o in outs]), data[1])
    return tf.detection_scores([artefact_detections(o) for o in outs], data[1], data[2])


def _relative_error(report: dict) -> str:
    outputs = (report.get("verification") or {}).get("outputs") or {}
    if outputs:
        return f"{max(m['relative_error'] for m in outputs.values()):.2g}"
    # Detection with NMS inside: final boxes are judged by matching, not by an error figure.
    metrics = (report.get("verification") or {}).get("task_metrics") or {}
    return f"box IoU >= {metrics['matched_box_min_iou']:.3f}" if "matched_box_min_iou" in metrics else "-"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="markdown file to write")
    parser.add_argument("--count", type=int, default=None, help="held-out scenes per fixture (default: all 360)")
    args = parser.parse_args()
    torch.set_num_threads(2)
    fixtures = [f for f in tf.FIXTURES.values() if f.checkpoint.exists()]
    recorded = tf.recorded_metrics()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for fixture in fixtures:
            data = tf.heldout(fixture.task, args.count)
            names = METRIC_NAMES[fixture.task]
            model, _ = load_checkpoint(fixture.checkpoint)
            # The same scenes as the artefacts see, also when --count takes a subset.
            reference = evaluate(fixture.task, model) if args.count is None else None
            if reference is None:
                reference = _pytorch_subset(fixture.task, model, data)
            rows.append((fixture, "PyTorch", "fp32", [reference[n] for n in names], "-", "-", recorded[fixture.task]["train_seconds"]))
            for target in TARGETS:
                for precision in PRECISIONS:
                    start = time.perf_counter()
                    path, report = export(fixture, target, precision, Path(tmp) / f"{fixture.task}-{target}-{precision}")
                    metrics = artefact_metrics(fixture.task, path, target, data)
                    print(f"{fixture.name} {target} {precision}: {metrics} verdict {report['verdict']} ({time.perf_counter() - start:.0f} s)", flush=True)
                    rows.append(
                        (
                            fixture,
                            f"{target} ({report.get('verified_by')})",
                            precision,
                            [metrics[n] for n in names],
                            report["verdict"],
                            _relative_error(report),
                            None,
                        )
                    )
    args.out.write_text(render(rows, args.count))


def _pytorch_subset(task: str, model, data) -> dict[str, float]:
    model.eval()
    with torch.no_grad():
        out = model(torch.from_numpy(tf.to_network_input(data[0])))
    if task == "classification":
        return tf.classification_accuracy(out.softmax(1).numpy(), data[1])
    if task == "segmentation":
        return tf.segmentation_scores(out.numpy(), data[1])
    raise SystemExit("error: --count is for classification and segmentation; detection needs all scenes")


def render(rows, count: int | None) -> str:
    n = count or tf.HELDOUT_DIGITS
    lines = [
        "# Trained fixture: held-out accuracy in PyTorch and in every artefact",
        "",
        f"Produced by {COMMAND} (the fixtures by `.venv/bin/python tests/data/make_trained_fixtures.py`).",
        "",
        "The fixtures in `tests/data/trained/` are MobileViT-XXS networks trained on scikit-learn's handwritten",
        "digits pasted onto scikit-image's bundled photos (`tests/trained_fixtures.py`), so their weights,",
        "BN statistics and decision margins are those of a trained network, not random ones. Each row",
        f"exports one through `mvit-export`, runs the artefact with its target's runner on the same {n}",
        "held-out scenes (digits never seen in training) and scores it against the true labels. `verdict`",
        "and `rel. error` are from the export's own verification report (photos and noise vs PyTorch).",
        "",
    ]
    for task in tf.FIXTURES:
        task_rows = [r for r in rows if r[0].task == task]
        if not task_rows:
            continue
        fixture = task_rows[0][0]
        names = METRIC_NAMES[task]
        lines += [
            f"## {fixture.name} ({task}, {fixture.image_size}x{fixture.image_size})",
            "",
            "| runtime | precision | " + " | ".join(n.replace("_", " ") for n in names) + " | verdict | rel. error |",
            "|---|---|" + "---|" * len(names) + "---|---|",
        ]
        for _, runtime, precision, values, verdict, rel, _ in task_rows:
            lines.append(f"| {runtime} | {precision} | " + " | ".join(f"{v:.3f}" for v in values) + f" | {verdict} | {rel} |")
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
