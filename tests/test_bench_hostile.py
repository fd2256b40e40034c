"""`mvit-bench` against hostile input and faults (issue 10), through the real CLI.

Each row of CASES is one command a careless user or an attacker could type, run in a fresh
folder after `setup` wrote its inputs. Every case asserts the exit code, that stderr is exactly
one `error: ` line with the helpful words (or empty, for exits 0 and 1), no traceback, and what
is and is not on disk afterwards, with final files at the mode any user file gets.
`describe_cases()` turns the table into rows for docs/reliability.md.
"""

from __future__ import annotations

import errno
import json
import os
import shlex
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import pytest
from bench_docs import document, lognormal_times, result
from cli_utils import own_lines_only, stop_and_check_interrupted

BENCH = Path(sys.executable).with_name("mvit-bench")

TRACEBACKS = "Tracebacks in mvit-bench: compare with NaN, Infinity or 0.0 latencies; report on deeply nested JSON"
CORRUPT_AB = "Small things: ab on a corrupt file says 'pass --image-size'"
MODES = "Small things: reports and bench outputs are written 0600 while artefacts are 0644"
ONE_PATH = "What to build 4: one error path (one line, error: prefix, documented exit codes, no third-party lines)"
RESOURCES = "Resource abuse: validation before allocation"
FAULTS = "Interrupts and full disks"
SILENT = "Silent accepts: --image-size 0"


# --- inputs the cases write -----------------------------------------------------------------------


def _doc(mutate: Callable[[dict], None] | None = None, median: float = 10.0, seed: int = 1) -> dict:
    doc = document([result(lognormal_times(median, 30, seed))])
    if mutate:
        mutate(doc)
    return doc


def _times(value):
    def mutate(doc):
        doc["results"][0]["times_ms"][3] = value

    return mutate


def _write(name: str, doc=None, text: str | None = None, data: bytes | None = None):
    def setup(folder: Path) -> None:
        path = folder / name
        if data is not None:
            path.write_bytes(data)
        else:
            path.write_text(text if text is not None else json.dumps(doc))

    return setup


def _all(*setups):
    def setup(folder: Path) -> None:
        for s in setups:
            s(folder)

    return setup


BASE = _write("base.json", _doc())
SAME = _write("same.json", _doc(seed=2))


def _huge_sparse(folder: Path) -> None:
    with open(folder / "huge.json", "wb") as fh:  # sparse: 65 MB on paper, nothing on disk
        fh.truncate(65 * 2**20)


def _fifo(folder: Path) -> None:
    os.mkfifo(folder / "pipe.json")


def _folder(name: str):
    return lambda folder: (folder / name).mkdir()


def _deep(depth: int) -> str:
    return "[" * depth + "]" * depth


def _deep_in_machine(doc):
    node: dict = {}
    doc["machine"]["libraries"] = {"x": node}
    for _ in range(20):
        node["x"] = {}
        node = node["x"]


def _all_zero_baseline(doc):
    row = result([0.0] * 20, model="mobilenet_v2", config="-")
    doc["results"].append(row)


def _no_rows(doc):
    doc["results"] = []


def _many_rows(doc):
    doc["results"] = [result([10.0] * 2, threads=i + 1) for i in range(1001)]


def _huge_times(doc):
    doc["results"][0]["times_ms"] = [10.0] * 100_001
    doc["results"][0]["runs"] = 100_001


def _drop_stats(doc):
    del doc["results"][0]["stats"]


def _newline_key(doc):
    doc["machine"]["bad\nkey\n\nsecond line"] = "x"


# --- the table --------------------------------------------------------------------------------------


