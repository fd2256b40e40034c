"""docs/quantization.md's TFLite mixed-precision table: on the outlier fixture, each mix of the
ranking's head kept float (or in 16-bit activations), scored on the calibration images and on the
samples verification judges.

    .venv/bin/python tests/data/tflite_mixed_precision_table.py OUT [--calibration 16] [--mixes 0,3,5,6,8,12,24] [--timed 8]

It writes the outlier checkpoint and a folder of calibration scenes to OUT, exports the float
TFLite file with `mvit-export` as a user would, then runs the search's own steps
(exporters/targets/tflite/sensitivity.py) on it: the calibrated recipe, the one-layer ranking,
and each mix. The reference is the fp32 TFLite file (within 1e-5 of PyTorch), so the verification
column counts as the judge does but is not the export's own verification run. Last, fp32, all
int8 and the `--timed` mix (float and int16) are timed on LiteRT, 1 thread, interleaved.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import outlier_fixture  # noqa: E402
import trained_fixtures as tf  # noqa: E402

from mvit.exporters import cli  # noqa: E402
from mvit.exporters.calibration import read_images  # noqa: E402
from mvit.exporters.samples import verification_samples  # noqa: E402
from mvit.exporters.sensitivity import JUDGE, decisive_samples, mean_cosine, top1_agreement  # noqa: E402
from mvit.exporters.targets.tflite import sensitivity as search  # noqa: E402
from mvit.exporters.targets.tflite.quantize import recipe_rules  # noqa: E402
from mvit.work import Workers  # noqa: E402


def float_export(out: Path, calibration_count: int) -> tuple[Path, Path, dict[str, Any]]:
    checkpoint = outlier_fixture.write_checkpoint(out)
    digits, _ = tf.train_digits()
    scenes = tf.classification_scenes(np.random.default_rng(11), digits[:calibration_count], tf.CLASSIFIER.image_size)
    calibration = tf.save_scenes(out / "calibration", scenes)
    args = [
        "--checkpoint",
        str(checkpoint),
        "--image-size",
        str(tf.CLASSIFIER.image_size),
        "--target",
        "tflite",
        "--precision",
        "fp32",
        "--out",
        str(out / "fp32"),
    ]
    print("mvit-export", " ".join(args), flush=True)
    try:
        cli.main(args)
    except SystemExit as exc:
        if exc.code not in (0, None):
            raise
    report_path = next((out / "fp32").glob("*.report.json"))
    return report_path.with_name(report_path.name.removesuffix(".report.json")), calibration, json.loads(report_path.read_text())


def feeds_of(pixels: np.ndarray, layout: str) -> list[dict[str, np.ndarray]]:
    if layout == "NHWC":
        pixels = pixels.transpose(0, 2, 3, 1)
    return [{search.INPUT_NAME: np.ascontiguousarray(p[None], dtype=np.float32)} for p in pixels]


def int16_rules(variant: search.Variant, layers: list[str]) -> list[dict[str, Any]]:
    """The int8 recipe with every op of `layers` in int8 weights and int16 activations."""
    from ai_edge_quantizer import recipe

    like = recipe.static_wi8_ai16()[0]
    return [*variant.rules, *(search.scope_rule(s, like=like) for layer in layers for s in variant.layers[layer])]


def median_ms(models: dict[str, bytes], feed: dict[str, np.ndarray], rounds: int = 40) -> dict[str, float]:
    """Median latency of each model on LiteRT at 1 thread, the models interleaved round by round."""
    from ai_edge_litert.interpreter import Interpreter

    runners = {name: Interpreter(model_content=m, num_threads=1).get_signature_runner(search.SIGNATURE) for name, m in models.items()}
    for runner in runners.values():
        runner(**feed)  # first call allocates and delegates
    times: dict[str, list[float]] = {name: [] for name in runners}
    for _ in range(rounds):
        for name, runner in runners.items():
            start = time.perf_counter()
            runner(**feed)
            times[name].append(time.perf_counter() - start)
    return {name: 1000 * float(np.median(t)) for name, t in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--calibration", type=int, default=16, help="calibration scenes (the test gives 16)")
    parser.add_argument("--mixes", default="0,3,5,6,8,12,24", help="how many of the ranking's head to keep float")
    parser.add_argument("--timed", type=int, default=8, help="the mix to time against fp32 and all int8")
    parsed = parser.parse_args()
    parsed.out.mkdir(parents=True, exist_ok=True)
    model, calibration, report = float_export(parsed.out, parsed.calibration)
    pre, layout, output = report["preprocess"], report["input"]["layout"], report["output_names"][0]
    pixels = read_images(calibration, pre["resize_shortest"], pre["crop"])
    checked = np.concatenate([s.pixels for s in verification_samples(pre["resize_shortest"], pre["crop"])])
    content = model.read_bytes()
    variant = search.prepare(content, recipe_rules("int8"), feeds_of(pixels, layout), output)
    table = search.sensitivity(variant, Workers())
    ranked = [s.layer for s in table]
    # Verification judges its photos and noise and then the calibration images themselves.
    judged = feeds_of(np.concatenate([checked, pixels]), layout)
    reference = search.run(content, judged, output)
    decisive = decisive_samples(reference, JUDGE.decision_margin)
    print(f"{len(ranked)} layers, {int(decisive.sum())} of {len(judged)} verification samples decisive")
    print(f"the ranking's head: {', '.join(ranked[: max(int(m) for m in parsed.mixes.split(','))])}")
    columns = ("activations", "calibration: output cosine", "calibration: top-1 agreement", "verification samples: top-1 agreement")
    print(f"| layers (of {len(ranked)}) | {' | '.join(columns)} |")
    print("|---|---|---|---|---|")
    for k in (int(m) for m in parsed.mixes.split(",")):
        for kind, rules in (("float", search.with_float_layers(variant, ranked[:k])), ("int16", int16_rules(variant, ranked[:k]))):
            if k == 0 and kind == "int16":
                continue
            out = search.run(search.quantise(variant, rules), judged, output)
            cal_ref, cal_out = reference[len(checked) :], out[len(checked) :]
            agreement = float(np.mean(out[decisive].argmax(1) == reference[decisive].argmax(1)))
            verdict = "pass" if agreement >= JUDGE.top1_agreement else "fail"
            print(
                f"| {k} | {kind} | {mean_cosine(cal_ref, cal_out):.3f} | {top1_agreement(cal_ref, cal_out, JUDGE.decision_margin):.3f} "
                f"| {agreement:.3f}, {verdict} |",
                flush=True,
            )
    timed = ranked[: parsed.timed]
    models = {
        "fp32": content,
        "every layer int8": search.quantise(variant, variant.rules),
        f"{parsed.timed} layers float": search.quantise(variant, search.with_float_layers(variant, timed)),
        f"{parsed.timed} layers int16 activations": search.quantise(variant, int16_rules(variant, timed)),
    }
    latency = median_ms(models, judged[0])
    print("\n| model | bytes | median ms (LiteRT, 1 thread) | speed-up vs fp32 |\n|---|---|---|---|")
    for name, ms in latency.items():
        print(f"| {name} | {len(models[name]):,} | {ms:.2f} | {latency['fp32'] / ms:.2f}x |")


if __name__ == "__main__":
    main()
