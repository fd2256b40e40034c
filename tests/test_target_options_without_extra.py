"""A target's own flags are declared in its light options.py: the CLI offers them whether or not its
extra imports, and using the target without its extra is the one-line pip hint (exit 2)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from mvit.errors import EXIT_BAD_INPUT
from mvit.exporters.targets import declared_options, target_names, target_options

MVIT_EXPORT = Path(sys.executable).with_name("mvit-export")


def _without_onnx(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """mvit-export on a machine whose onnx package fails to import (a package of that name that raises)."""
    blocker = tmp_path / "blocker" / "onnx"
    blocker.mkdir(parents=True, exist_ok=True)
    (blocker / "__init__.py").write_text("raise ImportError('onnx is not installed here')\n")
    env = {k: v for k, v in os.environ.items() if k != "MVIT_DEBUG"} | {"PYTHONPATH": str(tmp_path / "blocker")}
    return subprocess.run([str(MVIT_EXPORT), *args], capture_output=True, text=True, timeout=600, cwd=tmp_path, env=env)


def test_help_lists_a_targets_flag_when_its_dependency_does_not_import(tmp_path):
    shown = _without_onnx(tmp_path, "--help")
    assert shown.returncode == 0, shown.stderr
    assert "--dynamic-batch" in shown.stdout and "ONNX: dynamic batch dimension" in shown.stdout


def test_using_that_target_is_the_install_hint_in_one_line(tmp_path):
    used = _without_onnx(tmp_path, "--target", "onnx", "--dynamic-batch", "--model", "mobilevit_xxs", "--image-size", "64", "--out", "out")
    assert used.returncode == EXIT_BAD_INPUT, used.stderr
    lines = used.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "pip install 'mvit[onnx]'" in lines[0], used.stderr
    assert "no such option" not in used.stderr and not (tmp_path / "out").exists()


@pytest.mark.parametrize("name", target_names())
def test_reading_a_targets_options_imports_no_converter(name):
    """In a fresh interpreter: the declarations come without the target module or its converter."""
    probe = (
        "import sys\n"
        "from mvit.exporters.targets import target_options\n"
        f"target_options({name!r})\n"
        f"loaded = [m for m in sys.modules if m.startswith('mvit.exporters.targets.{name}.') and not m.endswith('.options')]\n"
        "heavy = [m for m in ('coremltools', 'onnx', 'onnxruntime', 'ai_edge_litert', 'litert_torch', 'coreai', 'coreai_torch') if m in sys.modules]\n"
        "print(loaded, heavy)\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[] []"


def test_every_declared_option_names_the_targets_that_declare_it():
    declared = declared_options()
    assert declared["dynamic_batch"][1] == ["onnx"] and declared["nhwc"][1] == ["tflite"]
    assert [option for name in target_names() for option in target_options(name)] == [option for option, _ in declared.values()]
