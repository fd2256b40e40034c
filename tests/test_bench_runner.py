import json
import platform

import pytest
import torch
from bench_docs import harness_document, lognormal_times
from typer.testing import CliRunner

from mvit.benchmarks.cli import app
from mvit.benchmarks.macs import count_macs
from mvit.benchmarks.runtimes import RuntimeUnavailable, runtime_available
from mvit.benchmarks.schema import load_results
from mvit.models import create_model


@pytest.mark.parametrize("name, reference_gmacs", [("mobilevit_xxs", 0.407), ("mobilevit_xs", 1.026), ("mobilevit_s", 2.000)])
def test_counted_macs_match_the_reference_at_256(name, reference_gmacs):
    # The paper's (arXiv 2110.02178) conv + matmul MACs at 256x256, config A.
    macs = count_macs(create_model(name, "A"), torch.zeros(1, 3, 256, 256))
    assert macs / 1e9 == pytest.approx(reference_gmacs, rel=0.02)


def test_config_b_has_fewer_attention_macs():
    x = torch.zeros(1, 3, 256, 256)
    assert count_macs(create_model("mobilevit_xxs", "B"), x) < count_macs(create_model("mobilevit_xxs", "A"), x)


def test_cvt13_is_the_papers_size():
    from mvit.benchmarks.comparison_models import build_cvt13  # needs transformers (test extra): missing must fail

    model = build_cvt13()
    assert sum(p.numel() for p in model.parameters()) / 1e6 == pytest.approx(20.0, rel=0.05)  # paper: 20 M
    assert count_macs(model, torch.zeros(1, 3, 224, 224)) / 1e9 == pytest.approx(4.5, rel=0.03)  # paper: 4.5 G


@pytest.mark.skipif(platform.system() == "Darwin", reason="on macOS CoreML is available; this checks the Linux message")
def test_coreml_is_skipped_off_macos_with_a_reason():
    with pytest.raises(RuntimeUnavailable, match="CoreML runs only on macOS"):
        runtime_available("coreml")


def test_run_writes_schema_valid_results_markdown_and_png(tmp_path):
    out = tmp_path / "res.json"
    cli = CliRunner().invoke(
        app,
        [
            "run",
            "-m",
            "mobilevit_xxs",
            "-c",
            "A",
            "-r",
            "pytorch,onnxruntime",
            "--image-size",
            "64",
            "--runs",
            "5",
            "--warmups",
            "1",
            "--threads",
            "1",
            "--out",
            str(out),
            "--artefact-dir",
            str(tmp_path / "art"),
        ],
    )
    assert cli.exit_code == 0, cli.output
    doc = load_results(out)
    rows = {r["runtime"]: r for r in doc["results"]}
    assert set(rows) == {"pytorch", "onnxruntime"}
    for r in rows.values():
        assert r["input_size"] == [64, 64] and r["runs"] == 5 and r["threads"] == 1 and r["warmup_runs"] == 1
        assert r["macs"] > 0 and r["gflops_per_s"] > 0 and r["peak_rss_mb"] > 0
        assert r["stats"]["min_ms"] <= r["stats"]["median_ms"] <= r["stats"]["max_ms"]
    assert rows["onnxruntime"]["artefact"].endswith(".onnx") and rows["pytorch"]["artefact"] is None
    assert doc["gemm_gflops"] > 0 and "onnxruntime" in doc["machine"]["libraries"]
    assert "| mobilevit_xxs | A | onnxruntime |" in out.with_suffix(".md").read_text()
    assert out.with_suffix(".png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # --reuse-artefacts finds that export by its metadata instead of converting again.
    from mvit.benchmarks.runtimes import bench_model, find_artefact

    art = tmp_path / "art" / "onnxruntime"
    assert str(find_artefact(bench_model("mobilevit_xxs", "A", 64), "onnx", art, "fp32")) == rows["onnxruntime"]["artefact"]
    assert find_artefact(bench_model("mobilevit_xxs", "B", 64), "onnx", art, "fp32") is None
    assert find_artefact(bench_model("mobilevit_xxs", "A", 96), "onnx", art, "fp32") is None


def test_run_rejects_unknown_model_and_runtime_in_one_line(tmp_path, capsys):
    from mvit.benchmarks.cli import main

    for args in (["-m", "mobilevit_xxxl"], ["-r", "tensorrt"]):
        with pytest.raises(SystemExit) as info:
            main(["run", *args, "--out", str(tmp_path / "x.json")])
        err = capsys.readouterr().err
        assert info.value.code == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1
        assert err.startswith("error: ")
    assert not (tmp_path / "x.json").exists()


def test_report_renders_a_harness_file(tmp_path):
    path = tmp_path / "harness.json"
    path.write_text(json.dumps(harness_document({"cpuOnly": lognormal_times(8, 20, 1), "all": lognormal_times(3, 20, 2)})))
    out = CliRunner().invoke(app, ["report", str(path), "--out", str(tmp_path / "rep")])
    assert out.exit_code == 0, out.output
    md = (tmp_path / "rep.md").read_text()
    assert "coreml (cpuOnly)" in md and "iPhone13,2" in md and "thermal nominal" in md
    assert (tmp_path / "rep.png").stat().st_size > 1000


def test_ci_report_without_previous_commit_is_an_honest_a_a(monkeypatch, tmp_path):
    from mvit.benchmarks import ci

    monkeypatch.setattr(ci, "CI_RUNTIMES", ("onnxruntime",))  # LiteRT conversion is too slow for a unit test
    report = ci.run_ci(ci.CiSettings(runs=20, warmups=2, previous=False), log=lambda m: None)
    assert "A/A" in report and "noise floor" in report
    assert "mobilevit_xxs A onnxruntime" in report and "mobilevit_xxs B onnxruntime" in report
    assert "never fails CI" in report


def _git(repo, *args):
    import subprocess

    subprocess.run(["git", "-C", str(repo), "-c", "user.email=ci@example.invalid", "-c", "user.name=ci", *args], check=True, capture_output=True)


def test_ci_baseline_choice_from_git_history(tmp_path):
    from mvit.benchmarks.ci import export_previous

    repo = tmp_path / "repo"
    (repo / "models").mkdir(parents=True)
    (repo / "models" / "net.py").write_text("x = 1\n")
    _git(repo, "init", "-q")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "one")
    assert export_previous(repo, tmp_path / "w0", ["onnxruntime"])[0] is None  # no HEAD~1 yet

    (repo / "README.md").write_text("docs only\n")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "docs")
    paths, why = export_previous(repo, tmp_path / "w1", ["onnxruntime"])
    assert paths == {} and "same artefacts" in why  # export code unchanged: nothing rebuilt

    (repo / "models" / "net.py").write_text("x = 2\n")
    _git(repo, "commit", "-qam", "model change")
    paths, why = export_previous(repo, tmp_path / "w2", ["onnxruntime"])
    assert paths is None and "no mvit.exporters.api" in why  # that old tree cannot export: say so
