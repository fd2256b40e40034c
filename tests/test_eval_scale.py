"""mvit-eval at dataset scale, through its CLI: the same figures (values and bootstrap intervals)
with 1 worker, local worker processes and a Ray cluster this test starts; a run stopped by
Ctrl-C resumes from its journal and ends with the figures of an uninterrupted run.

The dataset is written at test time by tests/make_digit_folders.py (the 10,000-image run is the
benchmark in docs/evaluation.md; this test keeps to a few hundred images).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import trained_fixtures as tf
from cli_utils import stop_and_check_interrupted
from make_digit_folders import digit_folders
from PIL import Image

from mvit.evaluation import cli as eval_cli
from mvit.evaluation.scale import CHUNK_IMAGES

pytestmark = pytest.mark.slow  # an export, worker processes and a Ray cluster: a few minutes

EVAL = Path(sys.executable).with_name("mvit-eval")
IMAGES = 8 * CHUNK_IMAGES + 17  # a last chunk shorter than the others


@pytest.fixture(scope="module")
def setup(tmp_path_factory, shared_export) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("scale")
    onnx = shared_export(None, "onnx", checkpoint=tf.CLASSIFIER.checkpoint, precision="fp32", image_size=tf.CLASSIFIER.image_size, verify=False).path
    return {"root": root, "data": digit_folders(root / "digits", IMAGES), "onnx": onnx}


def _args(setup, out: Path, *more: str) -> list[str]:
    return [str(setup["onnx"]), "--checkpoint", str(tf.CLASSIFIER.checkpoint), "--data", str(setup["data"]), "--out", str(out), "--bootstrap", "200", *more]


@pytest.fixture(scope="module")
def one_worker(setup) -> dict:
    """The reference: every image scored in this process."""
    out = setup["root"] / "one.json"
    with pytest.raises(SystemExit) as exc:
        eval_cli.main(_args(setup, out, "--workers", "1"))
    assert exc.value.code == 0
    return json.loads(out.read_text())


def _figures(doc: dict) -> list:
    return [(m["name"], m["metrics"]) for m in doc["models"]]


def test_one_worker_scores_every_image_once(one_worker, setup):
    run = one_worker["run"]
    assert one_worker["dataset"]["images"] == IMAGES
    assert run["backend"] == "local" and run["workers"] == 1 and run["chunks"] == 9
    assert run["scored_images"] == IMAGES and run["resumed_images"] == 0
    assert run["peak_rss_mb"]["main"] > 50
    # The trained classifier on its own kind of scenes: a figure that means something, with an interval.
    top1 = one_worker["models"][0]["metrics"]["top1"]
    assert top1["ci"][0] < top1["value"] < top1["ci"][1]
    assert not Path(run["journal"]).exists()  # the finished run leaves nothing to resume


def test_local_workers_give_identical_figures(one_worker, setup, cli_run):
    out = setup["root"] / "two.json"
    code, stdout, err = cli_run(eval_cli.main, *_args(setup, out, "--workers", "2"))
    assert code == 0, err
    doc = json.loads(out.read_text())
    assert doc["run"]["backend"] == "local" and doc["run"]["workers"] == 2
    assert doc["run"]["peak_rss_mb"]["largest_worker"] > 50
    assert _figures(doc) == _figures(one_worker)  # values and intervals, bit for bit
    assert "on 2 local worker processes, peak RSS" in stdout


@pytest.fixture(scope="module")
def ray_address():
    """A Ray cluster on this machine for the module's tests; mvit-eval joins it from a subprocess."""
    import ray  # the ray extra, which .[test] installs

    # address="local": a cluster of its own, never one another process on this machine left running
    context = ray.init(address="local", num_cpus=2, object_store_memory=200 * 2**20, include_dashboard=False, logging_level="ERROR")
    try:
        yield context.address_info["gcs_address"]
    finally:
        ray.shutdown()


def _env(**more: str) -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in ("MVIT_DEBUG", "RAY_ADDRESS")} | more


