"""`python -m mvit.exporters.matrix` through mvit.work: rows as tasks on local worker processes
and on a Ray cluster this test starts give the same rows and byte-identical artefacts and reports
(on Ray each row is exported in a worker's scratch folder and its files come back with the row).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # four full-size XXS ONNX exports, each verified

COMMAND = [sys.executable, "-m", "mvit.exporters.matrix", "--models", "mobilevit_xxs", "--configs", "A,B", "--targets", "onnx", "--precision", "fp32"]


def _matrix(out: Path, *more: str) -> tuple[list[dict], dict[str, bytes]]:
    env = {k: v for k, v in os.environ.items() if k not in ("MVIT_DEBUG", "RAY_ADDRESS")}
    proc = subprocess.run([*COMMAND, "--out", str(out), *more], env=env, text=True, capture_output=True, timeout=900)
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    files = {p.name: p.read_bytes() for p in sorted((out / "mobilevit_xxs").iterdir())}
    return sorted(rows, key=lambda r: r["config"]), files


def test_local_workers_and_ray_export_the_same_matrix(tmp_path):
    import ray  # the ray extra, which .[test] installs

    local_rows, local_files = _matrix(tmp_path / "local", "--workers", "2")
    assert [(r["config"], r["verdict"]) for r in local_rows] == [("A", "pass"), ("B", "pass")]
    assert sorted(local_files) == [
        "mobilevit_xxs_A_256_fp32.onnx",
        "mobilevit_xxs_A_256_fp32.onnx.report.json",
        "mobilevit_xxs_B_256_fp32.onnx",
        "mobilevit_xxs_B_256_fp32.onnx.report.json",
    ]
    assert (tmp_path / "local" / "matrix-fp32.md").read_text().count("| pass |") == 2

    # address="local": a cluster of its own, never one another process on this machine left running
    context = ray.init(address="local", num_cpus=2, object_store_memory=200 * 2**20, include_dashboard=False, logging_level="ERROR")
    try:
        ray_rows, ray_files = _matrix(tmp_path / "ray", "--ray", context.address_info["gcs_address"])
    finally:
        ray.shutdown()
    assert ray_rows == local_rows
    assert ray_files == local_files


def test_workers_and_ray_together_is_one_line(tmp_path):
    proc = subprocess.run([*COMMAND, "--out", str(tmp_path), "--workers", "2", "--ray", "local"], text=True, capture_output=True, timeout=300)
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == ["error: --workers and --ray exclude each other: Ray decides where its tasks run"]
