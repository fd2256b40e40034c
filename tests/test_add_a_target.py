"""docs/architecture.md's "Add a target" is exactly true: one package and one registry line, and the
CLI offers the target and the option it declares, exports its folder artefact (replacing its own,
refusing a folder of the user's), times it as a runtime whose results validate, labels its rows
with its note and records its library's version, with no other file edited."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from mvit.benchmarks.schema import ResultsFileError, validate_document

# Its options, declared without its converter, as every target's are.
FAKE_OPTIONS = """
from mvit.exporters.base import TargetOption

OPTIONS = (TargetOption("fake_layout", "--fake-layout", "Fake: a layout only it has", tag="fakelayout"),)
"""

# A whole target: TorchScript in a folder that holds its marker file.
FAKE_TARGET = """
import json
from collections import Counter

import torch

from mvit.exporters.base import RunnerDefaults, TargetDefaults

from .options import OPTIONS


class FakeRunner(RunnerDefaults):
    def __init__(self, path, num_threads=None):
        self.module = torch.jit.load(str(path / "module.pt"))
        self.input_names = ["image"]
        self.output_names = json.loads(FakeTarget().read_metadata(path)["output_names"])

    def run(self, inputs):
        with torch.inference_mode():
            out = self.module(torch.from_numpy(inputs["image"]))
        outs = out if isinstance(out, (tuple, list)) else [out]
        return {name: value.numpy() for name, value in zip(self.output_names, outs)}


class FakeTarget(TargetDefaults):
    name = "fake"
    suffix = ".fakepkg"
    runtime = "fakert"
    install_hint = "pip install 'mvit[fake]'"
    options = OPTIONS
    export_rewrites = frozenset()

    def available(self):
        return True

    def export(self, request, path):
        traced = torch.jit.trace(request.module, torch.zeros(request.input_shape))
        path.mkdir()
        torch.jit.save(traced, str(path / "module.pt"))
        ranks = [value.type().dim() for node in traced.inlined_graph.nodes() for value in node.outputs() if value.type().kind() == "TensorType"]
        recorded = {"output_names": json.dumps(request.output_names), "max_rank": str(max(rank for rank in ranks if rank is not None))}
        (path / "metadata.json").write_text(json.dumps({**request.metadata, **recorded}))
        (path / "fake.marker").write_text("written by the fake target")

    def read_metadata(self, path):
        return json.loads((path / "metadata.json").read_text())

    def _graph(self, path):
        return torch.jit.load(str(path / "module.pt")).inlined_graph

    def op_histogram(self, path):
        return dict(Counter(node.kind() for node in self._graph(path).nodes()))

    def max_tensor_rank(self, path):  # recorded at export: a saved TorchScript graph keeps no shapes
        return int(self.read_metadata(path)["max_rank"])

    def load(self, path, num_threads=None, **_):
        return FakeRunner(path, num_threads)


TARGET = FakeTarget()
"""

# The one line, as a developer adds it to _TARGETS.
REGISTRY_LINE = (
    '    "fake": Entry("fake.assembled", ".fakepkg", "fakert", False, folder_marker="fake.marker", '
    'runtime_note="a fake runtime, not device numbers", distributions=("fakelib",)),\n'
)

# The registry module re-run from its own source with that line added; the package folder joins the
# targets package, and the folder (which also holds the fake library's installed metadata) joins
# the import path. Then the command runs as users run it.
RUN = """
import sys
from pathlib import Path

import mvit.exporters.targets as targets

source = Path(targets.__file__).read_text()
edited = source.replace("_TARGETS = {\\n", "_TARGETS = {\\n" + sys.argv[1], 1)
assert edited != source, "the registry has no `_TARGETS = {` line to add to"
exec(compile(edited, targets.__file__, "exec"), vars(targets))
targets.__path__.append(sys.argv[2])
sys.path.insert(0, sys.argv[2])
if sys.argv[3] == "mvit-export":
    from mvit.exporters.cli import main
