import os

import pytest
import torch

# Two cores: keep torch from oversubscribing when ONNX Runtime / LiteRT threads run too. Under
# pytest-xdist each worker process already has a core of its own, so one torch thread each.
_DEFAULT_THREADS = "1" if os.environ.get("PYTEST_XDIST_WORKER") else "2"
torch.set_num_threads(int(os.environ.get("MVIT_TEST_THREADS", _DEFAULT_THREADS)))


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture
def cli_run(capsys):
    """Run an mvit CLI entry point in-process: cli_run(main, *args) -> (exit code, stdout, stderr)."""
    from cli_utils import run_main

    return lambda main, *args: run_main(capsys, main, *args)


@pytest.fixture(scope="session")
def shared_export(tmp_path_factory):
    """shared_export(model, target, **export_model kwargs) -> ExportResult, exported (and verified,
    unless verify=False) once per session for each set of arguments: several files need the same
    small export only as an input. The artefact is shared, so a test that changes it copies it first."""
    from mvit.exporters import api

    made: dict[str, object] = {}

    def export(model: str | None, target: str, **kwargs):
        key = repr((model, target, sorted(kwargs.items())))
        if key not in made:
            made[key] = api.export_model(model, target, tmp_path_factory.mktemp("shared-export"), **kwargs)
        return made[key]

    return export
