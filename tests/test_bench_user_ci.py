"""`mvit-bench ci` for a user's own network: a small git repository made here, with commits that
change nothing, make the network much heavier, or move an op out of XNNPACK's partition; each is
exported from its own commit by the CLI and compared with the first commit.

The heavy commit has about 14x the MACs of the base (a 64-channel body instead of 16), so the
paired verdict flags it even on a busy two-core machine; the placement test asserts placement only.
"""

from __future__ import annotations

import contextlib
import io
import json
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from cli_utils import stop_and_check_interrupted

from mvit.benchmarks.cli import main as bench_main
from mvit.benchmarks.user_ci import CONSECUTIVE, WINDOW, hud_verdict
from mvit.benchmarks.verdict import Verdict
from mvit.exporters.cli import main as export_main

NET = textwrap.dedent("""
    import torch
    from torch import nn


    class Net(nn.Module):
        def __init__(self, width, cumsum):
            super().__init__()
            self.stem = nn.Conv2d(3, width, 3, 2, 1)
            self.body = nn.Sequential(nn.ReLU(), nn.Conv2d(width, width, 3, 1, 1), nn.ReLU())
            self.head = nn.Linear(width, 10)
            self.cumsum = cumsum

        def forward(self, x):
            x = self.body(self.stem(x))
            if self.cumsum:  # CUMSUM: a TFLite builtin the XNNPACK delegate does not take
                x = torch.cumsum(x, dim=1)
            return self.head(x.mean((2, 3)))


    def build():
        return Net(WIDTH, CUMSUM)
""")
SIZE = ["--export-args", "--image-size 64 --precision fp32"]
FAST = ["--runs", "30", "--warmups", "2"]


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout.strip()


def _commit(repo: Path, message: str, width: int = 16, cumsum: bool = False, readme: str = "") -> str:
    (repo / "src" / "usernet").mkdir(parents=True, exist_ok=True)
    (repo / "src" / "usernet" / "__init__.py").write_text("")
    (repo / "src" / "usernet" / "net.py").write_text(f"WIDTH = {width}\nCUMSUM = {cumsum}\n" + NET)
    (repo / "README.md").write_text(f"user network\n{readme}\n")
    _git(repo, "add", "-A")
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-q", "-m", message)
    return _git(repo, "rev-parse", "HEAD")


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> dict[str, Path | str]:
    root = tmp_path_factory.mktemp("user-repo")
    _git(root, "init", "-q")
    commits = {
        "base": _commit(root, "base"),
        "identical": _commit(root, "docs only", readme="more words"),
        "wider": _commit(root, "wider body", width=64),
        "cumsum": _commit(root, "cumsum mid-graph", cumsum=True),
    }
    return {"root": root, **commits}


def _ci_args(repo, commit: str, out: Path, *extra: str) -> list[str]:
    _git(repo["root"], "checkout", "-q", commit)
    return [
        "ci",
        "--model",
        "usernet.net:build",
        "--repo",
        str(repo["root"]),
        "--import-root",
        "src",
        "--baseline-ref",
        repo["base"],
        *SIZE,
        *FAST,
        "--out",
        str(out),
        *extra,
    ]


def _ci(cli_run, repo, commit: str, out: Path, *extra: str):
    return cli_run(bench_main, *_ci_args(repo, commit, out, *extra))


@pytest.fixture(scope="module")
def identical_run(repo, tmp_path_factory) -> dict:
    """One `mvit-bench ci` of the docs-only commit against the base (TFLite, gated, with a history),
    run in-process once: one test reads its verdicts, another takes its results as an earlier run's."""
    folder = tmp_path_factory.mktemp("identical-run")
    args = _ci_args(repo, repo["identical"], folder / "report.md", "--target", "tflite", "--history", str(folder / "history.json"), "--gate")
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), pytest.raises(SystemExit) as exc:
        bench_main(args)
    return {"code": exc.value.code, "out": out.getvalue(), "err": err.getvalue(), "folder": folder}