else:
    from mvit.benchmarks.cli import main
main(sys.argv[4:])
"""


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "fake").mkdir()
    (tmp_path / "fake" / "__init__.py").write_text("")
    (tmp_path / "fake" / "assembled.py").write_text(FAKE_TARGET)
    (tmp_path / "fake" / "options.py").write_text(FAKE_OPTIONS)
    library = tmp_path / "fakelib-1.2.3.dist-info"
    library.mkdir()
    (library / "METADATA").write_text("Metadata-Version: 2.1\nName: fakelib\nVersion: 1.2.3\n")
    return tmp_path


def _run(folder: Path, command: str, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", RUN, REGISTRY_LINE, str(folder), command, *argv], capture_output=True, text=True, timeout=600, cwd=folder)


def test_a_new_target_package_and_registry_line_appear_in_the_cli(folder):
    shown = _run(folder, "mvit-export", "--help")
    assert shown.returncode == 0, shown.stderr
    assert "fake" in shown.stdout.split("--target")[1].split("--model")[0]
    assert "--fake-layout" in shown.stdout and "Fake: a layout only it has" in shown.stdout
    refused = _run(folder, "mvit-export", "--target", "onnx", "--fake-layout", "--out", str(folder / "out"))
    assert refused.returncode == 2 and "--fake-layout applies to fake exports only (got --target onnx)" in refused.stderr, refused.stderr
    assert not (folder / "out").exists()


EXPORT = ("--target", "fake", "--model", "mobilevit_xxs", "--image-size", "64", "--precision", "fp32", "--no-verify")


def test_its_folder_artefact_is_replaced_by_its_marker_and_a_users_folder_is_not(folder):
    first = _run(folder, "mvit-export", *EXPORT, "--out", "out")
    assert first.returncode == 0, first.stderr
    (artefact,) = (folder / "out").glob("*.fakepkg")
    assert (artefact / "fake.marker").is_file() and (artefact / "module.pt").is_file()
    again = _run(folder, "mvit-export", *EXPORT, "--out", "out")
    assert again.returncode == 0, again.stderr  # its own folder, known by the marker the registry line names
    profiled = _run(folder, "mvit-bench", "profile", str(artefact))  # its runtime is known; it has no op profiler
    assert profiled.returncode == 2 and profiled.stderr.strip() == f"error: {artefact}: fakert artefacts have no per-op view on this machine"
    users = folder / "mine" / artefact.name
    users.mkdir(parents=True)
    (users / "notes.txt").write_text("mine")
    refused = _run(folder, "mvit-export", *EXPORT, "--out", "mine")
    assert refused.returncode == 2 and "folder mvit did not write" in refused.stderr, refused.stderr
    assert (users / "notes.txt").read_text() == "mine" and not (users / "fake.marker").exists()
    several = _run(folder, "mvit-export", *EXPORT[:5], "64,96", *EXPORT[6:], "--out", "several")  # it declares no multi-size form
    assert several.returncode == 2 and "one image size per artefact" in several.stderr, several.stderr


def test_its_runtime_is_timed_validated_labelled_and_its_library_recorded(folder):
    timed = _run(
        folder, "mvit-bench", "run", "-m", "mobilevit_xxs", "-c", "A", "-r", "fakert", "--image-size", "64", "--runs", "2", "--warmups", "0", "--out", "r.json"
    )
    assert timed.returncode == 0, timed.stderr
    assert "fakert: timed by its a fake runtime, not device numbers" in timed.stdout + timed.stderr
    doc = json.loads((folder / "r.json").read_text())  # written only after validating against the schema
    assert [row["runtime"] for row in doc["results"]] == ["fakert"]
    assert doc["machine"]["libraries"]["fakelib"] == "1.2.3"
    assert "| fakert (a fake runtime, not device numbers) |" in (folder / "r.md").read_text()
    with pytest.raises(ResultsFileError, match="runtime"):  # here, without the line, no such runtime exists
        validate_document(doc)
