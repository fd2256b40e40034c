import os

import pytest
import torch

# Two cores: keep torch from oversubscribing when ONNX Runtime / LiteRT threads run too.
torch.set_num_threads(int(os.environ.get("MVIT_TEST_THREADS", "2")))


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture
def cli_run(capsys):
    """Run an mvit CLI entry point in-process: cli_run(main, *args) -> (exit code, stdout, stderr)."""
    from cli_utils import run_main

    return lambda main, *args: run_main(capsys, main, *args)