def test_identical_commit_is_same_and_starts_a_history(identical_run):
    code, out, err, folder = identical_run["code"], identical_run["out"], identical_run["err"], identical_run["folder"]
    history = folder / "history.json"
    assert code == 0, err
    doc = json.loads((folder / "report.json").read_text())
    (row,) = doc["rows"]
    assert row["identical_artefacts"] and row["comparison"]["verdict"] == "SAME"
    assert row["base_ms"] > 0 and row["candidate_ms"] > 0  # timed all the same
    assert row["placement_changes"] == [] and row["base_placement"]["places"]["XNNPACK"]
    assert row["history"].startswith("UNKNOWN: insufficient data") and row["gating"] == "UNKNOWN"
    assert json.loads(history.read_text())["points"][0]["rows"] == {row["name"]: row["candidate_ms"]}
    md = (folder / "report.md").read_text()
    assert "none: every op runs where it ran in the baseline" in md and "```bash\nmvit-bench ci --model" in md
    assert (folder / "report.png").stat().st_size > 0 and md in out


def test_a_much_heavier_commit_is_a_regression_and_fails_the_gate(repo, tmp_path, cli_run):
    code, out, err = _ci(cli_run, repo, repo["wider"], tmp_path / "report.md", "--target", "onnx,tflite", "--gate", "--artefact-dir", str(tmp_path / "kept"))
    doc = json.loads((tmp_path / "report.json").read_text())
    assert [r["comparison"]["verdict"] for r in doc["rows"]] == ["REGRESSION", "REGRESSION"], out
    assert code == 1 and doc["regression"] and "REGRESSION: this check fails (--gate)" in out
    onnx = doc["rows"][0]
    assert onnx["runtime"] == "onnxruntime" and "CPUExecutionProvider" in onnx["candidate_placement"]["places"]
    # the same artefacts given as a pair, without --gate: reported, and the check passes
    kept = tmp_path / "kept"
    base, candidate = (next((kept / side / "tflite").glob("*.tflite")) for side in ("baseline", "candidate"))
    code, out, err = cli_run(bench_main, "ci", "--base-artefact", str(base), "--candidate-artefact", str(candidate), *FAST, "--out", str(tmp_path / "pair.md"))
    (row,) = json.loads((tmp_path / "pair.json").read_text())["rows"]
    assert code == 0 and row["comparison"]["verdict"] == "REGRESSION" and "pass --gate to fail" in out, err


def test_an_op_moved_out_of_xnnpack_is_a_placement_change(repo, tmp_path, cli_run):
    code, out, err = _ci(cli_run, repo, repo["cumsum"], tmp_path / "report.md", "--target", "tflite")
    assert code == 0, err
    (row,) = json.loads((tmp_path / "report.json").read_text())["rows"]
    changes = row["placement_changes"]
    assert "CUMSUM ops on interpreter: 0 -> 1" in changes and changes[-1] == "XNNPACK partitions: 1 -> 2", changes
    assert row["candidate_placement"]["places"]["interpreter"] == {"CUMSUM": 1}
    assert "#### Placement changes" in out and "CUMSUM ops on interpreter: 0 -> 1" in out


def test_the_baseline_results_of_an_earlier_run(repo, identical_run, tmp_path, cli_run):
    first = identical_run["folder"] / "report.md"  # the earlier run: the docs-only commit, timed against the base
    assert identical_run["code"] == 0, identical_run["err"]
    _git(repo["root"], "checkout", "-q", repo["base"])
    code, out, err = cli_run(
        bench_main,
        "ci",
        "--model",
        "usernet.net:build",
        "--repo",
        str(repo["root"]),
        "--import-root",
        "src",
        "--target",
        "tflite",
        "--baseline-results",
        str(first.with_suffix(".json")),
        *SIZE,
        *FAST,
        "--out",
        str(tmp_path / "second.md"),
    )
    assert code == 0, err
    (row,) = json.loads((tmp_path / "second.json").read_text())["rows"]
    (earlier,) = json.loads(first.with_suffix(".json").read_text())["candidate_results"]["results"]
    assert row["base_ms"] == pytest.approx(float(np.quantile(earlier["times_ms"], 0.10)))  # the file's own row
    assert row["comparison"]["paired"] is False and row["comparison"]["candidate_n"] == 30
    assert "unpaired, ratio of 10th percentiles" in out


