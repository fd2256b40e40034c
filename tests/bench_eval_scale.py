"""mvit-eval on a 10,000-image class folder: wall time, peak RSS and figures with 1 worker, 2 local
workers and a Ray cluster on this machine (the source of the table in docs/scale.md).

    .venv/bin/python tests/bench_eval_scale.py OUT [--images 10000]

Writes OUT/digits (made by tests/make_digit_folders.py), an ONNX export of the trained digit
classifier, one results JSON per run, and OUT/scale.md. A benchmark, not a test: the wall times
depend on what else the machine is doing; the figures must be identical and the script fails
if they are not.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import trained_fixtures as tf
from make_digit_folders import digit_folders

BIN = Path(sys.executable).parent
RUNS = {"1 worker (this process)": ["--workers", "1"], "2 local workers": ["--workers", "2"], "Ray, local cluster (2 CPUs)": ["--ray", "local"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--images", type=int, default=10_000)
    args = parser.parse_args()
    out: Path = args.out
    data = out / "digits"
    if not data.is_dir():
        digit_folders(data, args.images)
    art = out / "art"
    if not any(art.glob("*.onnx")):
        subprocess.run(
            [
                str(BIN / "mvit-export"),
                "--target",
                "onnx",
                "--precision",
                "fp32",
                "--checkpoint",
                str(tf.CLASSIFIER.checkpoint),
                "--image-size",
                str(tf.CLASSIFIER.image_size),
                "--out",
                str(art),
                "--no-verify",
            ],
            check=True,
        )
    onnx = next(art.glob("*.onnx"))
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    results = {}
    for name, flags in RUNS.items():
        result = out / f"results-{flags[-1]}.json"
        load = os.getloadavg()[0]
        start = time.monotonic()
        subprocess.run([str(BIN / "mvit-eval"), str(onnx), "--data", str(data), "--out", str(result), *flags], check=True, env=env, stdout=subprocess.DEVNULL)
        doc = json.loads(result.read_text())
        results[name] = {"seconds": time.monotonic() - start, "doc": doc, "load": (load + os.getloadavg()[0]) / 2}
        print(name, round(results[name]["seconds"], 1), "s", doc["run"]["peak_rss_mb"], flush=True)
    first = next(iter(results.values()))
    base = first["seconds"]
    lines = [
        f"{args.images} images, {onnx.name}, bootstrap 1000 resamples; `{' '.join(['python', *sys.argv])}`",
        "",
        "| run | wall s | speed-up | load average (start, end mean) | peak RSS main MiB | largest worker MiB | top-1 [95% CI] | same figures |",
        "|---|---|---|---|---|---|---|---|",
    ]
    same = True
    for name, r in results.items():
        m = r["doc"]["models"][0]["metrics"]["top1"]
        equal = r["doc"]["models"] == first["doc"]["models"]
        same &= equal
        rss = r["doc"]["run"]["peak_rss_mb"]
        lines.append(
            f"| {name} | {r['seconds']:.0f} | {base / r['seconds']:.2f}x | {r['load']:.1f} | {rss['main']:.0f} | {rss['largest_worker']:.0f} | "
            f"{100 * m['value']:.2f} [{100 * m['ci'][0]:.2f}, {100 * m['ci'][1]:.2f}] | {'yes' if equal else 'NO'} |"
        )
    (out / "scale.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
