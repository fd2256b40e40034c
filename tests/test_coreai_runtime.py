"""The Linux runner for `.aimodel` assets: outputs equal PyTorch's, damaged folders are refused before the
runtime sees them, and a crash of Apple's runtime becomes one line while this process goes on."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("coreai_torch")
pytest.importorskip("coreai.runtime")

from mvit.errors import EXIT_BAD_INPUT, EXIT_FAILED  # noqa: E402
from mvit.exporters.targets.coreai import runtime  # noqa: E402

SIZES = {"main": 32, "small": 16}


class TinyNet(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(8, 4, 1))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.body(image).mean(dim=(2, 3))


@pytest.fixture(scope="module")
def net() -> torch.nn.Module:
    torch.manual_seed(0)
    return TinyNet().eval()


@pytest.fixture(scope="module")
def asset(net, tmp_path_factory) -> Path:
    """One asset with two functions (two input sizes sharing weights) and custom metadata."""
    from coreai.runtime import AIModelAssetMetadata
    from coreai_torch import TorchConverter, get_decomp_table

    converter = TorchConverter(mode=TorchConverter.Mode.RELEASE)
    for name, size in SIZES.items():
        program = torch.export.export(net, (torch.zeros(1, 3, size, size),)).run_decompositions(get_decomp_table())
        converter.add_exported_program(program, input_names=["image"], output_names=["logits"], entrypoint_name=name)
    metadata = AIModelAssetMetadata()
    metadata.set_custom("mvit.task", json.dumps("classification"))
    metadata.set_custom("mvit.image_size", json.dumps(32))
    path = tmp_path_factory.mktemp("coreai") / "tiny.aimodel"
    converter.to_coreai().save_asset(path, metadata=metadata)
    return path


def _copy(asset: Path, tmp_path: Path, name: str = "copy.aimodel") -> Path:
    target = tmp_path / name
    shutil.copytree(asset, target)
    return target


def _flip(asset: Path, position: int, rehash: bool) -> None:
    data = bytearray((asset / "main.mlirb").read_bytes())
    data[position] ^= 0xFF
    (asset / "main.mlirb").write_bytes(bytes(data))
    if rehash:
        (asset / "main.hash").write_bytes(hashlib.sha256(bytes(data)).digest())


def _one_line(exc: pytest.ExceptionInfo) -> str:
    message = str(exc.value)
    assert "\n" not in message and message
    return message


def test_outputs_match_pytorch_for_each_function(asset, net):
    assert runtime.functions(asset) == list(SIZES)
    rng = np.random.default_rng(0)
    for name, size in SIZES.items():
        images = [rng.standard_normal((1, 3, size, size)).astype(np.float32) for _ in range(2)]
        got = runtime.run(asset, name, [{"image": x} for x in images])
        assert len(got) == 2
        for x, outputs in zip(images, got):
            assert list(outputs) == ["logits"]
            expected = net(torch.from_numpy(x)).detach().numpy()
            np.testing.assert_allclose(outputs["logits"], expected, rtol=1e-5, atol=1e-5)


def test_inputs_are_cast_to_the_declared_dtype(asset, net):
    x = np.random.default_rng(1).standard_normal((1, 3, 16, 16))  # float64: the runtime itself refuses it
    [outputs] = runtime.run(asset, "small", [{"image": x}])
    assert outputs["logits"].dtype == np.float32
    np.testing.assert_allclose(outputs["logits"], net(torch.from_numpy(x).float()).detach().numpy(), rtol=1e-5, atol=1e-5)


def test_time_runs_gives_one_duration_per_run(asset):
    times = runtime.time_runs(asset, "small", {"image": np.zeros((1, 3, 16, 16), np.float32)}, warmup=1, runs=3)
    assert len(times) == 3 and all(t > 0 for t in times)


def test_metadata_values_come_back_as_strings(asset):
    metadata = runtime.read_metadata(asset)
    assert json.loads(metadata["mvit.task"]) == "classification"
    assert json.loads(metadata["mvit.image_size"]) == 32


@pytest.mark.parametrize("request_", [("absent", "image", (1, 3, 16, 16)), ("small", "pixels", (1, 3, 16, 16)), ("small", "image", (1, 3, 8, 8))])
def test_a_wrong_function_or_input_is_bad_input(asset, request_):
    function, input_name, shape = request_
    with pytest.raises(runtime.CoreAIRequestError) as info:
        runtime.run(asset, function, [{input_name: np.zeros(shape, np.float32)}])
    assert info.value.exit_code == EXIT_BAD_INPUT
    assert function in _one_line(info)


def test_a_damaged_byte_is_refused_before_the_runtime(asset, tmp_path):
    damaged = _copy(asset, tmp_path)
    _flip(damaged, 100, rehash=False)
    with pytest.raises(runtime.DamagedAsset) as info:
        runtime.run(damaged, "main", [{"image": np.zeros((1, 3, 32, 32), np.float32)}])
    assert "main.hash" in _one_line(info) and "re-export" in str(info.value)


@pytest.mark.parametrize("missing", ["main.hash", "main.mlirb", "metadata.json"])
def test_a_missing_file_is_named(asset, tmp_path, missing):
    damaged = _copy(asset, tmp_path)
    (damaged / missing).unlink()
    with pytest.raises(runtime.DamagedAsset) as info:
        runtime.check_asset(damaged)
    assert missing in _one_line(info)


def test_unparsable_metadata_is_refused(asset, tmp_path):
    damaged = _copy(asset, tmp_path)
    (damaged / "metadata.json").write_text("{not json")
    with pytest.raises(runtime.DamagedAsset) as info:
        runtime.read_metadata(damaged)
    assert "metadata.json" in _one_line(info)


def test_a_fifo_inside_the_asset_does_not_hang(asset, tmp_path):
    damaged = _copy(asset, tmp_path)
    (damaged / "metadata.json").unlink()
    os.mkfifo(damaged / "metadata.json")  # a reader without a writer would block forever
    caught: list[BaseException] = []
    worker = threading.Thread(target=lambda: _catch(caught, runtime.check_asset, damaged), daemon=True)
    worker.start()
    worker.join(timeout=30)
    assert not worker.is_alive(), "check_asset blocked on a FIFO"
    assert len(caught) == 1 and isinstance(caught[0], runtime.DamagedAsset) and "pipe" in str(caught[0])


def test_a_link_out_of_the_asset_is_refused(asset, tmp_path):
    damaged = _copy(asset, tmp_path)
    outside = tmp_path / "elsewhere.bin"
    outside.write_bytes((damaged / "main.mlirb").read_bytes())
    (damaged / "main.mlirb").unlink()
    (damaged / "main.mlirb").symlink_to(outside)
    with pytest.raises(runtime.DamagedAsset) as info:
        runtime.check_asset(damaged)
    assert "outside the asset" in _one_line(info)


def test_not_an_asset_folder_is_refused(tmp_path):
    with pytest.raises(runtime.DamagedAsset) as info:
        runtime.check_asset(tmp_path / "missing.aimodel")
    assert "does not exist" in _one_line(info)
    with pytest.raises(runtime.DamagedAsset):
        runtime.check_asset(tmp_path)


def test_a_runtime_crash_is_one_line_and_this_process_goes_on(asset, tmp_path, monkeypatch):
    """Flipping the bytecode's first byte and recomputing the hash makes coreai-core abort (SIGABRT)."""
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temporary))
    damaged = _copy(asset, tmp_path)
    _flip(damaged, 0, rehash=True)
    runtime.check_asset(damaged)  # the folder itself looks sound: only the runtime can tell
    with pytest.raises(runtime.CoreAIRuntimeFailed) as info:
        runtime.run(damaged, "main", [{"image": np.zeros((1, 3, 32, 32), np.float32)}])
    message = _one_line(info)
    assert message.startswith("the Core AI runtime crashed on copy.aimodel") and "re-export" in message
    assert info.value.exit_code == EXIT_FAILED
    assert not list(temporary.iterdir()), "the crashed runtime's temporary files were left behind"
    assert runtime.functions(asset) == list(SIZES)  # and the next call works