@pytest.mark.parametrize(
    "args, message",
    [
        ([], "give a baseline"),
        (["--baseline-ref", "no-such-ref"], "is not a commit"),
        (["--baseline-ref", "--output=/tmp/x"], "is not a git ref"),
        (["--baseline-results", "missing.json"], "missing.json: no such file"),
        (["--baseline-ref", "HEAD", "--export-args", "--out elsewhere"], "--export-args may not contain --out"),
        (["--baseline-ref", "HEAD", "--target", "tensorrt"], "unknown --target 'tensorrt'"),
        (["--baseline-ref", "HEAD", "--export-args", "--mean '0.5"], "quote it as a shell would"),
        (["--baseline-ref", "HEAD", "--baseline-results", "x.json"], "exactly one baseline"),
    ],
)
def test_bad_input_is_one_error_line_and_exit_2(repo, tmp_path, cli_run, args, message):
    code, out, err = cli_run(bench_main, "ci", "--model", "usernet.net:build", "--repo", str(repo["root"]), "--out", str(tmp_path / "r.md"), *args)
    assert code == 2 and err.count("\n") == 1 and err.startswith("error: ") and message in err, err
    assert not list(tmp_path.iterdir())


def test_a_factory_that_does_not_import_is_mvit_exports_own_error(repo, tmp_path, cli_run):
    _git(repo["root"], "checkout", "-q", repo["base"])
    code, out, err = cli_run(
        bench_main,
        "ci",
        "--model",
        "usernet.nope:build",
        "--repo",
        str(repo["root"]),
        "--import-root",
        "src",
        "--target",
        "tflite",
        "--baseline-ref",
        repo["base"],
        *SIZE,
        "--out",
        str(tmp_path / "r.md"),
    )
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert code == 2 and len(lines) == 1 and "usernet.nope:build" in lines[0] and "Traceback" not in err, err
    assert not (tmp_path / "r.md").exists()


def test_hud_rule_needs_two_consecutive_violations_against_the_window():
    steady = [10.0, 10.2, 9.9, 10.1, 10.0]
    assert hud_verdict(steady + [12.5], 0.10)[0] is Verdict.UNKNOWN  # one point short of the rule
    assert hud_verdict(steady + [10.1, 12.5], 0.10)[0] is Verdict.SAME  # one slow point is not an alert
    verdict, why = hud_verdict(steady + [12.5, 12.4], 0.10)
    assert verdict is Verdict.REGRESSION and "window median 10.000" in why
    assert hud_verdict(steady + [8.5, 8.6], 0.10)[0] is Verdict.IMPROVEMENT
    assert len(steady) + 2 == WINDOW + CONSECUTIVE


def test_calibrate_ci_measures_the_user_path(repo, tmp_path, cli_run):
    _git(repo["root"], "checkout", "-q", repo["base"])
    code, out, err = cli_run(
        bench_main,
        "calibrate-ci",
        "--model",
        "usernet.net:build",
        "--repo",
        str(repo["root"]),
        "--import-root",
        "src",
        "--target",
        "tflite",
        *SIZE,
        "--trials",
        "1",
        "--out",
        str(tmp_path / "cal.json"),
    )
    assert code == 0, err
    doc = json.loads((tmp_path / "cal.json").read_text())
    assert {t["row"] for t in doc["trials"]} == {"usernet.net:build litert"}
    assert len(doc["trials"][0]["base_ms"]) == 60  # the CI step's own pairs
    assert "no slowed build" in doc["notes"][0]  # no Softmax to hang the branch on: injected rows give power
    assert "| usernet.net:build litert | identical x1.20 (injected) | 1 |" in out


WORKFLOW = Path(__file__).parent.parent / "docs" / "ci" / "mvit-latency.yml"
DOCS = Path(__file__).parent.parent / "docs" / "benchmarks.md"


def _options(command) -> dict[str, object]:
    return {opt: p for p in command.params for opt in (*p.opts, *p.secondary_opts)}


def _mvit_bench_ci_args(script: str) -> list[str]:
    import shlex

    line = next(chunk for chunk in script.replace("\\\n", " ").splitlines() if chunk.strip().split(" ")[0].endswith("mvit-bench") and " ci " in chunk)
    words = shlex.split(line.replace('"$BASE_SHA"', "BASE_SHA"))
    return words[words.index("ci") + 1 :]


