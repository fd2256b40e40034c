"""docs/architecture.md's "Add a target" is exactly true: one package and one registry line, and the
CLI offers the target and the option it declares, with no other file edited."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

FAKE_OPTIONS = """
from mvit.exporters.base import TargetOption

OPTIONS = (TargetOption("fake_layout", "--fake-layout", "Fake: a layout only it has", tag="fakelayout"),)
"""

FAKE_TARGET = """
from mvit.exporters.base import TargetDefaults

from .options import OPTIONS


class FakeTarget(TargetDefaults):
    name = "fake"
    suffix = ".fake"
    runtime = "fakert"
    install_hint = "pip install 'mvit[fake]'"
    options = OPTIONS

    def available(self):
        return True


TARGET = FakeTarget()
"""

# Registers the package through the registry's own mechanism: its folder joins the targets package
# and one line joins _TARGETS; then mvit-export runs as users run it.
RUN = """
import sys
import mvit.exporters.targets as targets
targets.__path__.append(sys.argv[1])
targets._TARGETS["fake"] = ("fake.target", ".fake", "fakert", False)
targets._MODULES["fake"] = "fake.target"
from mvit.exporters.cli import main
main(sys.argv[2:])
"""


def _mvit_export(folder: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", RUN, str(folder), *argv], capture_output=True, text=True, timeout=300)


def test_a_new_target_package_and_registry_line_appear_in_the_cli(tmp_path):
    (tmp_path / "fake").mkdir()
    (tmp_path / "fake" / "__init__.py").write_text("")
    (tmp_path / "fake" / "target.py").write_text(FAKE_TARGET)
    (tmp_path / "fake" / "options.py").write_text(FAKE_OPTIONS)
    shown = _mvit_export(tmp_path, "--help")
    assert shown.returncode == 0, shown.stderr
    assert "fake" in shown.stdout.split("--target")[1].split("--model")[0]
    assert "--fake-layout" in shown.stdout and "Fake: a layout only it has" in shown.stdout
    refused = _mvit_export(tmp_path, "--target", "onnx", "--fake-layout", "--out", str(tmp_path / "out"))
    assert refused.returncode == 2 and "--fake-layout applies to fake exports only (got --target onnx)" in refused.stderr, refused.stderr
    assert not (tmp_path / "out").exists()
