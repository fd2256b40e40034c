"""mvit-eval through its CLI on datasets written to disk from the trained fixtures' held-out scenes
(tests/eval_datasets.py): the models see the very scenes tests/data/trained/metrics.json was
computed on, so mvit-eval's PyTorch figures must equal the recorded ones.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import trained_fixtures as tf
from eval_datasets import classification_folders, coco, margin_of, save, voc
from PIL import Image

from mvit.evaluation import cli as eval_cli
from mvit.evaluation.datasets import Box
from mvit.evaluation.metrics import DetectionRecords, SegmentationRecords
from mvit.evaluation.verdict import MAX_DROP_POINTS, MIN_SIZE_RATIO, MIN_SPEEDUP, decide
from mvit.exporters import cli as export_cli

slow = pytest.mark.slow


@pytest.fixture(scope="module")
def exported(shared_export) -> dict[str, Path]:
    """An ONNX fp32 artefact of each trained fixture, the session's shared ones (verification is its own tests' job)."""
    return {
        task: shared_export(None, "onnx", checkpoint=fixture.checkpoint, precision="fp32", image_size=fixture.image_size, verify=False).path
        for task, fixture in tf.FIXTURES.items()
    }


def _eval(cli_run, *args: str) -> tuple[int, str, str]:
    return cli_run(eval_cli.main, *args)


def _check_paired_zero(doc: dict, metric: str) -> None:
    """The fp32 artefact scores as PyTorch does, image by image: its paired difference is ~0 and its interval holds 0."""
    artefact = next(m for m in doc["models"] if m["kind"] != "pytorch")
    diff = artefact["metrics"][metric]["difference"]
    assert abs(diff["value"]) <= 0.005, diff
    assert diff["ci"][0] <= 0.0 <= diff["ci"][1], diff


# ---------------------------------------------------------------- the three tasks


@slow
def test_classification_folders_match_the_recorded_accuracy(exported, tmp_path, cli_run):
    data = classification_folders(tmp_path / "digits")
    out, md = tmp_path / "results.json", tmp_path / "results.md"
    code, stdout, err = _eval(
        cli_run,
        str(exported["classification"]),
        "--checkpoint",
        str(tf.CLASSIFIER.checkpoint),
        "--data",
        str(data),
        "--out",
        str(out),
        "--md",
        str(md),
        "--bootstrap",
        "300",
    )
    assert code == 0, err
    doc = json.loads(out.read_text())
    assert doc["dataset"]["images"] == 360 and doc["dataset"]["layout"] == "folders"
    pytorch = next(m for m in doc["models"] if m["kind"] == "pytorch")
    recorded = tf.recorded_metrics()["classification"]["heldout"]["top1_accuracy"]
    # Same 360 scenes, same pixels, same network: only a near-tie flipped by float rounding
    # (batched in training, one image at a time here) could differ, i.e. one scene = 1/360.
    assert abs(pytorch["metrics"]["top1"]["value"] - recorded) <= 1 / 360 + 1e-9
    lo, hi = pytorch["metrics"]["top1"]["ci"]
    assert lo < pytorch["metrics"]["top1"]["value"] < hi and hi - lo < 0.1
    _check_paired_zero(doc, "top1")
    assert md.read_text() == stdout and "| top-1 vs pytorch" in stdout


@slow
def test_classification_csv_with_limit(exported, tmp_path, cli_run):
    pixels, labels = tf.heldout("classification", 50)
    rows = ["file,label"]
    for i, (p, label) in enumerate(zip(pixels, labels)):
        save(tmp_path / "img" / f"{i}.png", p, margin_of(tf.CLASSIFIER))
        rows.append(f"img/{i}.png,{tf.LABELS[label]}")
    (tmp_path / "val.csv").write_text("\n".join(rows) + "\n")
    out = tmp_path / "r.json"
    code, _, err = _eval(
        cli_run, str(exported["classification"]), "--data", str(tmp_path / "val.csv"), "--limit", "20", "--bootstrap", "100", "--out", str(out)
    )
    assert code == 0, err
    doc = json.loads(out.read_text())
    assert doc["dataset"]["layout"] == "csv" and doc["dataset"]["images"] == 20 and doc["reference"] is None
    assert 0.7 <= doc["models"][0]["metrics"]["top1"]["value"] <= 1.0


def test_a_runner_the_target_lacks_is_one_line(exported, tmp_path, cli_run):
    root = classification_folders(tmp_path)
    code, _, err = _eval(cli_run, str(exported["classification"]), "--data", str(root), "--runner", "mil-reference")
    assert code == 2 and err.count("error:") == 1 and "Traceback" not in err
    assert "--runner mil-reference does not run onnx artefacts" in err


@slow
def test_segmentation_voc_matches_the_recorded_miou(exported, tmp_path, cli_run):
    data = voc(tmp_path / "voc")
    out = tmp_path / "seg.json"
    code, stdout, err = _eval(
        cli_run, str(exported["segmentation"]), "--checkpoint", str(tf.SEGMENTER.checkpoint), "--data", str(data), "--out", str(out), "--bootstrap", "300"
    )
    assert code == 0, err
    doc = json.loads(out.read_text())
    pytorch = next(m for m in doc["models"] if m["kind"] == "pytorch")["metrics"]
    recorded = tf.recorded_metrics()["segmentation"]["heldout"]
    # Pooled confusion over the same 360 scenes, as the training script counts: only pixels on a
    # near-tie can flip, a handful of 5.9 million.
    assert abs(pytorch["miou"]["value"] - recorded["miou"]) <= 1e-3
    assert abs(pytorch["pixel_accuracy"]["value"] - recorded["pixel_accuracy"]) <= 1e-4
    _check_paired_zero(doc, "miou")
    assert "mIoU vs pytorch" in stdout


@slow
def test_detection_coco_map(exported, tmp_path, cli_run):
    data = coco(tmp_path / "coco")
    out = tmp_path / "det.json"
    code, _, err = _eval(
        cli_run,
        str(exported["detection"]),
        "--checkpoint",
        str(tf.DETECTOR.checkpoint),
        "--data",
        str(data / "annotations.json"),
        "--out",
        str(out),
        "--bootstrap",
        "200",
    )
    assert code == 0, err
    doc = json.loads(out.read_text())
    pytorch = next(m for m in doc["models"] if m["kind"] == "pytorch")["metrics"]
    # metrics.json records recall/precision at one operating point, not mAP; the fixture finds
    # digits (recall 0.55 at score 0.3), so its mAP@.5 is far from 0 and above the stricter mAP.
    assert 0.1 < pytorch["map"]["value"] < pytorch["map50"]["value"] < 1.0
    _check_paired_zero(doc, "map")


# ---------------------------------------------------------------- malformed datasets


def _bad(cli_run, artefact: Path, data: Path, names: str) -> str:
    code, _, err = _eval(cli_run, str(artefact), "--data", str(data))
    lines = err.strip().splitlines()
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    assert names in lines[0], lines[0]
    return lines[0]


@slow
def test_malformed_classification_data_exits_2_naming_the_file(exported, tmp_path, cli_run):
    good = np.zeros((3, 64, 64), dtype=np.float32)
    save(tmp_path / "a" / "3" / "ok.png", good, 4)
    save(tmp_path / "a" / "cat" / "x.png", good, 4)
    assert "not among the model's labels" in _bad(cli_run, exported["classification"], tmp_path / "a", str(tmp_path / "a" / "cat"))

    save(tmp_path / "b" / "3" / "ok.png", good, 4)
    (tmp_path / "b" / "3" / "broken.png").write_bytes(b"\x89PNG not really")
    assert "unreadable image" in _bad(cli_run, exported["classification"], tmp_path / "b", "broken.png")

    (tmp_path / "c.csv").write_text("file,label\nmissing.png,3\n")
    assert "does not exist" in _bad(cli_run, exported["classification"], tmp_path / "c.csv", "c.csv")
    _bad(cli_run, exported["classification"], tmp_path / "nowhere", "nowhere")


@slow
def test_malformed_voc_exits_2_naming_the_file(exported, tmp_path, cli_run):
    def layout(name: str, mask: np.ndarray, image_size: int = 136) -> Path:
        root = tmp_path / name
        save(root / "JPEGImages" / "a.png", np.zeros((3, image_size, image_size), np.float32), 0)
        (root / "SegmentationClass").mkdir(parents=True)
        Image.fromarray(mask.astype(np.uint8), mode="L").save(root / "SegmentationClass" / "a.png")
        return root

    artefact = exported["segmentation"]
    assert "is not a class" in _bad(cli_run, artefact, layout("range", np.full((136, 136), 12)), "a.png")
    assert "but its image is" in _bad(cli_run, artefact, layout("size", np.zeros((100, 136))), "a.png")
    ok = layout("ignore", np.full((136, 136), 255))  # all-void masks are fine: nothing scored, no error
    (ok / "SegmentationClass").rename(ok / "Masks")
    assert "missing folder" in _bad(cli_run, artefact, ok, "SegmentationClass")


@slow
def test_malformed_coco_exits_2_naming_the_file(exported, tmp_path, cli_run):
    data = coco(tmp_path / "ok", count=2)
    doc = json.loads((data / "annotations.json").read_text())
    artefact = exported["detection"]

    (data / "broken.json").write_text('{"images": [')
    assert "not valid JSON" in _bad(cli_run, artefact, data / "broken.json", "broken.json")

    outside = {**doc, "annotations": [{**doc["annotations"][0], "bbox": [100, 100, 60, 10]}]}
    (data / "outside.json").write_text(json.dumps(outside))
    assert "outside" in _bad(cli_run, artefact, data / "outside.json", "outside.json")

    unknown = {**doc, "categories": doc["categories"] + [{"id": 99, "name": "cat"}]}
    (data / "unknown.json").write_text(json.dumps(unknown))
    assert "not among the model's labels" in _bad(cli_run, artefact, data / "unknown.json", "unknown.json")


# ---------------------------------------------------------------- metric definitions on constructed cases


def _detections(dets, truth, num_classes=3):
    records = DetectionRecords(num_classes)
    for (boxes, scores, classes), gt in zip(dets, truth):
        records.add(np.asarray(boxes, float).reshape(-1, 4), np.asarray(scores, float), np.asarray(classes), gt)
    return {k: float(v[0]) for k, v in records.metrics().items()}, records


def test_map_on_hand_counted_cases():
    box = (10.0, 10.0, 50.0, 50.0)
    # A false alarm ranked above the hit: precision 0 then 1/2 at recall 1 -> every recall point reads 0.5.
    m, _ = _detections([([[60, 60, 90, 90], box], [0.9, 0.8], [1, 1])], [[Box(box, 1)]])
    assert m["map"] == pytest.approx(0.5) and m["map50"] == pytest.approx(0.5)
    # One of two objects found: recall points 0..0.5 read precision 1 -> 51 of 101.
    m, _ = _detections([([box], [0.9], [1])], [[Box(box, 1), Box((60, 60, 90, 90), 1)]])
    assert m["map"] == pytest.approx(51 / 101)
    # IoU 1240/1960 = 0.63 (box shifted by 9 px): a hit at thresholds 0.50..0.60 only -> 3 of the 10 IoUs.
    m, _ = _detections([([(19.0, 10.0, 59.0, 50.0)], [0.9], [1])], [[Box(box, 1)]])
    assert m["map50"] == pytest.approx(1.0) and m["map"] == pytest.approx(0.3)
    # A detection on a crowd region is neither a hit nor a false alarm; the class without truth is not averaged.
    m, records = _detections([([[60, 60, 90, 90], box], [0.9, 0.8], [2, 2])], [[Box(box, 2), Box((55.0, 55.0, 95.0, 95.0), 2, crowd=True)]])
    assert m["map"] == pytest.approx(1.0)
    # Weights are image counts: doubling every image changes nothing.
    assert records.metrics(np.array([[2.0]]))["map"][0] == pytest.approx(1.0)


def test_bootstrap_weights_equal_duplicated_images():
    """A resample is scored with draw counts as weights; that must equal scoring the drawn images
    themselves, duplicates and all (COCO's accumulate on a dataset with repeated images)."""
    rng = np.random.default_rng(1)
    images = []
    for _ in range(30):
        truth = [Box(tuple(float(v) for v in (*xy, *(xy + 20))), int(rng.integers(1, 3))) for xy in rng.uniform(0, 80, (int(rng.integers(1, 4)), 2))]
        found = [(np.asarray(t.xyxy) + rng.normal(0, 3, 4), t.label) for t in truth if rng.random() < 0.8]
        found += [(np.r_[xy, xy + 20], int(rng.integers(1, 3))) for xy in rng.uniform(0, 80, (int(rng.integers(0, 3)), 2))]
        boxes = np.asarray([f[0] for f in found], float).reshape(-1, 4)
        images.append((boxes, np.round(rng.random(len(found)), 2), np.asarray([f[1] for f in found], int), truth))
    weighted = DetectionRecords(3)
    for image in images:
        weighted.add(*image)
    for _ in range(3):
        drawn = np.sort(rng.integers(0, len(images), len(images)))
        repeated = DetectionRecords(3)
        for i in drawn:
            repeated.add(*images[i])
        counts = np.bincount(drawn, minlength=len(images))[None].astype(float)
        for key, value in weighted.metrics(counts).items():
            assert value[0] == pytest.approx(repeated.metrics()[key][0], abs=1e-12), key


def test_segmentation_ignores_255_and_pools_images():
    records = SegmentationRecords(3)
    truth = np.array([[0, 1], [2, 255]])
    records.add(np.array([[0, 1], [1, 0]]), truth)  # the void pixel predicted 0 must not count
    records.add(np.array([[0, 0], [0, 0]]), np.zeros((2, 2), dtype=np.int64))
    m = {k: float(v[0]) for k, v in records.metrics().items()}
    # Pooled: class 0 hits 5 of union 5, class 1 hits 1 of union 2, class 2 hits 0 of union 1.
    assert m["pixel_accuracy"] == pytest.approx(6 / 7)
    assert m["miou"] == pytest.approx((1 + 0.5 + 0) / 3)


# ---------------------------------------------------------------- the verdict


def test_recommendation_rule_on_constructed_numbers():
    assert decide(1.0, MIN_SPEEDUP, MAX_DROP_POINTS, "top1")[0]  # both limits are inclusive
    assert decide(MIN_SIZE_RATIO, None, 0.2, "miou")[0]  # smaller is enough without a speed figure
    ok, why = decide(1.9, 1.15, 0.0, "top1")
    assert not ok and "only 1.15x faster and only 1.90x smaller" in why
    ok, why = decide(4.0, 2.0, 1.01, "map")
    assert not ok and "loses 1.01 points of mAP" in why
    ok, why = decide(1.0, None, 0.0, "top1", "coreml skipped")
    assert not ok and "speed not measured (coreml skipped)" in why
    ok, why = decide(4.0, 1.5, None, "top1")
    assert not ok and "accuracy not measured" in why
    assert decide(4.0, 1.0, -0.5, "top1")[0]  # a variant that scores better is not penalised
    assert decide(MIN_SIZE_RATIO, 1.0 / MIN_SPEEDUP, 0.0, "top1")[0]  # smaller and a little slower: still worth it
    ok, why = decide(2.87, 0.08, 0.0, "top1")  # ONNX Runtime's dynamic int8 on this CPU
    assert not ok and "2.87x smaller but 12.50x slower" in why


@slow
def test_verdict_fp16_against_fp32(exported, tmp_path, cli_run):
    with pytest.raises(SystemExit) as exc:
        export_cli.main(
            [
                "--target",
                "onnx",
                "--precision",
                "fp16",
                "--checkpoint",
                str(tf.CLASSIFIER.checkpoint),
                "--image-size",
                str(tf.CLASSIFIER.image_size),
                "--out",
                str(tmp_path),
                "--no-verify",
            ]
        )
    assert exc.value.code == 0
    fp16, fp32 = next(tmp_path.glob("*fp16.onnx")), exported["classification"]
    data = classification_folders(tmp_path / "digits")
    out = tmp_path / "v.json"
    code, stdout, err = _eval(
        cli_run,
        str(fp16),
        "--baseline",
        str(fp32),
        "--data",
        str(data),
        "--limit",
        "60",
        "--runs",
        "20",
        "--warmups",
        "2",
        "--bootstrap",
        "200",
        "--out",
        str(out),
    )
    assert code == 0, err
    doc = json.loads(out.read_text())
    (verdict,) = doc["verdicts"]
    assert verdict["size_ratio"] == pytest.approx(fp32.stat().st_size / fp16.stat().st_size)
    assert verdict["speedup"] is not None and verdict["speedup"] > 0 and verdict["timed_runs"] == 20
    # fp16 weights round the same network: on 60 digits it loses at most a scene or two.
    assert abs(verdict["drop_points"]) <= 100 * 2 / 60
    expected = decide(verdict["size_ratio"], verdict["speedup"], verdict["drop_points"], "top1")[0]
    assert verdict["recommended"] == expected
    assert verdict["line"] in stdout and ("recommended" in verdict["line"])
    assert {m["name"] for m in doc["models"]} == {fp16.name, fp32.name}  # the baseline is scored too