def test_the_workflow_parses_and_names_real_options():
    import typer
    import yaml

    from mvit.benchmarks.cli import app
    from mvit.exporters.cli import export_app

    workflow = yaml.safe_load(WORKFLOW.read_text())
    steps = workflow["jobs"]["latency"]["steps"]
    assert steps[0]["uses"].startswith("actions/checkout@") and steps[0]["with"]["fetch-depth"] == 0
    (script,) = [s["run"] for s in steps if "mvit-bench ci" in s.get("run", "")]
    args = _mvit_bench_ci_args(script)
    ci_options = _options(typer.main.get_command(app).commands["ci"])  # type: ignore[attr-defined]
    given, words = {}, iter(args)
    for word in words:
        assert word in ci_options, f"{word} is not an option of mvit-bench ci"
        given[word] = True if ci_options[word].is_flag else next(words)
    assert {"--model", "--baseline-ref", "--gate", "--out"} <= set(given)
    export_options = _options(typer.main.get_command(export_app))
    for word in given["--export-args"].split():
        assert not word.startswith("--") or word in export_options, f"{word} is not an option of mvit-export"
    assert all(t in ("onnx", "tflite", "coreml") for t in given["--target"].split(","))
    # the walk-through in docs/benchmarks.md runs the same command on the same model
    walkthrough = DOCS.read_text().split("### Walk-through with a real model")[1].split("\n## ")[0]
    docs_args = _mvit_bench_ci_args(walkthrough)
    assert docs_args[: docs_args.index("--baseline-ref")] == args[: args.index("--baseline-ref")]


def test_coreml_compute_plan_changes_from_two_harness_runs(tmp_path, cli_run):
    golden = Path(__file__).parent / "data" / "harness_golden.json"
    doc = json.loads(golden.read_text())
    (moved,) = [r for r in doc["results"] if r["compute_units"] == "all"]
    plan = moved["compute_plan"]
    ane, cpu = plan["neural_engine_ops"], plan["cpu_ops"]
    plan.update(neural_engine_ops=ane - 6, cpu_ops=cpu + 6)  # six ops leave the Neural Engine; the total is kept
    candidate = tmp_path / "candidate.json"
    candidate.write_text(json.dumps(doc))
    code, out, err = cli_run(bench_main, "ci", "--base-harness", str(golden), "--candidate-harness", str(candidate), "--out", str(tmp_path / "r.md"), "--gate")
    assert code == 0, err
    report = json.loads((tmp_path / "r.json").read_text())
    changes = report["coreml_compute_plan_changes"]
    size = moved["input_size"][0]
    row = f"{moved['model']} {moved['config']} {size} {moved['precision']} coreml"
    said = [f"ops on Neural Engine: {ane} -> {ane - 6}", f"ops on CPU: {cpu} -> {cpu + 6}"]
    assert changes[f"{row} (all)"] == said
    assert changes[f"{row} (cpuOnly)"][0].startswith("unchanged")
    assert len(report["rows"]) == len(doc["results"]) and "REGRESSION" not in {r["gating"] for r in report["rows"]}
    assert f"**{row} (all)**: " + "; ".join(said) in out
    code, out, err = cli_run(bench_main, "ci", "--base-harness", str(golden), "--out", str(tmp_path / "x.md"))
    assert code == 2 and err.count("\n") == 1 and "--candidate-harness" in err, err