class Case(NamedTuple):
    id: str
    bullet: str  # the issue-10 bullet this case covers
    command: str  # arguments to mvit-bench, run in the case's folder
    setup: Callable[[Path], None]
    exit: int
    words: tuple[str, ...]  # in the one stderr line (exit 2/130), else on stdout
    absent: tuple[str, ...] = ()  # must not exist afterwards
    written: tuple[str, ...] = ()  # must exist afterwards with mode 0666 & ~umask
    fault: str | None = None  # "enospc": the disk fills while the output is written
    subprocess: bool = False  # run the installed entry point (sees C++ loggers on fd 2)


def _nothing(folder: Path) -> None:
    pass


CASES: list[Case] = [
    Case(
        "compare-nan",
        TRACEBACKS,
        "compare base.json nan.json",
        _all(BASE, _write("nan.json", _doc(_times(float("nan"))))),
        2,
        ("nan.json", "results[0].times_ms[3]", "finite"),
    ),
    Case(
        "compare-infinity",
        TRACEBACKS,
        "compare inf.json base.json",
        _all(BASE, _write("inf.json", text=json.dumps(_doc()).replace('"load_ms": 12.5', '"load_ms": Infinity'))),
        2,
        ("inf.json", "results[0].load_ms", "finite"),
    ),
    Case(
        "compare-minus-infinity-stat",
        TRACEBACKS,
        "compare base.json minf.json",
        _all(BASE, _write("minf.json", text=json.dumps(_doc()).replace('"median_ms": ', '"median_ms": -Infinity, "x": '))),
        2,
        ("minf.json", "median_ms", "finite"),
    ),
    Case(
        "compare-zero-latency",
        TRACEBACKS,
        "compare base.json zero.json --out cmp.md",
        _all(BASE, _write("zero.json", _doc(_times(0.0)))),
        0,
        ("UNKNOWN", "0 ms"),
        written=("cmp.md",),
    ),
    Case(
        "compare-negative-latency",
        TRACEBACKS,
        "compare base.json neg.json",
        _all(BASE, _write("neg.json", _doc(_times(-1.0)))),
        2,
        ("neg.json", "results[0].times_ms[3]", "minimum"),
    ),
    Case(
        "compare-string-latency",
        TRACEBACKS,
        "compare base.json str.json",
        _all(BASE, _write("str.json", _doc(_times("12.5")))),
        2,
        ("str.json", "times_ms[3]", "not of type 'number'"),
    ),
    Case(
        "compare-missing-stats",
        TRACEBACKS,
        "compare base.json nostats.json",
        _all(BASE, _write("nostats.json", _doc(_drop_stats))),
        2,
        ("nostats.json", "'stats' is a required property"),
    ),
    Case(
        "compare-newline-in-key",
        ONE_PATH,
        "compare base.json key.json",
        _all(BASE, _write("key.json", _doc(_newline_key))),
        2,
        ("key.json", "machine", "not allowed"),
    ),
    Case(
        "compare-huge-array",
        RESOURCES,
        "compare base.json long.json",
        _all(BASE, _write("long.json", _doc(_huge_times))),
        2,
        ("long.json", "100001 entries", "split"),
    ),
    Case(
        "compare-too-many-rows",
        RESOURCES,
        "compare base.json rows.json",
        _all(BASE, _write("rows.json", _doc(_many_rows))),
        2,
        ("rows.json", "1001 results rows"),
    ),
    Case("compare-huge-file", RESOURCES, "compare base.json huge.json", _all(BASE, _huge_sparse), 2, ("huge.json", "65 MB", "more than a results file can be")),
    Case("compare-fifo", RESOURCES, "compare base.json pipe.json", _all(BASE, _fifo), 2, ("pipe.json", "not a regular file")),
    Case("compare-folder", ONE_PATH, "compare base.json dir.json", _all(BASE, _folder("dir.json")), 2, ("dir.json", "not a regular file")),
    Case("compare-not-json", ONE_PATH, "compare base.json broken.json", _all(BASE, _write("broken.json", text="{not json")), 2, ("broken.json", "not JSON")),
    Case("compare-not-utf8", ONE_PATH, "compare base.json bin.json", _all(BASE, _write("bin.json", data=b"\x80\x81{}")), 2, ("bin.json", "not UTF-8")),
    Case("compare-infinite-threshold", ONE_PATH, "compare base.json same.json --threshold inf", _all(BASE, SAME), 2, ("--threshold", "finite")),
    Case("compare-out-is-folder", ONE_PATH, "compare base.json same.json --out outdir", _all(BASE, SAME, _folder("outdir")), 2, ("outdir", "is a folder")),
    Case("compare-regression-exits-1", ONE_PATH, "compare base.json slow.json", _all(BASE, _write("slow.json", _doc(median=15.0, seed=3))), 1, ("REGRESSION",)),
    Case(
        "compare-disk-full",
        FAULTS,
        "compare base.json same.json --out cmp.md",
        _all(BASE, SAME),
        2,
        ("No space left on device",),
        absent=("cmp.md",),
        fault="enospc",
    ),
    Case(
        "report-deep-json",
        TRACEBACKS,
        "report deep.json",
        _write("deep.json", text=_deep(100_000)),
        2,
        ("deep.json", "nested too deeply"),
        absent=("deep.md", "deep.png"),
    ),
    Case(
        "report-deep-inside-schema",
        TRACEBACKS,
        "report deep2.json",
        _write("deep2.json", _doc(_deep_in_machine)),
        2,
        ("deep2.json", "nested more than 8 levels", "machine.libraries"),
        absent=("deep2.md", "deep2.png"),
    ),
    Case("report-modes", MODES, "report good.json", _write("good.json", _doc()), 0, ("wrote good.md and good.png",), written=("good.md", "good.png")),
    Case(
        "report-zero-latency-baseline",
        TRACEBACKS,
        "report zero.json",
        _write("zero.json", _doc(_all_zero_baseline)),
        0,
        ("| mobilenet_v2 |",),
        written=("zero.md", "zero.png"),
    ),
    Case(
        "report-no-rows",
        ONE_PATH,
        "report empty.json",
        _write("empty.json", _doc(_no_rows)),
        2,
        ("empty.json", "no results rows"),
        absent=("empty.md", "empty.png"),
    ),
    Case(
        "report-would-overwrite-input",
        ONE_PATH,
        "report res.md",
        _write("res.md", _doc()),
        2,
        ("res.md", "would overwrite the results file"),
        absent=("res.png",),
    ),
    Case(
        "report-disk-full",
        FAULTS,
        "report good.json",
        _write("good.json", _doc()),
        2,
        ("No space left on device",),
        absent=("good.md", "good.png"),
        fault="enospc",
    ),
    Case("ab-corrupt-onnx", CORRUPT_AB, "ab bad.onnx bad.onnx", _write("bad.onnx", text="not a model"), 2, ("bad.onnx", "not a readable .onnx artefact")),
    Case("ab-empty-onnx", CORRUPT_AB, "ab empty.onnx empty.onnx", _write("empty.onnx", text=""), 2, ("empty.onnx", "not a readable .onnx artefact")),
    Case("ab-missing", ONE_PATH, "ab nope.onnx nope.onnx", _nothing, 2, ("nope.onnx", "no such artefact")),
    Case("ab-unknown-suffix", ONE_PATH, "ab model.bin model.bin", _write("model.bin", text="x"), 2, ("model.bin", "unknown artefact type")),
    Case(
        "run-image-size-0",
        SILENT,
        "run -m mobilevit_xxs -r pytorch --image-size 0 --out r.json",
        _nothing,
        2,
        ("--image-size", "greater than or equal to 32"),
        absent=("r.json",),
    ),
    Case("run-unknown-model", ONE_PATH, "run -m mobilevit_xxxl -r pytorch --out r.json", _nothing, 2, ("mobilevit_xxxl",), absent=("r.json",)),
    Case("run-unknown-runtime", ONE_PATH, "run -r tensorrt --out r.json", _nothing, 2, ("tensorrt", "choose from"), absent=("r.json",)),
    Case("run-out-is-folder", ONE_PATH, "run -r pytorch --out outdir", _folder("outdir"), 2, ("outdir", "is a folder")),
    Case("run-out-would-be-overwritten", ONE_PATH, "run -r pytorch --out r.md", _nothing, 2, ("r.md", "would overwrite the results file"), absent=("r.md",)),
    Case("no-command", ONE_PATH, "", _nothing, 2, ("Missing command", "--help")),
    Case("unknown-option", ONE_PATH, "compare --frobnicate", _nothing, 2, ("--frobnicate",)),
    Case(
        "subprocess-compare-nan",
        TRACEBACKS,
        "compare base.json nan.json",
        _all(BASE, _write("nan.json", _doc(_times(float("nan"))))),
        2,
        ("nan.json", "finite"),
        subprocess=True,
    ),
    Case(
        "subprocess-report-deep-json",
        TRACEBACKS,
        "report deep.json",
        _write("deep.json", text=_deep(100_000)),
        2,
        ("deep.json", "nested too deeply"),
        absent=("deep.md",),
        subprocess=True,
    ),
    Case(
        "subprocess-ab-corrupt-tflite",
        CORRUPT_AB,
        "ab bad.tflite bad.tflite",
        _write("bad.tflite", text="not a model"),
        2,
        ("bad.tflite", "not a readable .tflite artefact"),
        subprocess=True,
    ),
]

