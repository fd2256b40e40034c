"""Every checkpoint format users have, on disk, through `mvit-export` and `mvit-verify` as a user runs them.

HF folders are written by transformers' own save_pretrained (plus the preprocessor_config.json an
HF hub folder carries), ml-cvnets/timm files by torch.save of their exact key names.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import transformers
from model_utils import randomize_

from mvit.models import create_model
from mvit.models.checkpoints import save_checkpoint, to_format
from mvit.models.mobilevit import SIZES

# Conversion-heavy: runs in CI; `pytest -m "not slow"` skips it for a quick check.
pytestmark = pytest.mark.slow

MVIT_EXPORT = Path(sys.executable).with_name("mvit-export")
MVIT_VERIFY = Path(sys.executable).with_name("mvit-verify")
SIZE = 64


def cli(exe: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(exe), *args], capture_output=True, text=True, timeout=600)


def hf_config(num_labels: int, **kw) -> transformers.MobileViTConfig:
    s = SIZES["xxs"]
    labels = {i: f"thing {i}" for i in range(num_labels)}
    return transformers.MobileViTConfig(
        neck_hidden_sizes=s.hf_neck_hidden_sizes,
        hidden_sizes=list(s.dims),
        expand_ratio=s.expand_ratio,
        id2label=labels,
        label2id={v: k for k, v in labels.items()},
        image_size=SIZE,
        **kw,
    )


def write_processor(folder: Path, **overrides) -> None:
    config = {
        "image_processor_type": "MobileViTImageProcessor",
        "do_resize": True,
        "size": {"shortest_edge": SIZE + 8},
        "do_center_crop": True,
        "crop_size": {"height": SIZE, "width": SIZE},
        "do_rescale": True,
        "rescale_factor": 1 / 255,
        "do_flip_channel_order": True,
        **overrides,
    }
    (folder / "preprocessor_config.json").write_text(json.dumps(config))


def hf_folder(tmp_path: Path, task: str, **processor) -> Path:
    folder = tmp_path / f"hf-{task}"
    if task == "classification":
        model = transformers.MobileViTForImageClassification(hf_config(7))
    else:
        model = transformers.MobileViTForSemanticSegmentation(hf_config(5, output_stride=16))
    randomize_(model.eval(), seed=3)
    model.save_pretrained(folder)
    write_processor(folder, **processor)
    return folder


def ours(task: str) -> tuple[str, torch.nn.Module]:
    name = "mobilevit_xxs" if task == "classification" else "deeplabv3_mobilevit_xxs"
    return name, randomize_(create_model(name, num_classes=7 if task == "classification" else 5), seed=4)


def state_dict_file(tmp_path: Path, fmt: str, task: str) -> Path:
    _, model = ours(task)
    path = tmp_path / f"{fmt.replace('/', '-')}.pt"
    torch.save(to_format(model.state_dict(), fmt), path)
    return path


def report_of(stdout: str) -> dict:
    artefact = Path(stdout.split()[0])
    return json.loads(artefact.with_name(artefact.name + ".report.json").read_text())


def export_ok(tmp_path: Path, checkpoint: Path, *extra: str) -> tuple[dict, str]:
    out = tmp_path / "out"
    r = cli(MVIT_EXPORT, "--target", "onnx", "--precision", "fp32", "--checkpoint", str(checkpoint), "--out", str(out), *extra)
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr
    (line,) = r.stdout.splitlines()
    assert " pass by onnxruntime" in line, line
    return report_of(r.stdout), r.stderr + "\n" + line


@pytest.mark.parametrize("task", ["classification", "segmentation"])
def test_hf_folder_exports_and_verifies_with_its_own_labels_size_and_preprocessing(tmp_path, task):
    folder = hf_folder(tmp_path, task)
    report, err = export_ok(tmp_path, folder)
    assert report["image_size"] == SIZE  # crop_size from preprocessor_config.json
    assert report["preprocess"]["channel_order"] == "BGR" and report["preprocess"]["scale"] == pytest.approx(1 / 255)
    assert report["labels_count"] == (7 if task == "classification" else 5)
    assert "assumed" not in err  # the folder says how it preprocesses: nothing to assume
    artefact = tmp_path / "out" / report["artefact"]
    r = cli(MVIT_VERIFY, str(artefact), "--checkpoint", str(folder))
    assert r.returncode == 0 and " pass " in r.stdout, r.stderr


def test_hf_folder_labels_reach_the_coreml_classifier(tmp_path):
    from mvit.exporters.targets import get_target

    folder = hf_folder(tmp_path, "classification")
    r = cli(MVIT_EXPORT, "--checkpoint", str(folder), "--out", str(tmp_path / "out"), "--precision", "fp32")
    assert r.returncode == 0, r.stderr
    meta = get_target("coreml").read_metadata(Path(r.stdout.split()[0]))
    assert json.loads(meta["classifier_labels"]) == [f"thing {i}" for i in range(7)]  # the classify op's own labels
    assert json.loads(meta["labels"]) == [f"thing {i}" for i in range(7)]


def test_hf_normalising_processor_is_carried_and_matches_transformers(tmp_path):
    """A torchvision-style fine-tune (RGB, ImageNet mean/std) described by a ViT processor's file (MobileViT's
    own processor never normalises): the ONNX artefact fed raw pixels must give transformers' logits for
    the processor's tensor."""
    import onnxruntime as ort

    mean, std = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
    folder = hf_folder(
        tmp_path,
        "classification",
        image_processor_type="ViTImageProcessor",
        size={"height": SIZE, "width": SIZE},
        do_normalize=True,
        image_mean=mean,
        image_std=std,
    )
    report, _ = export_ok(tmp_path, folder)
    assert report["preprocess"]["channel_order"] == "RGB"
    assert report["preprocess"]["mean"] == pytest.approx(mean) and report["preprocess"]["std"] == pytest.approx(std)
    hf = transformers.MobileViTForImageClassification.from_pretrained(folder).eval()
    pixels = np.random.default_rng(0).integers(0, 256, (1, 3, SIZE, SIZE)).astype(np.float32)
    x = (pixels / 255 - np.reshape(mean, (1, 3, 1, 1))) / np.reshape(std, (1, 3, 1, 1))
    with torch.no_grad():
        ref = hf(pixel_values=torch.from_numpy(x.astype(np.float32))).logits.softmax(-1).numpy()
    sess = ort.InferenceSession(str(tmp_path / "out" / report["artefact"]))
    got = sess.run(["probabilities"], {"image": pixels})[0]
    assert np.abs(got - ref).max() < 1e-5