def test_history_rule_through_the_cli_and_a_damaged_history(tmp_path, cli_run):
    golden = Path(__file__).parent / "data" / "harness_golden.json"
    doc = json.loads(golden.read_text())
    slow = tmp_path / "slow.json"
    for r in doc["results"]:
        r["times_ms"] = [t * 1.5 for t in r["times_ms"]]
    slow.write_text(json.dumps(doc))
    history = tmp_path / "history.json"
    medians = {
        f"{r['model']} {r['config']} coreml ({r['compute_units']}) {r['precision']} {r['input_size'][0]}x{r['input_size'][1]}": r["stats"]["median_ms"]
        for r in json.loads(golden.read_text())["results"]
    }
    # five steady points on the main branch, then one slow commit, then this run (slow again)
    points = [{"label": f"c{i}", "rows": medians} for i in range(WINDOW)]
    points.append({"label": "slow-1", "rows": {k: v * 1.5 for k, v in medians.items()}})
    history.write_text(json.dumps({"kind": "mvit-bench-ci-history", "points": points}))
    code, out, err = cli_run(
        bench_main,
        "ci",
        "--base-harness",
        str(golden),
        "--candidate-harness",
        str(slow),
        "--history",
        str(history),
        "--history-label",
        "slow-2",
        "--gate",
        "--out",
        str(tmp_path / "r.md"),
    )
    report = json.loads((tmp_path / "r.json").read_text())
    assert code == 1 and {r["gating"] for r in report["rows"]} == {"REGRESSION"}, out
    assert all(r["history"].startswith("REGRESSION: last 2 points") for r in report["rows"])
    assert [p["label"] for p in json.loads(history.read_text())["points"]][-2:] == ["slow-1", "slow-2"]
    history.write_text("[1, 2")
    code, out, err = cli_run(
        bench_main, "ci", "--base-harness", str(golden), "--candidate-harness", str(slow), "--history", str(history), "--out", str(tmp_path / "s.md")
    )
    assert code == 2 and err.count("\n") == 1 and "not a mvit-bench ci history file" in err, err
    assert not (tmp_path / "s.md").exists()


def test_a_checkpoint_in_the_repo_is_read_from_each_sides_tree(tmp_path, cli_run, monkeypatch):
    from mvit.models import create_model
    from mvit.models.checkpoints.load import save_checkpoint

    root = tmp_path / "weights-repo"
    (root / "weights").mkdir(parents=True)
    _git(root, "init", "-q")
    for seed in (0, 1):  # the pull request retrains: same network, new weights
        torch.manual_seed(seed)
        save_checkpoint(create_model("mobilevit_xxs", "A"), root / "weights" / "xxs.safetensors", "mobilevit_xxs")
        _git(root, "add", "-A")
        _git(root, "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-q", "-m", f"weights {seed}")
    kept = tmp_path / "kept"
    args = ["--model", "mobilevit_xxs", "--checkpoint", "weights/xxs.safetensors", "--target", "onnx", "--export-args", "--image-size 64 --precision fp32"]
    code, out, err = cli_run(
        bench_main, "ci", *args, "--repo", str(root), "--baseline-ref", "HEAD~1", *FAST, "--artefact-dir", str(kept), "--out", str(tmp_path / "r.md")
    )
    assert code == 0, err
    (row,) = json.loads((tmp_path / "r.json").read_text())["rows"]
    assert not row["identical_artefacts"] and row["placement_changes"] == []  # new weights, same graph
    # the baseline is what mvit-export makes of the first commit's checkpoint, byte for byte
    first = tmp_path / "first"
    (first / "weights").mkdir(parents=True)
    (first / "weights" / "xxs.safetensors").write_bytes(
        subprocess.run(["git", "-C", str(root), "show", "HEAD~1:weights/xxs.safetensors"], check=True, capture_output=True).stdout
    )
    monkeypatch.chdir(first)  # the checkpoint path is the repository's own, relative, as the CI step passes it
    code, _, err = cli_run(
        export_main,
        "--target",
        "onnx",
        "--model",
        "mobilevit_xxs",
        "--checkpoint",
        "weights/xxs.safetensors",
        "--image-size",
        "64",
        "--precision",
        "fp32",
        "--no-verify",
        "--out",
        str(first / "out"),
    )
    assert code == 0, err
    (direct,) = (first / "out").glob("*.onnx")
    (baseline,) = (kept / "baseline" / "onnx").glob("*.onnx")
    (candidate,) = (kept / "candidate" / "onnx").glob("*.onnx")
    assert baseline.read_bytes() == direct.read_bytes() != candidate.read_bytes()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupted_while_exporting_leaves_no_report(repo, tmp_path, sig):
    _git(repo["root"], "checkout", "-q", repo["wider"])
    proc = subprocess.Popen(
        [
            str(Path(sys.executable).with_name("mvit-bench")),
            "ci",
            "--model",
            "usernet.net:build",
            "--repo",
            str(repo["root"]),
            "--import-root",
            "src",
            "--target",
            "tflite",
            "--baseline-ref",
            repo["base"],
            *SIZE,
            "--out",
            str(tmp_path / "r.md"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None and "exporting" in proc.stderr.readline()
    stop_and_check_interrupted(proc, sig)
    assert not list(tmp_path.iterdir())