SIGINT_COMMAND = "run -m mobilevit_xxs -c A -r onnxruntime --image-size 64 --runs 1000000 --warmups 0 --threads 1 --out res.json --artefact-dir art"


def describe_cases() -> list[dict]:
    """One row per case for docs/reliability.md (the SIGINT case included)."""
    rows = [{"id": c.id, "command": f"mvit-bench {c.command}".strip(), "exit": c.exit, "bullet": c.bullet} for c in CASES]
    rows.append({"id": "subprocess-sigint-during-run", "command": f"mvit-bench {SIGINT_COMMAND}  (then Ctrl-C)", "exit": 130, "bullet": FAULTS})
    return rows


# --- running a case --------------------------------------------------------------------------------


def _user_mode() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def _in_process(argv: list[str], capsys) -> tuple[int, str, str]:
    from mvit.benchmarks.cli import main

    with pytest.raises(SystemExit) as info:
        main(argv)
    out = capsys.readouterr()
    return info.value.code, out.out, out.err


def _as_subprocess(argv: list[str], folder: Path) -> tuple[int, str, str]:
    env = {k: v for k, v in os.environ.items() if k != "MVIT_DEBUG"}
    done = subprocess.run([str(BENCH), *argv], cwd=folder, capture_output=True, text=True, timeout=120, env=env)
    return done.returncode, done.stdout, done.stderr