@pytest.mark.parametrize("weights_name", ["model.safetensors", "pytorch_model.bin"])
def test_hf_weights_file_alone(tmp_path, weights_name):
    folder = hf_folder(tmp_path, "classification")
    weights = folder / "model.safetensors"
    if weights_name == "pytorch_model.bin":
        from safetensors.torch import load_file

        torch.save(load_file(weights), tmp_path / weights_name)
        weights = tmp_path / weights_name
    report, err = export_ok(tmp_path, weights, "--image-size", str(SIZE))
    assert report["model"] == "mobilevit_xxs" and report["labels_count"] == 7
    assert "do not record their preprocessing" in err and "--channel-order" in err  # said what it assumed, and the override


@pytest.mark.parametrize(
    "fmt,task", [("cvnets/classification", "classification"), ("cvnets/segmentation", "segmentation"), ("timm/classification", "classification")]
)
def test_bare_state_dicts_say_what_they_assume(tmp_path, fmt, task):
    path = state_dict_file(tmp_path, fmt, task)
    report, err = export_ok(tmp_path, path, "--image-size", str(SIZE))
    assert report["preprocess"]["channel_order"] == "BGR" and report["assumptions"]
    assert "assumed Apple's (BGR, x/255, no mean/std)" in err


def test_bare_state_dict_with_stated_torchvision_preprocessing(tmp_path):
    path = state_dict_file(tmp_path, "cvnets/classification", "classification")
    report, err = export_ok(tmp_path, path, "--image-size", str(SIZE), "--channel-order", "RGB", "--mean", "0.485,0.456,0.406", "--std", "0.229,0.224,0.225")
    assert report["preprocess"]["channel_order"] == "RGB" and report["preprocess"]["mean"] == pytest.approx([0.485, 0.456, 0.406])
    assert not report["assumptions"] and "assumed" not in err
    assert "input: RGB, (x/255 - [0.485,0.456,0.406]) / [0.229,0.224,0.225]" in err  # the result line says it


@pytest.mark.parametrize("task", ["classification", "segmentation"])
def test_mvit_safetensors_records_everything(tmp_path, task):
    name, model = ours(task)
    path = save_checkpoint(
        model,
        tmp_path / "mine.safetensors",
        name,
        labels=[f"l{i}" for i in range(model.num_classes)],
        channel_order="RGB",
        preprocess={"mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25]},
    )
    report, err = export_ok(tmp_path, path, "--image-size", str(SIZE))
    assert report["preprocess"]["channel_order"] == "RGB" and report["preprocess"]["std"] == pytest.approx([0.25] * 3)
    assert "assumed" not in err


@pytest.mark.slow
def test_hf_folder_to_every_target(tmp_path):
    folder = hf_folder(tmp_path, "classification")
    r = cli(MVIT_EXPORT, "--target", "all", "--checkpoint", str(folder), "--out", str(tmp_path / "out"))
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert [Path(line.split()[0]).suffix for line in lines] == [".mlpackage", ".onnx", ".tflite"]  # in the order run
    assert all(" pass by " in line for line in lines), lines
