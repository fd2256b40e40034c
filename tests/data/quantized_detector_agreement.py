"""Quantised exports of the trained detector, judged on held-out scenes (docs/verification.md,
"Quantised exports", the detector table).

    .venv/bin/python tests/data/quantized_detector_agreement.py --count 120

Each row: export (calibrated on 64 scenes of training digits, or on black images for the
broken rows), then `mvit-verify --images` on `--count` held-out scenes against the fixture's
own checkpoint. The weight-noise row exports fp32 from the fixture with 2% multiplicative noise
on every weight, a network that is really different, verified against the original.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
from safetensors import safe_open
from safetensors.torch import load_file, save_file

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import torch  # noqa: E402
import trained_fixtures as tf  # noqa: E402

from mvit.exporters import api, quantize  # noqa: E402

ROWS = [  # target, precision, weights, calibration
    ("onnx", "fp16", "fixture", "scenes"),
    ("onnx", "int8-weights", "fixture", "scenes"),
    ("onnx", "int8", "fixture", "scenes"),
    ("tflite", "int8-weights", "fixture", "scenes"),
    ("tflite", "int8", "fixture", "scenes"),
    ("onnx", "int8", "fixture", "black"),
    ("tflite", "int8", "fixture", "black"),
    ("onnx", "fp32", "noise2", "scenes"),
]
KEYS = ("detection_recall", "detection_precision", "matched_box_mean_iou", "matched_box_min_iou", "p95_score_difference")


def _noisy(path: Path, fraction: float) -> Path:
    with safe_open(str(tf.DETECTOR.checkpoint), "pt") as f:
        metadata = f.metadata()
    generator = torch.Generator().manual_seed(0)
    state = {
        k: v + v * fraction * torch.randn(v.shape, generator=generator) if v.is_floating_point() else v for k, v in load_file(tf.DETECTOR.checkpoint).items()
    }
    save_file(state, str(path), metadata=metadata)
    return path


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=120)
    args = parser.parse_args()
    quantize.MAX_JUDGED_IMAGES = max(quantize.MAX_JUDGED_IMAGES, args.count)  # judge every held-out scene
    fx = tf.DETECTOR
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        digits, labels = tf.train_digits()
        scenes, _, _ = tf.detection_scenes(np.random.default_rng(5), digits[:64], labels[:64], fx.image_size)
        calibration = {
            "scenes": tf.save_scenes(root / "scenes", scenes),
            "black": tf.save_scenes(root / "black", np.zeros((16, 3, fx.image_size, fx.image_size), np.float32)),
        }
        held_out = tf.save_scenes(root / "held_out", tf.heldout("detection", args.count)[0])
        weights = {"fixture": fx.checkpoint, "noise2": _noisy(root / "noise2.safetensors", 0.02)}
        print("| export | recall | precision | mean IoU | min IoU | p95 score diff | verdict |")
        print("|---|---|---|---|---|---|---|")
        for i, (target, precision, source, cal) in enumerate(ROWS):
            result = api.export_model(
                None,
                target,
                root / f"out{i}",
                precision=precision,
                checkpoint=weights[source],
                image_size=fx.image_size,
                calibration=calibration[cal] if precision not in ("fp32", "fp16") else None,
            )
            report = api.verify_artefact(result.path, checkpoint=fx.checkpoint, images=held_out, write=False)
            metrics = report["verification"]["task_metrics"]
            label = f"{target} {precision}" + {"black": ", calibrated on black images", "scenes": ""}[cal]
            label += ", 2% weight noise" if source == "noise2" else ""
            print(f"| {label} | " + " | ".join(f"{metrics[k]:.3f}" for k in KEYS) + f" | {report['verdict']} |", flush=True)


if __name__ == "__main__":
    main()