def _disk_full(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_case(case: Case, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MVIT_DEBUG", raising=False)
    old_mask = os.umask(0o022)  # mkstemp's 0600 must not survive to the final file
    try:
        case.setup(tmp_path)
        if case.fault == "enospc":
            from mvit.benchmarks import files

            monkeypatch.setattr(files.os, "fsync", _disk_full)
        argv = shlex.split(case.command)
        code, out, err = _as_subprocess(argv, tmp_path) if case.subprocess else _in_process(argv, capsys)
        wanted_mode = _user_mode()
    finally:
        os.umask(old_mask)

    assert code == case.exit, (out, err)
    assert "Traceback" not in out + err
    if case.exit in (0, 1):
        assert own_lines_only(err), err  # no third-party log lines either
        shown = out
    else:
        lines = err.splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), err
        shown = lines[0]
    for word in case.words:
        assert word in shown, (word, shown)
    if case.exit not in (0, 1):
        assert "--image-size" not in shown or case.id.startswith("run-image-size")  # the old ab message
    for name in case.absent:
        assert not (tmp_path / name).exists(), name
    for name in case.written:
        mode = stat.S_IMODE((tmp_path / name).stat().st_mode)
        assert mode == wanted_mode == 0o644, (name, oct(mode))
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]
    assert not leftovers, leftovers  # no temp file survives, whatever happened