def test_ray_cluster_gives_identical_figures(one_worker, setup, ray_address):
    out = setup["root"] / "ray.json"
    # As in a terminal: the progress bar is drawn, with its ETA.
    proc = subprocess.run([str(EVAL), *_args(setup, out, "--ray", ray_address)], env=_env(TTY_COMPATIBLE="1"), text=True, capture_output=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(out.read_text())
    assert doc["run"]["backend"] == "ray" and doc["run"]["ray_address"] == ray_address
    assert _figures(doc) == _figures(one_worker)
    assert f"on the Ray cluster at {ray_address}" in proc.stdout
    assert "scoring 2 model(s)" in proc.stderr and "ETA" in proc.stderr and f"/{IMAGES}" in proc.stderr


def test_an_image_a_worker_cannot_decode_is_one_line(setup, tmp_path, ray_address, cli_run):
    """The header check passes a truncated JPEG; the worker that decodes it names the file, on any backend."""
    data = tmp_path / "digits"
    for label in tf.LABELS[:2]:
        (data / label).mkdir(parents=True)
        for p in sorted((setup["data"] / label).glob("*.png"))[:3]:
            (data / label / p.name).write_bytes(p.read_bytes())
    bad = data / "1" / "truncated.jpg"  # a PNG's EXIF lookup decodes it whole; a JPEG's header check does not
    Image.open(next((data / "1").glob("*.png"))).save(bad, quality=95)
    bad.write_bytes(bad.read_bytes()[: bad.stat().st_size // 2])
    args = [str(setup["onnx"]), "--data", str(data), "--out", str(tmp_path / "r.json")]
    code, _, err = cli_run(eval_cli.main, *args, "--workers", "2")
    assert code == 2 and len(err.splitlines()) == 1, err
    assert err.startswith(f"error: {bad}: unreadable image (OSError: image file is truncated"), err
    proc = subprocess.run([str(EVAL), *args, "--ray", ray_address], env=_env(), text=True, capture_output=True, timeout=300)
    assert proc.returncode == 2 and proc.stderr.splitlines() == err.splitlines(), proc.stderr
    assert not (tmp_path / "r.json").exists()


def _ctrl_c_after(setup, out: Path, chunks: int, *flags: str) -> None:
    """Run mvit-eval, send SIGINT once `chunks` chunks are journalled, check the one-line exit 130."""
    journal = out.with_name(out.name + ".journal")
    proc = subprocess.Popen(
        [str(EVAL), *_args(setup, out, *flags)],
        env=_env(),
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.monotonic() + 300
    while len(list(journal.glob("chunk-*.npz"))) < chunks and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, "finished before it could be interrupted: " + proc.stderr.read()
    stop_and_check_interrupted(proc, signal.SIGINT)
    assert not out.exists()


def test_ctrl_c_then_rerun_resumes_to_the_uninterrupted_figures(one_worker, setup):
    out = setup["root"] / "resumed.json"
    journal = out.with_name(out.name + ".journal")
    env = _env()
    _ctrl_c_after(setup, out, 3, "--workers", "2")
    kept = len(list(journal.glob("chunk-*.npz")))
    assert 3 <= kept < 9 and not list(journal.glob(".*"))  # whole chunks only, nothing half-written

    rerun = subprocess.run([str(EVAL), *_args(setup, out, "--workers", "2")], env=env, text=True, capture_output=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr
    assert f"resuming from {journal}" in rerun.stderr
    doc = json.loads(out.read_text())
    run = doc["run"]
    assert run["resumed_images"] == kept * CHUNK_IMAGES or (kept == 9 and run["resumed_images"] == IMAGES)
    assert run["resumed_images"] + run["scored_images"] == IMAGES  # none skipped, none twice
    assert _figures(doc) == _figures(one_worker)
    assert not journal.exists()


def test_a_journal_of_other_inputs_is_set_aside(one_worker, setup, cli_run):
    out = setup["root"] / "other.json"
    journal = out.with_name(out.name + ".journal")
    journal.mkdir()
    (journal / "key.json").write_text(json.dumps({"format": 1, "key": "made for another dataset"}))
    (journal / "chunk-000000.npz").write_bytes(b"not scored here")
    code, _, err = cli_run(eval_cli.main, *_args(setup, out, "--workers", "1"))
    assert code == 0, err
    assert "made for other images, models or preprocessing; starting afresh" in err
    doc = json.loads(out.read_text())
    assert doc["run"]["resumed_images"] == 0 and _figures(doc) == _figures(one_worker)


@pytest.mark.parametrize(
    "args, message",
    [
        (("--workers", "2", "--ray", "local"), "error: --workers and --ray exclude each other: Ray decides where its tasks run"),
        # Port 1 refuses at once; Ray itself would retry for minutes with C++ log lines on stderr.
        (
            ("--ray", "127.0.0.1:1"),
            "error: --ray 127.0.0.1:1: no Ray cluster answers there (Connection refused); "
            "give the address `ray start --head` printed, or `local` to start one here",
        ),
    ],
)
def test_bad_worker_options_are_one_line(setup, tmp_path, cli_run, args, message, monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    code, _, err = cli_run(eval_cli.main, *_args(setup, tmp_path / "r.json", *args))
    assert code == 2 and err.splitlines() == [message]
    assert not (tmp_path / "r.json").exists() and not (tmp_path / "r.json.journal").exists()


def test_explicit_workers_win_over_ray_address_in_the_environment(monkeypatch):
    from mvit.work import Workers

    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:1")  # nobody answers: choosing it would fail
    assert Workers.choose(2, None) == Workers(count=2)


def test_ctrl_c_on_ray_then_rerun_on_local_workers(one_worker, setup, ray_address):
    """Ray's core installs its own SIGINT/SIGTERM handlers; Ctrl-C must still be the one line and
    exit 130, and the journal it leaves is resumed by a run on another backend."""
    out = setup["root"] / "ray-resumed.json"
    journal = out.with_name(out.name + ".journal")
    _ctrl_c_after(setup, out, 2, "--ray", ray_address)
    assert len(list(journal.glob("chunk-*.npz"))) >= 2

    rerun = subprocess.run([str(EVAL), *_args(setup, out, "--workers", "2")], env=_env(), text=True, capture_output=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr
    doc = json.loads(out.read_text())
    assert doc["run"]["resumed_images"] >= 2 * CHUNK_IMAGES
    assert doc["run"]["resumed_images"] + doc["run"]["scored_images"] == IMAGES
    assert _figures(doc) == _figures(one_worker)
