"""docs/quantization.md's "Speed at 256 x 256" table: fp32 against int8-weights and int8 on ONNX
Runtime and LiteRT, at the model's real input size, timed interleaved.

    .venv/bin/python tests/data/quantization_speed.py OUT [--models mobilevit_xs] [--targets onnx,tflite] [--runs 40]

Random weights (speed does not depend on them; the int8 ranges come from a calibration folder of
generated scenes, written to OUT/calibration). For every model and target it runs, printing each
command and saving the list to OUT/commands.txt:
  1. `mvit-export --precision fp32 | int8-weights | int8 --image-size 256 --no-verify`;
  2. `mvit-bench ab FP32 VARIANT --runs N` (1 thread, interleaved: the only ratio a shared
     machine gives honestly), its JSON kept as OUT/ab_<model>_<target>_<precision>.json;
  3. `mvit-bench profile ARTEFACT --threads 1` for every artefact (OUT/profile_*.md): ms by op
     type on ONNX Runtime, ops outside XNNPACK and its partitions on LiteRT.
Then prints the markdown table (OUT/table.md) with the load average seen around each A/B.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from quantization_table import run  # the same printed and logged command runner (this folder is on sys.path)

from mvit.benchmarks.verdict import compare_samples
from mvit.exporters.api import artefact_size_bytes

BIN = Path(sys.executable).parent
SUFFIX = {"onnx": ".onnx", "tflite": ".tflite"}
VARIANTS = ("int8-weights", "int8")
IMAGE_SIZE = 256


def calibration_folder(root: Path, count: int = 16) -> Path:
    """Scenes of random filled shapes on a random background: speed needs ranges, not meaning."""
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(count):
        image = Image.new("RGB", (320, 320), tuple(int(v) for v in rng.integers(0, 256, 3)))
        draw = ImageDraw.Draw(image)
        for _ in range(12):
            x0, y0 = (int(v) for v in rng.integers(0, 280, 2))
            box = [x0, y0, x0 + int(rng.integers(20, 160)), y0 + int(rng.integers(20, 160))]
            fill = tuple(int(v) for v in rng.integers(0, 256, 3))
            (draw.ellipse if rng.random() < 0.5 else draw.rectangle)(box, fill=fill)
        image.save(root / f"scene{i:02d}.png")
    return root


def export(model: str, target: str, precision: str, calibration: Path, out: Path, log: Path) -> Path:
    cmd = [str(BIN / "mvit-export"), "--target", target, "--model", model, "--precision", precision, "--image-size", str(IMAGE_SIZE)]
    cmd += ["--no-verify", "--out", str(out)] + ([] if precision == "fp32" else ["--calibration", str(calibration)])
    run(cmd, log)
    return out / f"{model}_A_{IMAGE_SIZE}_{precision}{SUFFIX[target]}"


def load_average() -> str:
    return f"{os.getloadavg()[0]:.1f}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out", type=Path)
    parser.add_argument("--models", default="mobilevit_xs")
    parser.add_argument("--targets", default="onnx,tflite")
    parser.add_argument("--runs", type=int, default=40)
    args = parser.parse_args()
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    log = out / "commands.txt"
    calibration = calibration_folder(out / "calibration")
    rows = []
    for model in args.models.split(","):
        for target in args.targets.split(","):
            folder = out / model / target
            fp32 = export(model, target, "fp32", calibration, folder, log)
            rows.append(_row(model, target, "fp32", fp32, None, None, _profile(fp32, out, log)))
            for precision in VARIANTS:
                variant = export(model, target, precision, calibration, folder, log)
                ab = out / f"ab_{model}_{target}_{precision}.json"
                before = load_average()
                run([str(BIN / "mvit-bench"), "ab", str(fp32), str(variant), "--runs", str(args.runs), "--out", str(ab)], log)
                loads = f"{before}-{load_average()}"
                rows.append(_row(model, target, precision, variant, fp32, (ab, loads), _profile(variant, out, log)))
    table = markdown(rows)
    (out / "table.md").write_text(table)
    print(table)


def _profile(artefact: Path, out: Path, log: Path) -> dict:
    stem = out / f"profile_{artefact.stem}_{artefact.suffix[1:]}"
    run([str(BIN / "mvit-bench"), "profile", str(artefact), "--threads", "1", "--out", str(stem)], log)
    return json.loads(stem.with_suffix(".json").read_text())


def _row(model: str, target: str, precision: str, artefact: Path, fp32: Path | None, ab: tuple[Path, str] | None, profile: dict) -> list[str]:
    size = artefact_size_bytes(artefact)
    smaller = "" if fp32 is None else f"{artefact_size_bytes(fp32) / size:.2f}x"
    speed, loads = "baseline", ""
    if ab is not None:
        # ab's JSON keeps both rows' times in run order, paired; the same statistic ab printed
        base, candidate = json.loads(ab[0].read_text())["results"]
        c = compare_samples(base["times_ms"], candidate["times_ms"], paired=True)
        assert c.ratio is not None and c.ci_low is not None and c.ci_high is not None
        speed, loads = f"{1 / c.ratio:.2f} [{1 / c.ci_high:.2f}, {1 / c.ci_low:.2f}]", ab[1]
    return [model, target, precision, f"{size:,}", smaller, speed, loads, _where_time_goes(profile)]


def _where_time_goes(profile: dict) -> str:
    """The three slowest op types (ONNX Runtime), or what falls out of XNNPACK (LiteRT)."""
    if profile["runtime"] == "litert":
        outside = ", ".join(f"{op} x{n}" for op, n in sorted(profile["not_delegated"].items()))
        return f"{profile['partitions']} XNNPACK partition(s); outside: {outside or 'none'}"
    return ", ".join(f"{t['op_type']} {t['percent']:.0f}%" for t in profile["op_times"][:3])


def markdown(rows: list[list[str]]) -> str:
    lines = [
        "| model | target | precision | bytes | smaller | speed-up vs fp32 [95% CI] | load average | where the time goes (profile) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
