"""`mvit-bench profile`: time by op type (ONNX Runtime), ops and XNNPACK partitions (LiteRT)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mvit.benchmarks.cli import main
from mvit.benchmarks.op_profile import profile_artefact
from mvit.exporters.targets.onnx.profile import summarise_onnx_events
from mvit.exporters.targets.tflite.profile import summarise_litert_ops


def _run(ts: int, dur: int) -> dict:
    return {"cat": "Session", "name": "model_run", "ts": ts, "dur": dur}


def _node(ts: int, dur: int, op: str) -> dict:
    return {"cat": "Node", "name": f"/{op.lower()}_{ts}_kernel_time", "ts": ts, "dur": dur, "args": {"op_name": op}}


def test_onnx_events_are_summed_per_op_type_after_the_warmups():
    events = [
        _run(0, 100),
        _node(10, 90, "Conv"),  # warm-up: dropped
        _run(1000, 60),
        _node(1010, 30, "Conv"),
        _node(1040, 15, "Gemm"),
        _node(1050, 15, "Gemm"),
        _run(2000, 40),
        _node(2010, 10, "Conv"),
        _node(2020, 10, "Gemm"),
        _node(2030, 10, "Gemm"),
        {"cat": "Node", "name": "/conv_fence_before", "ts": 1005, "dur": 5, "args": {"op_name": "Conv"}},
    ]
    profile = summarise_onnx_events(events, warmups=1)
    assert profile.runs == 2 and profile.median_run_ms == pytest.approx(0.05)
    assert [(t.op_type, t.count) for t in profile.op_times] == [("Gemm", 2), ("Conv", 1)]
    gemm, conv = profile.op_times
    assert gemm.total_ms == pytest.approx(0.025) and conv.total_ms == pytest.approx(0.02)  # per run
    assert gemm.percent == pytest.approx(500 / 9) and conv.percent == pytest.approx(400 / 9)


def test_litert_partitions_are_traced_from_the_delegate_nodes():
    # in(0) -A-> 1 -B-> 2 -C-> 3 -D-> 4; XNNPACK took A, B and D; C (weights in 9) runs alone.
    ops = [
        {"op_name": "CONV_2D", "inputs": np.array([0, 8]), "outputs": np.array([1])},
        {"op_name": "ADD", "inputs": np.array([1, -1]), "outputs": np.array([2])},
        {"op_name": "REVERSE_V2", "inputs": np.array([2, 9]), "outputs": np.array([3])},
        {"op_name": "ADD", "inputs": np.array([3]), "outputs": np.array([4])},
        {"op_name": "DELEGATE", "inputs": np.array([0, 8]), "outputs": np.array([2])},
        {"op_name": "DELEGATE", "inputs": np.array([3]), "outputs": np.array([4])},
    ]
    profile = summarise_litert_ops(ops)
    assert profile.partitions == 2
    assert profile.op_counts == {"ADD": 2, "CONV_2D": 1, "REVERSE_V2": 1}
    assert profile.delegated == {"ADD": 2, "CONV_2D": 1} and profile.not_delegated == {"REVERSE_V2": 1}
    assert any("REVERSE_V2 x1" in note for note in profile.notes)


@pytest.fixture(scope="module")
def xxs(shared_export):
    """MobileViT-XXS A at 64 px, fp32, for a runtime: the session's shared export (profiling only reads it)."""
    from mvit.benchmarks.runtimes import RUNTIME_TARGETS

    return lambda runtime: shared_export("mobilevit_xxs", RUNTIME_TARGETS[runtime], precision="fp32", image_size=64).path


def test_onnx_profile_of_a_real_export_accounts_for_its_node_time(xxs):
    profile = profile_artefact(xxs("onnxruntime"), threads=1, warmups=2, runs=5)
    ops = {t.op_type: t for t in profile.op_times}
    assert profile.runs == 5 and profile.median_run_ms > 0
    assert sum(t.percent for t in profile.op_times) == pytest.approx(100.0)
    assert ops["Conv"].count > 10 and ops["Conv"].total_ms > 0  # MobileViT-XXS: 35 convs after fusion
    assert profile.op_times == sorted(profile.op_times, key=lambda t: -t.total_ms)


@pytest.mark.slow
def test_litert_profile_of_a_real_export_counts_every_op_once(xxs):
    from mvit.exporters.targets import get_target

    path = xxs("litert")
    profile = profile_artefact(path, threads=1, warmups=1, runs=3)
    assert profile.partitions is not None and profile.partitions >= 1
    assert profile.op_counts == get_target("tflite").op_histogram(path)
    merged = {op: profile.delegated.get(op, 0) + profile.not_delegated.get(op, 0) for op in profile.op_counts}
    assert merged == profile.op_counts and sum(profile.delegated.values()) > 0.9 * sum(profile.op_counts.values())
    assert profile.median_run_ms > 0 and profile.runs == 3


def test_cli_profile_prints_the_table_and_writes_json_and_markdown(xxs, tmp_path, cli_run):
    code, out, err = cli_run(main, "profile", str(xxs("onnxruntime")), "--threads", "1", "--runs", "3", "--warmups", "1", "--out", str(tmp_path / "xxs"))
    assert code == 0, err
    assert "| op type | ms per run | % of node time | nodes |" in out and "| Conv |" in out
    saved = json.loads((tmp_path / "xxs.json").read_text())
    assert saved["runtime"] == "onnxruntime" and saved["runs"] == 3
    assert {t["op_type"] for t in saved["op_times"]} >= {"Conv", "Softmax"}
    assert (tmp_path / "xxs.md").read_text() in out


@pytest.mark.parametrize(
    "name, content, words",
    [
        ("nope.onnx", None, "no such artefact"),
        ("bad.onnx", b"not a model", "not a readable .onnx artefact"),
        ("bad.tflite", b"TFL3 but not really", "not a readable .tflite artefact"),
        ("model.mlpackage", b"", "needs macOS"),
        ("model.txt", b"x", "unknown artefact type"),
    ],
)
def test_cli_profile_bad_input_is_one_error_line(tmp_path, cli_run, name, content, words):
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    code, out, err = cli_run(main, "profile", str(path), "--image-size", "64")
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: ") and words in lines[0], err
    assert name in lines[0] and "Traceback" not in out + err