def _catch(into: list[BaseException], fn, *args) -> None:
    try:
        fn(*args)
    except BaseException as exc:  # noqa: BLE001 - handed to the test thread to assert on
        into.append(exc)


_TIMING_COMMAND = """
import sys, numpy as np, typer
from mvit.cli_support import run_cli
from mvit.exporters.targets.coreai import runtime

app = typer.Typer()

@app.command()
def main(asset: str) -> None:
    runtime.time_runs(asset, "main", {"image": np.zeros((1, 3, 32, 32), np.float32)}, warmup=0, runs=10_000_000)

sys.exit(run_cli(typer.main.get_command(app), sys.argv[1:], "timing"))
"""


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupt_ends_the_parent_with_130_and_the_child_with_it(asset, tmp_path, signum):
    work = tmp_path / "tmp"
    work.mkdir()
    env = {**os.environ, "TMPDIR": str(work)}
    parent = subprocess.Popen([sys.executable, "-c", _TIMING_COMMAND, str(asset)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while not list(work.glob("mvit-coreai-*/child.log")) and parent.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert list(work.glob("mvit-coreai-*/child.log")), parent.communicate(timeout=60)[1]
    child_cmdline = str(work).encode()
    time.sleep(1.0)  # the child is inside the runtime's timing loop by now
    parent.send_signal(signum)
    _, err = parent.communicate(timeout=60)
    assert parent.returncode == 130, err
    assert err.decode().strip().splitlines() == ["error: interrupted; nothing half-written was left under a final name"]
    assert not _processes_mentioning(child_cmdline), "the runtime child outlived its parent"
    assert not list(work.iterdir()), "the work folder was left behind"


def _processes_mentioning(text: bytes) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if text in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:  # the process ended while we looked
                continue
    return found