def test_the_table_documents_every_case():
    rows = describe_cases()
    assert len(rows) >= 20 and len({r["id"] for r in rows}) == len(rows)
    assert all(r["command"].startswith("mvit-bench") and r["bullet"] and r["exit"] in (0, 1, 2, 130) for r in rows)
    assert sum(c.subprocess for c in CASES) >= 3


def test_schema_bounds_agree_with_the_guards():
    from mvit.benchmarks.schema import MAX_ITEMS, results_schema

    times = results_schema()["$defs"]["result"]["properties"]["times_ms"]
    assert times["maxItems"] == MAX_ITEMS


def test_sigint_during_run_exits_130_in_one_line_and_writes_no_results(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "MVIT_DEBUG"}
    # A shell that backgrounds the test runner may pass SIGINT on as ignored; Python only turns
    # it into KeyboardInterrupt when it starts with the default disposition.
    proc = subprocess.Popen(
        [str(BENCH), *shlex.split(SIGINT_COMMAND)],
        cwd=tmp_path,
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        deadline = time.monotonic() + 180
        art = tmp_path / "art" / "onnxruntime"

        def exported() -> bool:
            return art.is_dir() and any(not p.name.startswith(".") for p in art.glob("*.onnx"))

        while not exported():
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the export never finished"
            time.sleep(0.2)
        time.sleep(1.5)  # past loading, into the timed runs
        assert proc.poll() is None
    finally:
        stop_and_check_interrupted(proc, signal.SIGINT)
    assert not (tmp_path / "res.json").exists() and not (tmp_path / "res.md").exists()
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]


# --- guards below the CLI ---------------------------------------------------------------------------


def test_find_artefact_skips_leftover_temp_files(tmp_path, monkeypatch):
    from mvit.benchmarks import runtimes
    from mvit.exporters.targets import get_target

    target = get_target("onnx")
    matching = {"model": "mobilevit_xxs", "config": "A", "image_size": "64", "precision": "fp32"}
    monkeypatch.setattr(type(target), "read_metadata", lambda self, path: dict(matching))
    model = runtimes.bench_model("mobilevit_xxs", "A", 64)
    (tmp_path / ".tmp-mobilevit_xxs_A_64_fp32.onnx").write_bytes(b"half")
    assert runtimes.find_artefact(model, "onnx", tmp_path, "fp32") is None
    (tmp_path / "mobilevit_xxs_A_64_fp32.onnx").write_bytes(b"whole")
    assert runtimes.find_artefact(model, "onnx", tmp_path, "fp32").name == "mobilevit_xxs_A_64_fp32.onnx"


@pytest.mark.parametrize("fault", [OSError(errno.ENOSPC, "No space left on device"), KeyboardInterrupt()], ids=["disk-full", "interrupt"])
def test_comparison_model_export_leaves_nothing_on_failure(tmp_path, monkeypatch, fault):
    import torch

    from mvit.benchmarks import runtimes
    from mvit.exporters.targets import get_target

    monkeypatch.setattr(runtimes, "build_cvt13", lambda: torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3)).eval())
    target = get_target("onnx")

    def half_written(self, request, path):
        Path(path).write_bytes(b"half an artefact")
        raise fault

    monkeypatch.setattr(type(target), "export", half_written)
    model = runtimes.bench_model("cvt_13", "-", 64)
    with pytest.raises(type(fault)):
        runtimes._export_comparison_model(model, "onnx", tmp_path, "fp32")
    assert list(tmp_path.iterdir()) == []
