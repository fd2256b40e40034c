"""docs/quantization.md's table: every precision of every target for the trained classifier fixture,
judged by mvit-eval against the fp32 artefact of the same target.

    .venv/bin/python tests/data/quantization_table.py OUT [--targets onnx,tflite,coreml] [--coreml-limit 60]

It runs the commands a user would (printed as it goes, and listed in OUT/commands.txt):
  1. the held-out scenes as a class-folder dataset, and 64 scenes of training digits as the
     --calibration folder (never held-out images);
  2. `mvit-export --target T --precision P --calibration ...` for fp32 and every other precision T takes;
  3. `mvit-eval <variants> --baseline <fp32> --checkpoint <fixture> --data <held-out>` per target, which
     scores PyTorch and every artefact with bootstrap intervals and times each variant against fp32,
     interleaved. CoreML runs through the MIL reference evaluator off macOS (`--runner mil-reference`,
     about 1 s per image, hence --coreml-limit) and cannot be timed here.
Then prints the markdown table (OUT/table.md) from mvit-eval's JSON.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import trained_fixtures as tf  # noqa: E402
from eval_datasets import classification_folders  # noqa: E402

from mvit.exporters.api import artefact_size_bytes  # noqa: E402
from mvit.exporters.quantize import QUANTISED, check_precision  # noqa: E402
from mvit.exporters.targets import get_target  # noqa: E402

BIN = Path(sys.executable).parent
PRECISIONS = ("fp16", *QUANTISED)


def run(cmd: list[str], log: Path) -> None:
    line = " ".join(shlex.quote(c) for c in cmd)
    print(f"$ {line}", flush=True)
    with log.open("a") as f:
        f.write(line + "\n")
    subprocess.run(cmd, check=True)


def calibration_folder(root: Path) -> Path:
    """64 scenes of the classifier's training digits (never held-out ones), as a user's --calibration folder."""
    digits, _ = tf.train_digits()
    return tf.save_scenes(root, tf.classification_scenes(np.random.default_rng(5), digits[:64], tf.CLASSIFIER.image_size))


def precisions_of(target: str) -> list[str]:
    ok = []
    for p in PRECISIONS:
        try:
            check_precision(p, get_target(target))
        except Exception:
            continue
        ok.append(p)
    return ok


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out", type=Path)
    parser.add_argument("--targets", default="onnx,tflite,coreml")
    parser.add_argument("--coreml-limit", type=int, default=60)
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--table-only", action="store_true", help="re-render OUT/table.md from the saved mvit-eval JSON")
    args = parser.parse_args()
    out: Path = args.out
    if args.table_only:
        print(markdown(out, args.targets.split(",")))
        return
    out.mkdir(parents=True, exist_ok=True)
    log = out / "commands.txt"
    data = out / "heldout"
    if not data.exists():
        classification_folders(data)
    calibration = calibration_folder(out / "calibration")
    fx = tf.CLASSIFIER
    for target in args.targets.split(","):
        art = out / target
        for precision in ("fp32", *precisions_of(target)):
            run(
                [
                    str(BIN / "mvit-export"),
                    "--target",
                    target,
                    "--precision",
                    precision,
                    "--checkpoint",
                    str(fx.checkpoint),
                    "--image-size",
                    str(fx.image_size),
                    "--out",
                    str(art),
                    # fp32 and fp16 have nothing to calibrate, and mvit-export refuses --calibration with them
                    *(["--calibration", str(calibration)] if precision in QUANTISED else []),
                ],
                log,
            )
        suffix = {"onnx": ".onnx", "tflite": ".tflite", "coreml": ".mlpackage"}[target]
        baseline = next(art.glob(f"*_fp32{suffix}"))
        variants = [next(art.glob(f"*_{p}{suffix}")) for p in precisions_of(target)]
        cmd = [
            str(BIN / "mvit-eval"),
            *map(str, variants),
            "--baseline",
            str(baseline),
            "--checkpoint",
            str(fx.checkpoint),
            "--data",
            str(data),
            "--out",
            str(out / f"{target}.json"),
            "--runs",
            str(args.runs),
        ]
        if target == "coreml":
            cmd += ["--runner", "mil-reference", "--no-speed", "--limit", str(args.coreml_limit)]
        run(cmd, log)
    table = markdown(out, args.targets.split(","))
    (out / "table.md").write_text(table)
    print(table)


def _pct(metric: dict) -> str:
    ci = metric.get("ci")
    text = f"{100 * metric['value']:.2f}"
    return text + (f" [{100 * ci[0]:.2f}, {100 * ci[1]:.2f}]" if ci else "")


def _signed(points: float) -> str:
    return f"{round(points, 2) + 0.0:+.2f}"  # never "-0.00"


def markdown(out: Path, targets: list[str]) -> str:
    rows = [
        "| target | precision | bytes | smaller | speed-up vs fp32 [95% CI] | top-1 PyTorch | top-1 artefact | drop vs fp32 (points) | images | verdict |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for target in targets:
        doc = json.loads((out / f"{target}.json").read_text())
        models = {m["name"]: m for m in doc["models"]}
        torch_top1 = _pct(models["pytorch"]["metrics"]["top1"])
        verdicts = {v["variant"]: v for v in doc.get("verdicts", [])}
        for name, m in models.items():
            if m["kind"] == "pytorch":
                continue
            v = verdicts.get(name)
            size = artefact_size_bytes(Path(m["path"]))
            speed = (
                "baseline"
                if v is None
                else (
                    "not timed here"
                    if v.get("speedup") is None
                    else f"{v['speedup']:.2f}" + (f" [{v['speedup_ci'][0]:.2f}, {v['speedup_ci'][1]:.2f}]" if v.get("speedup_ci") else "")
                )
            )
            drop = (
                ""
                if v is None or v.get("drop_points") is None
                else (_signed(v["drop_points"]) + (f" [{_signed(v['drop_ci'][0])}, {_signed(v['drop_ci'][1])}]" if v.get("drop_ci") else ""))
            )
            rows.append(
                f"| {target} | {m['precision']} | {size:,} | "
                f"{'' if v is None else format(v['size_ratio'], '.2f') + 'x'} | {speed} | {torch_top1} | "
                f"{_pct(m['metrics']['top1'])} | {drop} | {doc['dataset']['images']} | "
                f"{'' if v is None else ('recommended' if v['recommended'] else 'not recommended: ' + v['reason'])} |"
            )
    return "\n".join(rows) + "\n"


if __name__ == "__main__":
    main()
