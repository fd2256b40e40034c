"""Quantised exports of the trained classifier: size, top-1 agreement with fp32 PyTorch and held-out
top-1 accuracy on the fixture's held-out scenes (docs/verification.md, "Quantised exports").

    .venv/bin/python tests/data/quantized_agreement.py --targets onnx,tflite --count 360
    .venv/bin/python tests/data/quantized_agreement.py --targets coreml --count 60

Calibration: 64 scenes built from the fixture's training digits (never the held-out ones), as a
user's --calibration folder would be. Each artefact runs in its target's runner (CoreML: the MIL
reference evaluator, about 1 s per image here, hence a smaller --count).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import trained_fixtures as tf  # noqa: E402
from quantization_table import calibration_folder  # noqa: E402

from mvit.exporters import api  # noqa: E402
from mvit.exporters.quantize import QUANTISED, check_precision  # noqa: E402
from mvit.exporters.targets import get_target  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--targets", default="onnx,tflite,coreml")
    parser.add_argument("--precisions", default=",".join(QUANTISED))
    parser.add_argument("--count", type=int, default=360)
    args = parser.parse_args()
    fx = tf.CLASSIFIER
    pixels, labels = tf.heldout("classification", args.count)
    resolved = api.resolve_model(None, checkpoint=fx.checkpoint, image_size=fx.image_size)
    with torch.no_grad():
        reference = api.fuse_batchnorm(resolved.net)(torch.from_numpy(tf.to_network_input(pixels))).softmax(-1).numpy()
    print(f"PyTorch fp32: held-out top-1 {float((reference.argmax(1) == labels).mean()):.3f} on {len(labels)} scenes")
    print("| target | precision | bytes | fp32 bytes / bytes | top-1 agreement with fp32 | held-out top-1 | verdict |")
    print("|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        calibration = calibration_folder(Path(tmp) / "calibration")
        for target in args.targets.split(","):
            for precision in args.precisions.split(","):
                try:
                    check_precision(precision, get_target(target))
                except api.ExportError:
                    continue
                result = api.export_model(
                    None, target, Path(tmp) / "out", precision=precision, checkpoint=fx.checkpoint, image_size=fx.image_size, calibration=calibration
                )
                runner = get_target(target).load(result.path)
                probs = np.concatenate([runner.run({"image": pixels[i : i + 1]})["probabilities"].reshape(1, -1) for i in range(len(pixels))])
                agree = float((probs.argmax(1) == reference.argmax(1)).mean())
                acc = float((probs.argmax(1) == labels).mean())
                print(
                    f"| {target} | {precision} | {result.size_bytes} | {fx.checkpoint.stat().st_size / result.size_bytes:.1f} "
                    f"| {agree:.3f} | {acc:.3f} | {result.verdict} |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
