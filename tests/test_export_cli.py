"""mvit-export / mvit-verify: one line per artefact; every bad input one stderr line, exit 2, no leftovers."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from cli_utils import run_main
from export_utils import decisive_checkpoint

from mvit.exporters import cli, targets

MVIT_EXPORT = Path(sys.executable).with_name("mvit-export")


def run(capsys, *args: str) -> tuple[int, str, str]:
    return run_main(capsys, cli.main, *args)


def assert_one_error_line(code: int, err: str, *needles: str) -> None:
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in lines[0]


def test_onnx_export_prints_path_size_verdict(tmp_path, capsys):
    code, out, err = run(capsys, "--target", "onnx", "--model", "mobilevit_xxs", "--image-size", "128", "--precision", "fp32", "--out", str(tmp_path))
    assert code == 0, err
    (line,) = out.splitlines()
    assert line.startswith(str(tmp_path / "mobilevit_xxs_A_128_fp32.onnx")) and " MB" in line and "pass by onnxruntime" in line
    assert "RANDOM weights" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mobilevit_xxs_A_128_fp32.onnx", "mobilevit_xxs_A_128_fp32.onnx.report.json"]

    code, out, _ = run_verify(capsys, str(tmp_path / "mobilevit_xxs_A_128_fp32.onnx"))
    assert code == 0 and "pass by onnxruntime" in out


def run_verify(capsys, *args: str) -> tuple[int, str, str]:
    return run_main(capsys, cli.verify_main, *args)


def test_unknown_model(tmp_path, capsys):
    code, _, err = run(capsys, "--target", "onnx", "--model", "mobilevit_xxxl", "--out", str(tmp_path / "o"))
    assert_one_error_line(code, err, "unknown model 'mobilevit_xxxl'")
    assert not (tmp_path / "o").exists()


def test_config_b_impossible_size_suggests_one(tmp_path, capsys):
    code, _, err = run(capsys, "--target", "onnx", "--model", "mobilevit_xxs", "--config", "B", "--image-size", "224", "--out", str(tmp_path))
    assert_one_error_line(code, err, "config B cannot take --image-size 224", "multiple of 64", "192")
    assert list(tmp_path.iterdir()) == []


def test_unreadable_checkpoint(tmp_path, capsys):
    bad = tmp_path / "weights.safetensors"
    bad.write_bytes(b"this is not a checkpoint")
    out_dir = tmp_path / "o"
    code, _, err = run(capsys, "--target", "onnx", "--checkpoint", str(bad), "--out", str(out_dir))
    assert_one_error_line(code, err, "weights.safetensors")
    assert not out_dir.exists() or list(out_dir.iterdir()) == []


def test_mismatched_checkpoint(tmp_path, capsys):
    ckpt = decisive_checkpoint(tmp_path / "cls.safetensors", "mobilevit_xxs")
    code, _, err = run(capsys, "--target", "onnx", "--model", "deeplabv3_mobilevit_xxs", "--checkpoint", str(ckpt), "--out", str(tmp_path / "o"))
    assert_one_error_line(code, err, "mobilevit_xxs")
    assert not (tmp_path / "o").exists()


def test_wrong_label_count(tmp_path, capsys):
    labels = tmp_path / "labels.txt"
    labels.write_text("cat\ndog\n")
    code, _, err = run(capsys, "--target", "onnx", "--model", "mobilevit_xxs", "--labels", str(labels), "--out", str(tmp_path / "o"))
    assert_one_error_line(code, err, "2 labels", "1000 classes")


def test_unwritable_out(tmp_path, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    code, _, err = run(capsys, "--target", "onnx", "--model", "mobilevit_xxs", "--image-size", "128", "--out", str(blocker / "sub"))
    assert_one_error_line(code, err, "cannot write to output folder")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file"]


def test_target_not_installed(tmp_path, capsys, monkeypatch):
    real_import = targets.importlib.import_module

    def import_without_onnx(name, *a, **kw):  # every module of the target but its light options.py
        if name.startswith(f"{targets.__name__}.onnx.") and not name.endswith(".options"):
            raise ModuleNotFoundError("No module named 'onnxruntime'", name="onnxruntime")
        return real_import(name, *a, **kw)

    monkeypatch.setattr(targets.importlib, "import_module", import_without_onnx)
    code, _, err = run(capsys, "--target", "onnx", "--model", "mobilevit_xxs", "--out", str(tmp_path / "o"))
    assert_one_error_line(code, err, "onnxruntime", "pip install 'mvit[onnx]'")
    assert not (tmp_path / "o").exists()


def test_bad_option_value_and_unknown_flag(tmp_path, capsys):
    code, _, err = run(capsys, "--target", "onnx", "--precision", "int3", "--out", str(tmp_path))
    assert_one_error_line(code, err, "--precision")
    code, _, err = run(capsys, "--no-such-flag")
    assert_one_error_line(code, err, "--no-such-flag")


def test_interrupted_export_leaves_nothing(tmp_path, monkeypatch):
    from mvit.exporters.targets.onnx import target as onnx_target

    def interrupted(self, request, path):
        path.write_bytes(b"half an onnx file")
        raise KeyboardInterrupt

    monkeypatch.setattr(onnx_target.OnnxTarget, "export", interrupted)
    from mvit.exporters.api import export_model

    with pytest.raises(KeyboardInterrupt):
        export_model("mobilevit_xxs", "onnx", tmp_path, image_size=128)
    assert list(tmp_path.iterdir()) == []


def test_entry_point_runs_without_traceback(tmp_path):
    proc = subprocess.run([str(MVIT_EXPORT), "--target", "onnx", "--model", "nope", "--out", str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stdout == "" and [l for l in proc.stderr.splitlines() if l.strip()][0].startswith("error: unknown model 'nope'")
    assert "Traceback" not in proc.stderr
