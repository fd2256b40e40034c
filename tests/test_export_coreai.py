"""Core AI exports through the CLI, run and judged by coreai-core's Linux runtime: the three trained
fixtures and Hugging Face folders, mvit-verify's re-check, damaged assets, one function per size,
int8 weights and refused precisions, mvit-bench and mvit-eval on `.aimodel` files.

Apple's Linux runtime is a slow reference path (about a second per run at 128 px on a loaded CPU),
so every export is made once per module and shared.
"""

from __future__ import annotations

import json
from pathlib import Path

import coreai_torch
import numpy as np
import pytest
import torch
import trained_fixtures as tf
import transformers  # the test extra; a missing reference must fail, not skip
from eval_datasets import classification_folders
from model_utils import randomize_

from mvit.benchmarks.cli import main as bench_main
from mvit.evaluation import cli as eval_cli
from mvit.exporters import cli as export_cli
from mvit.exporters.targets import get_target
from mvit.exporters.targets.coreai import graph_nms, runtime
from mvit.models.detection_postprocess import NmsSettings, select_detections
from mvit.models.mobilevit import SIZES

pytestmark = pytest.mark.slow
COREAI = get_target("coreai")


def _export(out: Path, *args: str) -> tuple[int, Path | None]:
    with pytest.raises(SystemExit) as exc:
        export_cli.main(["--target", "coreai", "--precision", "fp32", "--out", str(out), *args])
    found = sorted(out.glob("*.aimodel")) if out.exists() else []
    return int(exc.value.code or 0), (found[0] if found else None)


def _report(path: Path) -> dict:
    return json.loads(path.with_name(path.name + ".report.json").read_text())


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> dict[str, Path]:
    """Each trained fixture exported once, verified by the Linux runtime during the export."""
    out = tmp_path_factory.mktemp("coreai")
    found = {}
    for task, fixture in tf.FIXTURES.items():
        code, path = _export(out / task, "--checkpoint", str(fixture.checkpoint), "--image-size", str(fixture.image_size))
        assert code == 0 and path is not None, task
        found[task] = path
    return found


@pytest.mark.parametrize("task", ["classification", "segmentation", "detection"])
def test_trained_fixture_exports_and_passes_on_the_linux_runtime(trained, task):
    path = trained[task]
    report = _report(path)
    assert report["verdict"] == "pass", report["failed"]
    assert report["verified_by"].startswith("coreai-runtime") and report["max_tensor_rank"] <= 5
    assert report["batchnorm_ops"] == [] and any("conv" in op for op in report["op_histogram"])
    meta = COREAI.read_metadata(path)
    assert meta["task"] == task and json.loads(meta["labels"])[:2] == (["0", "1"] if task == "classification" else ["background", "0"])
    pre = json.loads(meta["preprocess"])
    assert pre["in_graph"] is True and pre["channel_order"] == "BGR" and report["preprocess"] == pre
    metrics = report["verification"]["task_metrics"]
    if task == "classification":
        assert metrics["top1_agreement"] == 1.0
    if task == "detection":
        assert json.loads(meta["output_names"]) == graph_nms.OUTPUT_NAMES
        # The trained detector finds digits: the in-graph NMS was judged on real boxes, every one matched.
        assert metrics["reference_detections"] > 0 and metrics["detection_recall"] == 1.0
        assert metrics["detection_precision"] == 1.0 and metrics["matched_box_min_iou"] > 0.99


def test_in_graph_nms_keeps_what_greedy_nms_keeps():
    """ClusterNms in PyTorch against the reference greedy per-class NMS on overlapping random boxes."""
    g = torch.Generator().manual_seed(0)
    centres, sizes = torch.rand(1, 300, 2, generator=g), 0.05 + 0.2 * torch.rand(1, 300, 2, generator=g)
    boxes = torch.cat([centres - sizes / 2, centres + sizes / 2], dim=-1)
    probs = torch.softmax(4 * torch.randn(1, 300, 4, generator=g), dim=-1)
    settings = NmsSettings(iou_threshold=0.5, score_threshold=0.05, max_detections=50)
    nms = graph_nms.ClusterNms(lambda x: (boxes, probs), settings, 300, 4)
    out_boxes, scores, classes, count = nms(torch.zeros(1))
    ref_boxes, ref_scores, ref_classes = select_detections(boxes[0], probs[0], settings)
    n = int(count[0])
    assert n == len(ref_scores) == settings.max_detections
    assert torch.equal(classes[0, :n].long(), ref_classes) and torch.allclose(scores[0, :n], ref_scores)
    assert torch.allclose(out_boxes[0, :n], ref_boxes)


def test_mvit_verify_rechecks_an_asset(trained, cli_run):
    path = trained["classification"]
    code, _, err = cli_run(export_cli.verify_main, str(path), "--checkpoint", str(tf.CLASSIFIER.checkpoint))
    assert code == 0, err
    report = json.loads(path.with_name(path.name + ".verify.json").read_text())
    assert report["verdict"] == "pass" and report["verified_by"].startswith("coreai-runtime")


def _damaged_copy(src: Path, dest: Path, how: str) -> Path:
    import shutil

    shutil.copytree(src, dest)
    if how == "flipped byte":
        data = bytearray((dest / "main.mlirb").read_bytes())
        data[len(data) // 2] ^= 0xFF
        (dest / "main.mlirb").write_bytes(bytes(data))
    elif how == "missing hash":
        (dest / "main.hash").unlink()
    else:
        text = (dest / "metadata.json").read_bytes()
        (dest / "metadata.json").write_bytes(text[: len(text) // 2])
    return dest


@pytest.mark.parametrize("how", ["flipped byte", "missing hash", "truncated metadata"])
def test_a_damaged_asset_fails_in_one_line(trained, tmp_path, cli_run, how):
    damaged = _damaged_copy(trained["classification"], tmp_path / trained["classification"].name, how)
    code, out, err = cli_run(export_cli.verify_main, str(damaged), "--checkpoint", str(tf.CLASSIFIER.checkpoint))
    assert code == 1, err
    assert len(err.strip().splitlines()) == 1 and err.startswith("error: ") and "re-export" in err
    assert "Traceback" not in out + err


@pytest.mark.parametrize("precision", ["int8", "palette4"])
def test_an_unsupported_precision_is_refused_in_one_line(tmp_path, capsys, precision):
    code, path = _export(tmp_path, "--model", "mobilevit_xxs", "--image-size", "64", "--precision", precision)
    err = capsys.readouterr().err
    assert code == 2 and path is None
    assert len(err.strip().splitlines()) == 1 and precision in err and "int8-weights" in err


@pytest.fixture(scope="module")
def calibration_dir(tmp_path_factory) -> Path:
    """Digit scenes from the classifier's training digits (never its held-out ones) as PNG files."""
    digits, _ = tf.train_digits()
    scenes = tf.classification_scenes(np.random.default_rng(11), digits[:12], tf.CLASSIFIER.image_size)
    return tf.save_scenes(tmp_path_factory.mktemp("calibration"), scenes)


def test_int8_weights_export_is_smaller_runs_on_the_linux_runtime_and_agrees(trained, tmp_path, calibration_dir):
    code, path = _export(
        tmp_path,
        "--checkpoint",
        str(tf.CLASSIFIER.checkpoint),
        "--image-size",
        str(tf.CLASSIFIER.image_size),
        "--precision",
        "int8-weights",
        "--calibration",
        str(calibration_dir),
    )
    assert code == 0 and path is not None
    report = _report(path)
    # Judged by task agreement with fp32 PyTorch on the photos, noise and the 12 digit scenes.
    assert report["verdict"] == "pass", report["failed"]
    assert report["verification"]["task_metrics"]["top1_judged_samples"] >= 10
    assert report["quantisation"]["dtype"] == "int8" and "coreai-torch 0.4.3" in report["quantisation"]["method"]
    assert report["op_histogram"].get("coreai.blockwise_shift_scale", 0) > 0  # stored int8, dequantised by the runtime
    fp32 = trained["classification"]
    assert _folder_bytes(fp32) > 3 * _folder_bytes(path)
    assert COREAI.read_metadata(path)["precision"] == "int8-weights"


def test_int8_weights_refuses_another_coreai_torch_in_one_line(tmp_path, capsys, monkeypatch):
    # The private compression module was checked against the pinned version only.
    monkeypatch.setattr(coreai_torch, "__version__", "0.5.0")
    code, path = _export(tmp_path, "--model", "mobilevit_xxs", "--image-size", "64", "--precision", "int8-weights", "--no-verify")
    err = capsys.readouterr().err
    assert code == 2 and path is None
    assert len(err.strip().splitlines()) == 1 and "0.4.3" in err and "0.5.0" in err


def _folder_bytes(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())


def test_several_sizes_make_one_asset_with_a_verified_function_each(tmp_path):
    code, path = _export(tmp_path, "--checkpoint", str(tf.CLASSIFIER.checkpoint), "--image-size", "64,96")
    assert code == 0 and path is not None
    report = _report(path)
    assert report["verdict"] == "pass", report["failed"]
    assert [e["name"] for e in report["per_size"]] == ["A_64", "A_96"]
    assert all(e["verdict"] == "pass" for e in report["per_size"])
    assert runtime.functions(path) == ["A_64", "A_96"]
    probs = runtime.run(path, "A_96", [{"image": np.zeros((1, 3, 96, 96), np.float32)}])[0]["probabilities"]
    assert probs.shape == (1, 10) and abs(float(probs.sum()) - 1.0) < 1e-4


@pytest.mark.parametrize("task", ["classification", "segmentation"])
def test_hugging_face_folder_exports_and_verifies(tmp_path, task):
    s = SIZES["xxs"]
    config = transformers.MobileViTConfig(
        neck_hidden_sizes=s.hf_neck_hidden_sizes, hidden_sizes=list(s.dims), expand_ratio=s.expand_ratio, id2label={i: f"thing {i}" for i in range(5)}
    )
    cls = transformers.MobileViTForImageClassification if task == "classification" else transformers.MobileViTForSemanticSegmentation
    randomize_(cls(config).eval(), seed=1).save_pretrained(tmp_path / "hf")
    code, path = _export(tmp_path / "out", "--checkpoint", str(tmp_path / "hf"), "--image-size", "64")
    assert code == 0 and path is not None
    report = _report(path)
    assert report["verdict"] == "pass", report["failed"] and report["task"] == task
    assert json.loads(COREAI.read_metadata(path)["labels"])[4] == "thing 4"


def test_bench_times_an_asset_on_the_linux_runtime(tmp_path, cli_run):
    out = tmp_path / "res.json"
    code, _, err = cli_run(
        bench_main,
        "run",
        "-m",
        "mobilevit_xxs",
        "-c",
        "A",
        "-r",
        "coreai",
        "--image-size",
        "64",
        "--runs",
        "2",
        "--warmups",
        "0",
        "--threads",
        "1",
        "--out",
        str(out),
    )
    assert code == 0, err
    doc = json.loads(out.read_text())
    (row,) = doc["results"]
    assert row["runtime"] == "coreai" and row["artefact"].endswith(".aimodel") and row["runs"] == 2
    assert len(row["times_ms"]) == 2 and all(t > 0 for t in row["times_ms"]) and row["first_inference_ms"] > 0
    assert "coreai-core" in doc["machine"]["libraries"]
    # Said wherever the numbers appear: Apple's Linux reference runtime, not a device.
    assert "coreai: timed by its Linux reference runtime, not device numbers" in err
    table = out.with_suffix(".md").read_text()
    assert "| coreai (Linux reference runtime, not device numbers) |" in table


def test_eval_scores_an_asset(trained, tmp_path, cli_run):
    data = classification_folders(tmp_path / "digits")
    out = tmp_path / "results.json"
    code, _, err = cli_run(
        eval_cli.main,
        str(trained["classification"]),
        "--checkpoint",
        str(tf.CLASSIFIER.checkpoint),
        "--data",
        str(data),
        "--out",
        str(out),
        "--limit",
        "6",
        "--bootstrap",
        "50",
    )
    assert code == 0, err
    doc = json.loads(out.read_text())
    artefact = next(m for m in doc["models"] if m["kind"] == "coreai")
    # The fp32 asset predicts what PyTorch predicts on every image: no paired difference.
    assert abs(artefact["metrics"]["top1"]["difference"]["value"]) <= 1e-9
