"""`mvit-export` and `mvit-verify` against hostile input and faults (issue 10).

Each row of CASES is one command a careless user or an attacker could type, run in a fresh
folder after `setup` wrote its inputs there (copies of artefacts built once per module). Every
case asserts the exit code, that stderr is exactly one `error: ` line with the helpful words
(for exits 2 and 130; `note:` lines only, for exits 0 and 1), no traceback, and what is and is
not on disk afterwards: no code ran (markers absent), planted symlink targets untouched, no
artefact without its report, no staging folder left, final files at the mode any user file gets.
Signals, concurrent exports, log noise and memory are real subprocesses, below the table.
GUARDS says which test fails when each guard is removed; `describe_cases()` / `describe_guards()`
feed docs/reliability.md (tests/make_reliability_doc.py).
"""

from __future__ import annotations

import errno
import json
import os
import shlex
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import pytest
from cli_utils import own_lines_only, stop_and_check_interrupted

# Conversion-heavy: runs in CI; `pytest -m "not slow"` skips it for a quick check.
pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent
MODEL = "mobilevit_xxs"
STEM = f"{MODEL}_A_64_fp32"
ONNX = f"{STEM}.onnx"
EXPORT_ONNX = f"--model {MODEL} --image-size 64 --target onnx --precision fp32 --out out"
STATEMENT_NAME = 'open("pwned","w")#.onnx'  # timeit runs its argv as Python: this name is a statement

CODE = "Code execution: mvit-verify imports and calls whatever pkg.module:factory an artefact's metadata names"
SYMLINK = "Symlink overwrite: the temp name is predictable and followed"
COREML = "Corrupt CoreML passes: mvit-verify on a damaged .mlpackage exits 0"
ARTEFACTS = "What to build 5: artefacts (damaged, tampered or foreign ONNX / TFLite files and metadata)"
SILENT = "Silent accepts: --image-size 0, --no-nms on a classifier, id2label gaps, --config B vs A, config.json values"
PICKLE = "Small things: a pickle error points users at weights_only=False (and pickles must never run code)"
FAULTS = "Interrupts and full disks"
RESOURCES = "Resource abuse: validation before allocation, an upper bound on image size"
MODES = "Small things: reports written 0600 while artefacts are 0644 (files inside .mlpackage too)"
TARGET_ALL = "Small things: with --target all one bad input prints its error 3 times and results come in reverse order"
NOISE = "Small things: TFLite paths print absl and oneDNN lines before the error: line"
CONCURRENT = "What to build 5: concurrent exports"
ONE_PATH = "What to build 4: one error path (one line, error: prefix, documented exit codes, no third-party lines)"


# --- inputs built once per module ------------------------------------------------------------------


@dataclass
class Inputs:
    onnx: Path
    coreml: Path
    coreml_umask: int
    hf: Path  # a Hugging Face classification folder (patch 2: config A)
    mvit_a: Path  # an mvit .safetensors recording config A
    tflite_run: subprocess.Popen
    tflite_dir: Path
    _tflite_done: tuple[int, str, str] | None = None

    def tflite_export(self) -> tuple[int, str, str]:
        """The TFLite export runs as a real `mvit-export` beside the other cases; its stderr is evidence."""
        if self._tflite_done is None:
            out, err = self.tflite_run.communicate(timeout=600)
            self._tflite_done = (self.tflite_run.returncode, out, err)
        return self._tflite_done

    @property
    def tflite(self) -> Path:
        code, _, err = self.tflite_export()
        assert code == 0, err
        return self.tflite_dir / f"{STEM}.tflite"


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "MVIT_DEBUG"}
    env.update(extra)
    return env


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, shared_export) -> Inputs:
    import transformers

    from mvit.exporters import api
    from mvit.models import create_model
    from mvit.models.checkpoints import save_checkpoint
    from mvit.models.mobilevit import SIZES

    root = tmp_path_factory.mktemp("hostile-inputs")
    tflite_dir = root / "tflite"
    tflite_run = subprocess.Popen(
        [str(BIN / "mvit-export"), *shlex.split(EXPORT_ONNX.replace("onnx", "tflite").replace("--out out", f"--out {tflite_dir}"))],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(),
    )
    onnx = shared_export(MODEL, "onnx", precision="fp32", image_size=64).path
    umask = 0o027  # unusual on purpose: final modes must follow it, not be fixed at 0644
    old = os.umask(umask)
    try:
        coreml = api.export_model(MODEL, "coreml", root / "coreml", precision="fp32", image_size=64).path
    finally:
        os.umask(old)
    s = SIZES["xxs"]
    labels = {i: f"thing {i}" for i in range(3)}
    config = transformers.MobileViTConfig(
        neck_hidden_sizes=s.hf_neck_hidden_sizes,
        hidden_sizes=list(s.dims),
        expand_ratio=s.expand_ratio,
        id2label=labels,
        image_size=64,
        label2id={v: k for k, v in labels.items()},
    )
    transformers.MobileViTForImageClassification(config).eval().save_pretrained(root / "hf")
    mvit_a = save_checkpoint(create_model(MODEL, config="A"), root / "a.safetensors", MODEL, config="A")
    return Inputs(onnx, coreml, umask, root / "hf", mvit_a, tflite_run, tflite_dir)


# --- what the cases write -------------------------------------------------------------------------

Setup = Callable[[Path, Inputs], None]


def _all(*setups: Setup) -> Setup:
    def setup(folder: Path, given: Inputs) -> None:
        for s in setups:
            s(folder, given)

    return setup


def _nothing(folder: Path, given: Inputs) -> None:
    pass


def _copy(name: str, which: str = "onnx") -> Setup:
    def setup(folder: Path, given: Inputs) -> None:
        src = getattr(given, which)
        (shutil.copytree if src.is_dir() else shutil.copy)(src, folder / name)

    return setup


def _onnx_meta(name: str, **changes: str | None) -> Setup:
    """A real export whose metadata says something else (None: the key removed)."""

    def setup(folder: Path, given: Inputs) -> None:
        import onnx

        model = onnx.load(str(given.onnx))
        props = {p.key: p.value for p in model.metadata_props}
        props.update(changes)
        del model.metadata_props[:]
        for key, value in props.items():
            if value is not None:
                model.metadata_props.append(onnx.StringStringEntryProto(key=key, value=value))
        onnx.save(model, str(folder / name))

    return setup


def _onnx_weights_negated(name: str) -> Setup:
    def setup(folder: Path, given: Inputs) -> None:
        import onnx
        from onnx import numpy_helper

        model = onnx.load(str(given.onnx))
        biggest = max(model.graph.initializer, key=lambda t: numpy_helper.to_array(t).size)
        biggest.CopyFrom(numpy_helper.from_array(-numpy_helper.to_array(biggest), biggest.name))
        onnx.save(model, str(folder / name))

    return setup


def _bytes(name: str, data: bytes) -> Setup:
    def setup(folder: Path, given: Inputs) -> None:
        (folder / name).write_bytes(data)

    return setup


def _truncated(name: str, which: str) -> Setup:
    def setup(folder: Path, given: Inputs) -> None:
        data = getattr(given, which).read_bytes()
        (folder / name).write_bytes(data[: len(data) // 2])

    return setup


def _mlpackage(name: str, damage: str) -> Setup:
    def setup(folder: Path, given: Inputs) -> None:
        package = folder / name
        shutil.copytree(given.coreml, package)
        weights = package / "Data" / "com.apple.CoreML" / "weights" / "weight.bin"
        if damage == "no-weights":
            weights.unlink()
        elif damage == "truncated-weights":
            os.truncate(weights, weights.stat().st_size // 3)
        elif damage == "no-manifest":
            (package / "Manifest.json").unlink()
        elif damage == "garbage-program":
            (package / "Data" / "com.apple.CoreML" / "model.mlmodel").write_bytes(b"\x00garbage" * 100)

    return setup


def _hf_config(name: str, **changes) -> Setup:
    """A Hugging Face folder whose config.json says something hostile; the weights never get read."""

    def setup(folder: Path, given: Inputs) -> None:
        hf = folder / name
        hf.mkdir()
        config = json.loads((given.hf / "config.json").read_text())
        config.update(changes)
        config = {k: v for k, v in config.items() if v is not None}
        (hf / "config.json").write_text(json.dumps(config))
        (hf / "model.safetensors").write_bytes(b"")

    return setup


class _RunsCode:
    """Unpickling this creates the file `pwned`: what a malicious checkpoint would do."""

    def __reduce__(self):
        return (open, ("pwned", "w"))


def _evil_pickle(name: str) -> Setup:
    def setup(folder: Path, given: Inputs) -> None:
        import torch

        path = folder / name
        path.parent.mkdir(exist_ok=True)
        torch.save({"state_dict": {"w": torch.zeros(1)}, "hook": _RunsCode()}, path)

    return setup


def _hf_with_evil_bin(name: str) -> Setup:
    def setup(folder: Path, given: Inputs) -> None:
        (folder / name).mkdir()
        shutil.copy(given.hf / "config.json", folder / name / "config.json")
        _evil_pickle(f"{name}/pytorch_model.bin")(folder, given)

    return setup


def _mvit_meta(name: str, **changes: str) -> Setup:
    def setup(folder: Path, given: Inputs) -> None:
        from safetensors import safe_open
        from safetensors.torch import load_file, save_file

        with safe_open(str(given.mvit_a), "pt") as f:
            metadata = {**f.metadata(), **changes}
        save_file(load_file(str(given.mvit_a)), str(folder / name), metadata=metadata)

    return setup


def _safetensors_header_lies(name: str) -> Setup:
    """A 100-byte file whose header claims a 4 GB tensor."""

    def setup(folder: Path, given: Inputs) -> None:
        header = json.dumps({"w": {"dtype": "F32", "shape": [1_000_000_000], "data_offsets": [0, 4_000_000_000]}}).encode()
        (folder / name).write_bytes(len(header).to_bytes(8, "little") + header + b"\x00" * 16)

    return setup


VICTIM = "victim.txt"
VICTIM_TEXT = "a file outside --out that no export may change\n"


def _symlinks(*names: str) -> Setup:
    """Symlinks at the names an export could write through, all pointing at a victim file."""

    def setup(folder: Path, given: Inputs) -> None:
        (folder / VICTIM).write_text(VICTIM_TEXT)
        (folder / "out").mkdir(exist_ok=True)
        for name in names:
            link = folder / name.format(pid=os.getpid())
            link.parent.mkdir(exist_ok=True)
            link.symlink_to(folder / VICTIM)

    return setup


def _dead_pid() -> int:
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


def _stale_staging(folder: Path, given: Inputs) -> None:
    out = folder / "out"
    out.mkdir()
    dead = _dead_pid()
    (out / f".mvit-tmp-{dead}-x").mkdir()
    (out / f".mvit-tmp-{dead}-x" / ONNX).write_bytes(b"half an artefact")
    (out / f".mvit-tmp-{dead}-y-{ONNX}").write_bytes(b"half a file")
    (out / ".mvit-tmp-1-z").mkdir()  # pid 1 is alive: another run's staging is not ours to remove


def _folder(name: str) -> Setup:
    return lambda folder, given: (folder / name).mkdir()


# --- the table ---------------------------------------------------------------------------------------


class Case(NamedTuple):
    id: str
    bullet: str  # the issue-10 bullet this case covers
    command: str  # the command line, run in the case's folder
    setup: Setup
    exit: int
    words: tuple[str, ...]  # in the one stderr line (exit 2/130), else on stdout
    absent: tuple[str, ...] = ()  # globs that must match nothing afterwards
    written: tuple[str, ...] = ()  # must exist afterwards with mode 0666 & ~umask
    not_words: tuple[str, ...] = ()  # must not be in what the command showed
    fault: str | None = None  # enospc-report | enospc-export | tmpdir-sentinel | tmpfs | argv-statement
    subprocess: bool = False  # the installed entry point (sees C++ loggers on fd 2, real sys.argv)
    umask: int = 0o022

    @property
    def tool(self) -> str:
        return self.command.split()[0]


NOTHING_OUT = ("out/[!.]*",)  # no artefact, report or anchors under a final name
EXPORTED = (f"out/{ONNX}", f"out/{ONNX}.report.json")
CUSTOM = ("custom network", "never imports code named by a file", "--model")

CASES: list[Case] = [
    # Code named by an artefact's metadata is never imported or called.
    Case(
        "verify-metadata-timeit-statement-name",
        CODE,
        f"mvit-verify {shlex.quote(STATEMENT_NAME)}",
        _onnx_meta(STATEMENT_NAME, model="timeit:main"),
        2,
        ("timeit:main", *CUSTOM),
        absent=("pwned",),
        subprocess=True,
    ),
    Case(
        "verify-metadata-tempfile-mkdtemp",
        CODE,
        "mvit-verify mkdtemp.onnx",
        _onnx_meta("mkdtemp.onnx", model="tempfile:mkdtemp"),
        2,
        ("tempfile:mkdtemp", *CUSTOM),
        absent=("sentinel/*",),
        fault="tmpdir-sentinel",
    ),
    Case(
        "verify-metadata-timeit-in-process",
        CODE,
        f"mvit-verify {shlex.quote(STATEMENT_NAME)}",
        _onnx_meta(STATEMENT_NAME, model="timeit:main"),
        2,
        ("timeit:main", *CUSTOM),
        absent=("pwned",),
        fault="argv-statement",
    ),
    Case("verify-metadata-os-system", CODE, "mvit-verify system.onnx", _onnx_meta("system.onnx", model="os:system"), 2, ("os:system", *CUSTOM)),
    Case("verify-metadata-path-like-model", CODE, "mvit-verify path.onnx", _onnx_meta("path.onnx", model="../../evil/net"), 2, ("../../evil/net", *CUSTOM)),
    Case(
        "verify-metadata-unregistered-model",
        CODE,
        "mvit-verify unknown.onnx",
        _onnx_meta("unknown.onnx", model="mobilevit_zzz"),
        2,
        ("mobilevit_zzz", "not registered", "--model"),
    ),
    Case(
        "verify-statement-name-with-model-given",
        CODE,
        f"mvit-verify {shlex.quote(STATEMENT_NAME)} --model {MODEL}",
        _onnx_meta(STATEMENT_NAME, model="timeit:main"),
        0,
        ("pass by onnxruntime",),
        absent=("pwned",),
        written=(f"{STATEMENT_NAME}.verify.json",),
        fault="argv-statement",
    ),
    # Metadata is data: every field is checked, and errors name the file.
    Case(
        "verify-metadata-image-size-negative",
        ARTEFACTS,
        "mvit-verify size.onnx",
        _onnx_meta("size.onnx", image_size="-1"),
        2,
        ("size.onnx", "malformed mvit metadata", "image_size -1", "re-export"),
        not_words=("--image-size",),
        absent=("size.onnx.verify.json",),
    ),
    Case(
        "verify-metadata-image-size-huge",
        RESOURCES,
        "mvit-verify huge.onnx",
        _onnx_meta("huge.onnx", image_size="99999"),
        2,
        ("huge.onnx", "too large", "re-export"),
        not_words=("--image-size",),
    ),
    Case(
        "verify-metadata-image-size-text",
        ARTEFACTS,
        "mvit-verify abc.onnx",
        _onnx_meta("abc.onnx", image_size="abc"),
        2,
        ("abc.onnx", "no mvit export metadata"),
    ),
    Case(
        "verify-metadata-unknown-option",
        ARTEFACTS,
        "mvit-verify opts.onnx",
        _onnx_meta("opts.onnx", export_options='{"evil": 1}'),
        2,
        ("opts.onnx", "malformed mvit metadata", "evil"),
    ),
    Case(
        "verify-metadata-precision",
        ARTEFACTS,
        "mvit-verify fp8.onnx",
        _onnx_meta("fp8.onnx", precision="fp8"),
        2,
        ("fp8.onnx", "malformed mvit metadata", "fp8"),
    ),
    Case(
        "verify-metadata-missing",
        ARTEFACTS,
        "mvit-verify foreign.onnx",
        _onnx_meta("foreign.onnx", preprocess=None),
        2,
        ("foreign.onnx", "not written by mvit-export"),
    ),
    # Damaged or tampered artefacts never pass.
    Case(
        "verify-onnx-garbage", ARTEFACTS, "mvit-verify garbage.onnx", _bytes("garbage.onnx", b"not a model at all"), 2, ("garbage.onnx", "cannot read", "onnx")
    ),
    Case(
        "verify-onnx-truncated",
        ARTEFACTS,
        "mvit-verify half.onnx",
        _truncated("half.onnx", "onnx"),
        2,
        ("half.onnx", "cannot read"),
        absent=("half.onnx.verify.json",),
    ),
    Case("verify-onnx-empty", ARTEFACTS, "mvit-verify empty.onnx", _bytes("empty.onnx", b""), 2, ("empty.onnx", "not written by mvit-export")),
    Case("verify-onnx-folder", ARTEFACTS, "mvit-verify dir.onnx", _folder("dir.onnx"), 2, ("dir.onnx",)),
    Case(
        "verify-onnx-weights-negated",
        ARTEFACTS,
        "mvit-verify tampered.onnx",
        _onnx_weights_negated("tampered.onnx"),
        1,
        ("tampered.onnx", "fail"),
        written=("tampered.onnx.verify.json",),
    ),
    Case("verify-missing-artefact", ONE_PATH, "mvit-verify nope.onnx", _nothing, 2, ("nope.onnx", "does not exist")),
    Case("verify-unknown-suffix", ONE_PATH, "mvit-verify model.bin", _bytes("model.bin", b"x"), 2, ("model.bin", "cannot tell the target")),
    Case(
        "verify-tflite-garbage", NOISE, "mvit-verify garbage.tflite", _bytes("garbage.tflite", b"TFL3 not a model" * 4), 2, ("garbage.tflite",), subprocess=True
    ),
    Case(
        "verify-tflite-truncated",
        NOISE,
        "mvit-verify half.tflite",
        _truncated("half.tflite", "tflite"),
        2,
        ("half.tflite",),
        absent=("half.tflite.verify.json",),
        subprocess=True,
    ),
    Case(
        "verify-coreml-weight-bin-deleted",
        COREML,
        "mvit-verify m.mlpackage",
        _mlpackage("m.mlpackage", "no-weights"),
        2,
        ("m.mlpackage", "cannot read", "re-export"),
        absent=("m.mlpackage.verify.json",),
    ),
    Case(
        "verify-coreml-weight-bin-truncated",
        COREML,
        "mvit-verify m.mlpackage",
        _mlpackage("m.mlpackage", "truncated-weights"),
        2,
        ("m.mlpackage", "cannot read", "re-export"),
        absent=("m.mlpackage.verify.json",),
    ),
    Case("verify-coreml-manifest-deleted", COREML, "mvit-verify m.mlpackage", _mlpackage("m.mlpackage", "no-manifest"), 2, ("m.mlpackage", "Manifest.json")),
    Case(
        "verify-coreml-program-garbage",
        COREML,
        "mvit-verify m.mlpackage",
        _mlpackage("m.mlpackage", "garbage-program"),
        2,
        ("m.mlpackage",),
        absent=("m.mlpackage.verify.json",),
    ),
    # Silent accepts are refused, naming what the user actually passed.
    Case(
        "export-image-size-0",
        SILENT,
        "mvit-export --model mobilevit_xxs --image-size 0 --target onnx --out out",
        _nothing,
        2,
        ("--image-size 0", "at least 32"),
        absent=("out",),
    ),
    Case(
        "export-image-size-negative",
        SILENT,
        "mvit-export --image-size -1 --target onnx --out out",
        _nothing,
        2,
        ("--image-size -1", "at least 32"),
        absent=("out",),
    ),
    Case(
        "export-image-size-99999",
        RESOURCES,
        "mvit-export --model mobilevit_xxs --image-size 99999 --target onnx --out out",
        _nothing,
        2,
        ("--image-size 99999", "too large", "GB", "at most 1024"),
        absent=("out",),
        not_words=("larger size",),
    ),
    Case(
        "export-image-size-1025",
        RESOURCES,
        "mvit-export --model mobilevit_xxs --image-size 1025 --target onnx --out out",
        _nothing,
        2,
        ("--image-size 1025", "at most 1024"),
        absent=("out",),
    ),
    Case(
        "export-no-nms-on-classifier",
        SILENT,
        f"mvit-export {EXPORT_ONNX} --no-nms",
        _nothing,
        2,
        ("--no-nms", "detection models only", "classification"),
        absent=("out",),
    ),
    Case("export-mask-on-classifier", SILENT, f"mvit-export {EXPORT_ONNX} --mask", _nothing, 2, ("--mask", "segmentation models only"), absent=("out",)),
    Case(
        "export-raw-detection-on-segmentation",
        SILENT,
        "mvit-export --model deeplabv3_mobilevit_xxs --image-size 64 --target onnx --out out --raw-detection",
        _nothing,
        2,
        ("--raw-detection", "detection models only", "segmentation"),
        absent=("out",),
    ),
    Case("export-unknown-config", SILENT, f"mvit-export {EXPORT_ONNX} --config C", _nothing, 2, ("--config", "'C'", "A", "B"), absent=("out",)),
    Case(
        "export-hf-id2label-gap",
        SILENT,
        "mvit-export --checkpoint hf --target onnx --out out",
        _hf_config("hf", id2label={"0": "a", "2": "c", "3": "d"}, num_labels=3),
        2,
        ("hf/config.json", "id2label has no entry for class 1", "--labels"),
        absent=("out",),
    ),
    Case(
        "export-hf-id2label-text-key",
        SILENT,
        "mvit-export --checkpoint hf --target onnx --out out",
        _hf_config("hf", id2label={"0": "a", "one": "b", "2": "c"}),
        2,
        ("hf/config.json", "'one'", "not a class number"),
        absent=("out",),
    ),
    Case(
        "export-hf-records-a-config-b",
        SILENT,
        "mvit-export --checkpoint hf --config B --target onnx --out out",
        _copy("hf", "hf"),
        2,
        ("patch config A", "--config B", "Drop --config"),
        absent=("out",),
    ),
    Case(
        "export-mvit-records-a-config-b",
        SILENT,
        "mvit-export --checkpoint a.safetensors --config B --target onnx --out out",
        _copy("a.safetensors", "mvit_a"),
        2,
        ("a.safetensors", "patch config A", "--config B"),
        absent=("out",),
    ),
    Case(
        "export-config-image-size-negative",
        SILENT,
        "mvit-export --checkpoint hf --target onnx --out out",
        _hf_config("hf", image_size=-1),
        2,
        ("hf/config.json", "image_size is -1"),
        not_words=("--image-size",),
        absent=("out",),
    ),
    Case(
        "export-config-image-size-text",
        SILENT,
        "mvit-export --checkpoint hf --target onnx --out out",
        _hf_config("hf", image_size="abc"),
        2,
        ("hf/config.json", "image_size is 'abc'", "whole number"),
        not_words=("--image-size", "TypeError"),
        absent=("out",),
    ),
    Case(
        "export-config-num-labels-2m",
        RESOURCES,
        "mvit-export --checkpoint hf --target onnx --out out",
        _hf_config("hf", num_labels=2_000_000, id2label=None, label2id=None),
        2,
        ("hf/config.json", "num_labels is 2000000"),
        absent=("out",),
    ),
    Case(
        "export-config-patch-size-0",
        SILENT,
        "mvit-export --checkpoint hf --target onnx --out out",
        _hf_config("hf", patch_size=0),
        2,
        ("hf/config.json", "patch_size is 0"),
        absent=("out",),
    ),
    Case(
        "export-config-not-an-object",
        SILENT,
        "mvit-export --checkpoint hf --target onnx --out out",
        _all(_folder("hf"), _bytes("hf/config.json", b"[1, 2]")),
        2,
        ("config.json", "not a JSON object"),
        absent=("out",),
    ),
    # Pickles are opened with weights_only=True: a file that would run code is refused, and says why.
    Case(
        "export-pickle-runs-code",
        PICKLE,
        "mvit-export --checkpoint evil.pt --target onnx --out out",
        _evil_pickle("evil.pt"),
        2,
        ("evil.pt", "never unpickles", "state_dict()"),
        absent=("pwned", "out"),
        not_words=("weights_only",),
    ),
    Case(
        "export-pickle-in-hf-folder",
        PICKLE,
        "mvit-export --checkpoint hf --target onnx --out out",
        _hf_with_evil_bin("hf"),
        2,
        ("pytorch_model.bin", "never unpickles"),
        absent=("pwned", "out"),
        not_words=("weights_only",),
    ),
    Case(
        "export-pickle-damaged",
        PICKLE,
        "mvit-export --checkpoint junk.pt --target onnx --out out",
        _bytes("junk.pt", b"\x80\x02junk"),
        2,
        ("junk.pt", "not a readable PyTorch checkpoint"),
        absent=("out",),
        not_words=("weights_only",),
    ),
    # Claims are checked before anything is allocated.
    Case(
        "export-safetensors-claims-2m-classes",
        RESOURCES,
        "mvit-export --checkpoint big.safetensors --target onnx --out out",
        _mvit_meta("big.safetensors", **{"mvit.num_classes": "2000000"}),
        2,
        ("big.safetensors", "2000000", "100000"),
        absent=("out",),
    ),
    Case(
        "export-safetensors-header-lies",
        RESOURCES,
        "mvit-export --checkpoint lies.safetensors --target onnx --out out",
        _safetensors_header_lies("lies.safetensors"),
        2,
        ("lies.safetensors", "not a readable safetensors file"),
        absent=("out",),
    ),
    # Writes: exclusive staging, symlinks never followed, stale staging of dead runs removed, normal modes.
    Case(
        "export-symlinks-at-temp-and-final-names",
        SYMLINK,
        f"mvit-export {EXPORT_ONNX}",
        _symlinks(
            f"out/.tmp-{{pid}}-{ONNX}",
            f"out/.mvit-tmp-{{pid}}-{ONNX}",
            f"out/.tmp-{{pid}}-{ONNX}.report.json",
            f"out/{ONNX}.tmp",
            f"out/{ONNX}",
            f"out/{ONNX}.report.json",
            f"out/{ONNX}.verify.json",
        ),
        0,
        ("pass by onnxruntime",),
        written=EXPORTED,
    ),
    Case(
        "verify-symlink-at-report-name",
        SYMLINK,
        f"mvit-verify {ONNX}",
        _all(_copy(ONNX), _symlinks(f"{ONNX}.verify.json")),
        0,
        ("pass by onnxruntime",),
        written=(f"{ONNX}.verify.json",),
    ),
    Case(
        "export-removes-stale-staging-of-dead-pid",
        FAULTS,
        f"mvit-export {EXPORT_ONNX}",
        _stale_staging,
        0,
        ("pass",),
        written=EXPORTED,
        absent=("out/.mvit-tmp-[!1]*",),
    ),
    Case("export-modes-follow-umask-022", MODES, f"mvit-export {EXPORT_ONNX}", _nothing, 0, ("pass",), written=EXPORTED),
    Case("export-modes-follow-umask-002", MODES, f"mvit-export {EXPORT_ONNX}", _nothing, 0, ("pass",), written=EXPORTED, umask=0o002),
    Case("verify-modes-verify-json", MODES, f"mvit-verify {ONNX}", _copy(ONNX), 0, ("pass by onnxruntime",), written=(f"{ONNX}.verify.json",)),
    # Full disks: one line, exit 2, nothing half-written, no artefact without its report.
    Case(
        "export-disk-full-writing-report",
        FAULTS,
        f"mvit-export {EXPORT_ONNX}",
        _nothing,
        2,
        ("No space left on device", "free disk space"),
        absent=NOTHING_OUT,
        fault="enospc-report",
    ),
    Case(
        "export-disk-full-writing-artefact",
        FAULTS,
        f"mvit-export {EXPORT_ONNX}",
        _nothing,
        2,
        ("onnx export", "No space left on device"),
        absent=NOTHING_OUT,
        fault="enospc-export",
    ),
    Case("export-tmpfs-full", FAULTS, f"mvit-export {EXPORT_ONNX}", _nothing, 2, ("onnx export", "No space left on device"), absent=NOTHING_OUT, fault="tmpfs"),
    Case(
        "verify-disk-full-writing-verify-json",
        FAULTS,
        f"mvit-verify {ONNX}",
        _copy(ONNX),
        2,
        ("No space left on device",),
        absent=(f"{ONNX}.verify.json",),
        fault="enospc-report",
    ),
    Case("export-out-is-a-file", ONE_PATH, f"mvit-export {EXPORT_ONNX}", _bytes("out", b"a file"), 2, ("output folder out", "--out")),
    # --target all: bad input is said once, before anything is written.
    Case("export-all-bad-size-once", TARGET_ALL, "mvit-export --target all --image-size 0 --out out", _nothing, 2, ("--image-size 0",), absent=("out",)),
    Case(
        "export-all-bad-checkpoint-once",
        TARGET_ALL,
        "mvit-export --target all --checkpoint evil.pt --out out",
        _evil_pickle("evil.pt"),
        2,
        ("evil.pt", "never unpickles"),
        absent=("out", "pwned"),
    ),
    # TFLite paths: no absl / oneDNN / TF lines around the one error line.
    Case(
        "export-tflite-bad-size-no-native-logs",
        NOISE,
        "mvit-export --target tflite --image-size 0 --out out",
        _nothing,
        2,
        ("--image-size 0",),
        absent=("out",),
        subprocess=True,
    ),
    Case(
        "export-tflite-nhwc-bad-checkpoint-no-native-logs",
        NOISE,
        "mvit-export --target tflite --nhwc --checkpoint evil.pt --out out",
        _evil_pickle("evil.pt"),
        2,
        ("evil.pt", "never unpickles"),
        absent=("out", "pwned"),
        subprocess=True,
    ),
]


# --- cases that need a process of their own (signals, concurrency, memory) -----------------------------

SLOW_NET = '''\
import os, time, torch

class Slow(torch.nn.Module):
    """Each forward logs whether it is being exported, then sleeps: a wide window for a signal."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3)

    def forward(self, x):
        with open(os.environ["SLOW_LOG"], "a") as f:
            f.write("export\\n" if torch.onnx.is_in_onnx_export() else "eager\\n")
        time.sleep(float(os.environ["SLOW_SECONDS"]))
        return self.conv(x)


def build():
    return Slow()
'''
SLOW_COMMAND = "mvit-export --model slow_net:build --image-size 32 --target onnx --precision fp32 --out out"
INTERRUPTS = [(signal.SIGINT, "export"), (signal.SIGTERM, "export"), (signal.SIGINT, "verification"), (signal.SIGTERM, "verification")]
CONCURRENT_COMMAND = f"mvit-export {EXPORT_ONNX}  (two at once)"
RSS_LIMIT_MB = 1500  # the 2 M-class head alone would be 2.6 GB


def describe_cases() -> list[dict]:
    """One row per case for docs/reliability.md (subprocess tests included)."""
    rows = [{"id": c.id, "command": c.command, "exit": c.exit, "bullet": c.bullet, "asserted": _asserted(c)} for c in CASES]
    for sig, phase in INTERRUPTS:
        rows.append(
            {
                "id": f"subprocess-{sig.name.lower()}-during-{phase}",
                "command": f"{SLOW_COMMAND}  (then {sig.name})",
                "exit": 130,
                "bullet": FAULTS,
                "asserted": "one `error: interrupted` line; no artefact or report under a final name; no staging left",
            }
        )
    rows += [
        {
            "id": "subprocess-concurrent-exports",
            "command": CONCURRENT_COMMAND,
            "exit": 0,
            "bullet": CONCURRENT,
            "asserted": "both exit 0; the report's sha256 matches the artefact; no staging left",
        },
        {
            "id": "subprocess-export-tflite-quiet",
            "command": f"mvit-export {EXPORT_ONNX.replace('onnx', 'tflite')}",
            "exit": 0,
            "bullet": NOISE,
            "asserted": "stderr has only mvit's `note:` lines (no INFO/absl/oneDNN lines)",
        },
        {
            "id": "subprocess-claims-2m-classes-peak-memory",
            "command": "mvit-export --checkpoint big.safetensors --target onnx",
            "exit": 2,
            "bullet": RESOURCES,
            "asserted": f"one `error:` line; peak RSS under {RSS_LIMIT_MB} MB",
        },
        {
            "id": "coreml-modes-inside-mlpackage",
            "command": f"mvit-export {EXPORT_ONNX.replace('onnx', 'coreml')}  (umask 027)",
            "exit": 0,
            "bullet": MODES,
            "asserted": "every file inside the .mlpackage 0640, every folder 0750, report 0640",
        },
        {
            "id": "target-all-results-in-target-order",
            "command": "mvit-export --target all  (one target failing)",
            "exit": 2,
            "bullet": TARGET_ALL,
            "asserted": "results in coreml, onnx, tflite order; the failing target's error once",
        },
    ]
    return rows


def _asserted(case: Case) -> str:
    if case.exit in (2, 130):
        said = "one `error:` line with " + ", ".join(f"'{w}'" for w in case.words)
    else:
        said = "stdout has " + ", ".join(f"'{w}'" for w in case.words)
    parts = [said]
    if case.not_words:
        parts.append("not " + ", ".join(f"'{w}'" for w in case.not_words))
    if case.absent:
        parts.append("nothing at " + ", ".join(f"`{a}`" for a in case.absent))
    if case.written:
        parts.append("written at 0666 & ~umask: " + ", ".join(f"`{w}`" for w in case.written))
    if case.fault:
        parts.append(FAULT_DESCRIPTIONS[case.fault])
    return "; ".join(parts)


FAULT_DESCRIPTIONS = {
    "enospc-report": "the disk fills (os.fsync raises ENOSPC) while the JSON is written",
    "enospc-export": "the disk fills (ENOSPC) while the target writes the artefact",
    "tmpfs": "--out is a 1 MB tmpfs (skipped where mounting is not permitted)",
    "tmpdir-sentinel": "the temp folder tempfile.mkdtemp would use stays empty",
    "argv-statement": "sys.argv holds the statement file name, as timeit:main would read it",
}


# Each guard, where it lives, and the tests that fail without it ("guard-off" tests switch it off).
GUARDS = [
    (
        "artefact metadata never names code to import",
        "exporters/api.py _registered_model_of",
        "verify-metadata-*, test_guard_off_metadata_model_runs_the_named_code",
    ),
    ("recorded image_size checked as file data", "exporters/recorded.py read_recorded", "verify-metadata-image-size-negative, verify-metadata-image-size-huge"),
    (
        "image size bounds 32..1024 with the memory it needs",
        "exporters/resolve.py check_size_bounds",
        "export-image-size-*, test_guard_off_image_size_0_silently_becomes_256",
    ),
    (
        "task-only options refused",
        "exporters/options.py normalise_options (task_only_options)",
        "export-mask-on-classifier, export-no-nms-on-classifier, test_guard_off_mask_and_no_nms_on_a_classifier_are_accepted",
    ),
    (
        "checkpoint config vs --config",
        "exporters/resolve.py _check_config",
        "export-hf-records-a-config-b, export-mvit-records-a-config-b, test_guard_off_config_b_is_silently_ignored",
    ),
    ("config.json values type- and range-checked", "models/checkpoints/validate.py positive_int", "export-config-*"),
    ("id2label without gaps", "models/checkpoints/validate.py hf_labels", "export-hf-id2label-*"),
    (
        "class counts checked before allocation (meta skeleton)",
        "models/checkpoints/load.py _skeleton, _load_native",
        "export-safetensors-claims-2m-classes, test_claims_2m_classes_refused_within_memory",
    ),
    ("pickles with weights_only=True", "models/checkpoints/read.py read_tensors", "export-pickle-*, test_guard_off_unsafe_unpickling_runs_the_code"),
    (
        "exclusive staging folders, symlinks replaced not followed",
        "mvit/files.py staging_dir, publish, write_atomic",
        "export-symlinks-at-temp-and-final-names, verify-symlink-at-report-name",
    ),
    (
        "publish only after verification and report",
        "exporters/api.py export_model",
        "export-disk-full-*, export-tmpfs-full, test_interrupt_leaves_nothing_under_a_final_name",
    ),
    ("stale staging of dead pids removed", "mvit/files.py clean_stale_staging", "export-removes-stale-staging-of-dead-pid, test_guard_off_stale_staging_stays"),
    ("normal final modes", "mvit/files.py normal_modes", "export-modes-*, verify-modes-verify-json, test_coreml_modes_inside_the_package"),
    ("one error path, exit 130 on SIGINT/SIGTERM", "mvit/cli_support.py run_cli", "every case, test_interrupt_leaves_nothing_under_a_final_name"),
    (
        "native log lines filtered off fd 2",
        "mvit/cli_support.py native_chatter_filtered",
        "test_tflite_export_prints_no_native_log_lines, test_guard_off_native_chatter_reaches_the_terminal",
    ),
    (
        "bad input said once for --target all",
        "exporters/cli.py export (prepare_export before the loop)",
        "export-all-*, test_target_all_results_in_target_order",
    ),
]


def describe_guards() -> list[dict]:
    return [{"guard": g, "where": w, "tests": t} for g, w, t in GUARDS]


# --- running a case ----------------------------------------------------------------------------------


def _user_mode(umask: int) -> int:
    return 0o666 & ~umask


def _in_process(case: Case, argv: list[str], capsys) -> tuple[int, str, str]:
    from mvit.exporters.cli import main, verify_main

    run = main if case.tool == "mvit-export" else verify_main
    with pytest.raises(SystemExit) as info:
        run(argv)
    out = capsys.readouterr()
    return info.value.code, out.out, out.err


def _as_subprocess(case: Case, argv: list[str], folder: Path) -> tuple[int, str, str]:
    done = subprocess.run([str(BIN / case.tool), *argv], cwd=folder, capture_output=True, text=True, timeout=300, env=_env())
    return done.returncode, done.stdout, done.stderr


def _disk_full(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def _export_fills_the_disk(self, request, path):
    Path(path).write_bytes(b"half an artefact")
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))


def _staging(folder: Path) -> set[Path]:
    return set(folder.rglob(".mvit-tmp-*"))


def _check_published(out: Path) -> None:
    """Every artefact under a final name has its report, and the report describes these bytes."""
    from mvit.exporters.api import artefact_sha256

    for artefact in out.glob("[!.]*"):
        if artefact.name.endswith(".json") or artefact.is_symlink():
            continue
        report = json.loads(artefact.with_name(artefact.name + ".report.json").read_text())
        assert report["sha256"] == artefact_sha256(artefact), artefact


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_case(case: Case, inputs: Inputs, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MVIT_DEBUG", raising=False)
    case.setup(tmp_path, inputs)
    argv = shlex.split(case.command)[1:]
    if case.fault in ("enospc-report",):
        from mvit import files

        monkeypatch.setattr(files.os, "fsync", _disk_full)
    elif case.fault == "enospc-export":
        from mvit.exporters.targets import get_target

        monkeypatch.setattr(type(get_target("onnx")), "export", _export_fills_the_disk)
    elif case.fault == "tmpdir-sentinel":
        (tmp_path / "sentinel").mkdir()
        monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "sentinel"))
    elif case.fault == "argv-statement":
        monkeypatch.setattr(sys, "argv", [case.tool, *argv])  # what timeit:main would read
    elif case.fault == "tmpfs":
        (tmp_path / "out").mkdir()
        mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(tmp_path / "out")], capture_output=True)
        if mounted.returncode != 0:
            pytest.skip("mounting a small tmpfs is not permitted here; export-disk-full-* inject ENOSPC instead")
    victims = {p: p.read_bytes() for p in tmp_path.glob(VICTIM)}
    staging_before = _staging(tmp_path)
    old_mask = os.umask(case.umask)
    try:
        code, out, err = _as_subprocess(case, argv, tmp_path) if case.subprocess else _in_process(case, argv, capsys)
        remaining = sorted(p.name for p in (tmp_path / "out").iterdir()) if case.fault == "tmpfs" else None
    finally:
        os.umask(old_mask)
        if case.fault == "tmpfs":
            subprocess.run(["umount", str(tmp_path / "out")], check=True)

    assert code == case.exit, (out, err)
    assert "Traceback" not in out + err
    if case.exit in (0, 1):
        assert own_lines_only(err), err  # no third-party lines
        shown = out
    else:
        lines = err.splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), err
        shown = lines[0]
    for word in case.words:
        assert word in shown, (word, shown)
    for word in (*case.not_words, "internal error"):
        assert word not in shown, (word, shown)
    for pattern in case.absent:
        assert not list(tmp_path.glob(pattern)), pattern
    if remaining is not None:
        assert remaining == [], remaining
    for name in case.written:
        path = tmp_path / name
        assert path.is_file() and not path.is_symlink(), name
        assert stat.S_IMODE(path.stat().st_mode) == _user_mode(case.umask), (name, oct(path.stat().st_mode))
    for victim, before in victims.items():
        assert victim.read_bytes() == before  # the planted symlinks' target is untouched
    assert _staging(tmp_path) <= staging_before, _staging(tmp_path) - staging_before  # nothing of ours left behind
    if (tmp_path / "out").is_dir():
        _check_published(tmp_path / "out")


def test_the_table_documents_every_case():
    rows = describe_cases()
    assert len(CASES) >= 45 and len({r["id"] for r in rows}) == len(rows)
    assert all(r["command"].split()[0] in ("mvit-export", "mvit-verify") for r in rows)
    assert all(r["bullet"] and r["asserted"] and r["exit"] in (0, 1, 2, 130) for r in rows)
    assert sum(c.subprocess for c in CASES) >= 3
    covered = {r["bullet"] for r in rows}
    assert {CODE, SYMLINK, COREML, SILENT, PICKLE, FAULTS, RESOURCES, MODES, TARGET_ALL, NOISE, CONCURRENT} <= covered
    test_names = {name for name in globals() if name.startswith("test_")} | {c.id for c in CASES}
    for _, _, tests in GUARDS:  # every test a guard names exists
        for name in (t.strip() for t in tests.split(",")):
            if name.endswith("*"):
                assert any(t.startswith(name[:-1]) for t in test_names), name
            elif name != "every case":
                assert name in test_names, name


# --- signals -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("sig,phase", INTERRUPTS, ids=[f"{s.name.lower()}-during-{p}" for s, p in INTERRUPTS])
def test_interrupt_leaves_nothing_under_a_final_name(sig, phase, tmp_path):
    (tmp_path / "slow_net.py").write_text(SLOW_NET)
    log = tmp_path / "forward.log"
    env = _env(PYTHONPATH=str(tmp_path), SLOW_LOG=str(log), SLOW_SECONDS="1.0")
    # A shell that backgrounds the test runner may pass SIGINT on as ignored; Python only turns
    # it into KeyboardInterrupt when it starts with the default disposition.
    proc = subprocess.Popen(
        [str(BIN / "mvit-export"), *shlex.split(SLOW_COMMAND)[1:]],
        cwd=tmp_path,
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )

    def reached() -> bool:
        calls = log.read_text().split() if log.exists() else []
        if "export" not in calls:
            return False
        return phase == "export" or "eager" in calls[calls.index("export") :]

    try:
        deadline = time.monotonic() + 120
        while not reached():
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the export never reached its " + phase
            time.sleep(0.05)
    finally:
        stop_and_check_interrupted(proc, sig)
    out_dir = tmp_path / "out"
    assert [p.name for p in out_dir.iterdir()] == [], "an interrupted export left files"  # neither final names nor staging
    calls = log.read_text().split()
    assert calls[-1] == ("export" if phase == "export" else "eager")  # it stopped in the phase it was interrupted in


# --- concurrency, log noise, memory --------------------------------------------------------------------


def test_concurrent_exports_of_the_same_model_agree_with_their_report(tmp_path):
    from mvit.exporters.api import artefact_sha256

    argv = [str(BIN / "mvit-export"), *shlex.split(EXPORT_ONNX)]
    runs = [subprocess.Popen(argv, cwd=tmp_path, env=_env(), text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(2)]
    results = [(p.wait(timeout=300), *p.communicate()) for p in runs]
    for code, out, err in results:
        assert code == 0, err
        assert "Traceback" not in out + err
    out_dir = tmp_path / "out"
    assert sorted(p.name for p in out_dir.iterdir()) == sorted([ONNX, f"{ONNX}.report.json"])
    report = json.loads((out_dir / f"{ONNX}.report.json").read_text())
    assert report["sha256"] == artefact_sha256(out_dir / ONNX)
    assert report["verdict"] == "pass"


def test_tflite_export_prints_no_native_log_lines(inputs):
    code, out, err = inputs.tflite_export()
    assert code == 0, err
    assert f"{STEM}.tflite" in out and "pass by litert" in out
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines and own_lines_only(err), err  # no INFO / absl / oneDNN lines


def test_claims_2m_classes_refused_within_memory(inputs, tmp_path):
    _mvit_meta("big.safetensors", **{"mvit.num_classes": "2000000"})(tmp_path, inputs)
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss over fork+exec from the (large) pytest parent.
    probe = (
        "import sys\n"
        "from mvit.exporters.cli import main\n"
        "try:\n    main(sys.argv[1:])\nexcept SystemExit as exc:\n    code = exc.code\n"
        "hwm = next(l for l in open('/proc/self/status') if l.startswith('VmHWM:')).split()[1]\n"
        "print(code, hwm, file=sys.stdout)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe, "--checkpoint", "big.safetensors", "--target", "onnx", "--out", "out"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env=_env(),
    )
    code, peak_kb = (int(v) for v in done.stdout.split()[-2:])
    assert code == 2, done.stderr
    assert len(done.stderr.splitlines()) == 1 and "2000000" in done.stderr
    assert peak_kb / 1024 < RSS_LIMIT_MB, f"peak RSS {peak_kb / 1024:.0f} MB"
    assert not (tmp_path / "out").exists()


def test_coreml_modes_inside_the_package(inputs):
    files = [p for p in inputs.coreml.rglob("*")]
    assert any(p.name == "weight.bin" for p in files)
    for path in [inputs.coreml, *files]:
        want = (0o777 if path.is_dir() else 0o666) & ~inputs.coreml_umask
        assert stat.S_IMODE(path.stat().st_mode) == want, (path, oct(path.stat().st_mode))
    report = inputs.coreml.with_name(inputs.coreml.name + ".report.json")
    assert stat.S_IMODE(report.stat().st_mode) == 0o666 & ~inputs.coreml_umask


def test_target_all_results_in_target_order(tmp_path, monkeypatch, capsys):
    from mvit.exporters import api
    from mvit.exporters.cli import main
    from mvit.exporters.targets import all_target_names

    failing = all_target_names()[1]  # the middle target fails: the others still run, in order

    def export_prepared(prepared, export_target, out, **kwargs):
        target = export_target.name
        if target == failing:
            raise api.ExportError(f"{target} export of mobilevit_xxs failed: the converter gave up")
        path = Path(out) / f"{target}.artefact"
        return api.ExportResult(path, target, {"verdict": "pass", "verified_by": target}, None)

    monkeypatch.setattr(api, "export_prepared", export_prepared)
    monkeypatch.setattr(api.ExportResult, "size_bytes", property(lambda self: 1))
    with pytest.raises(SystemExit) as info:
        main(["--model", MODEL, "--image-size", "64", "--target", "all", "--no-verify", "--out", str(tmp_path)])
    out, err = capsys.readouterr()
    assert info.value.code == 2
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert errors == [f"error: {failing} export of mobilevit_xxs failed: the converter gave up"]
    shown = [line.split()[0].rsplit("/", 1)[-1].split(".")[0] for line in out.splitlines()]
    assert shown == [t for t in all_target_names() if t != failing] == ["coreml", "tflite"]


# --- guards switched off: each hostile case then misbehaves ---------------------------------------------


def test_guard_off_metadata_model_runs_the_named_code(inputs, tmp_path, monkeypatch):
    from mvit.exporters import api

    monkeypatch.chdir(tmp_path)
    _onnx_meta(STATEMENT_NAME, model="timeit:main")(tmp_path, inputs)
    monkeypatch.setattr(sys, "argv", ["mvit-verify", STATEMENT_NAME])
    monkeypatch.setattr(api, "_registered_model_of", lambda path, recorded, checkpoint: recorded)
    with pytest.raises(api.ExportError):  # timeit.main returns None, not a network: but only after it ran
        api.verify_artefact(Path(STATEMENT_NAME))
    assert (tmp_path / "pwned").exists(), "without the guard, the file name ran as Python"


def test_guard_off_image_size_0_silently_becomes_256(monkeypatch):
    from mvit.exporters import resolve

    with pytest.raises(resolve.ExportError, match="at least 32"):
        resolve.resolve_model(MODEL, image_size=0)
    monkeypatch.setattr(resolve, "check_size_number", lambda *a, **k: None)  # the early check, before a network is built
    monkeypatch.setattr(resolve, "check_size_bounds", lambda *a, **k: None)
    assert resolve.resolve_model(MODEL, image_size=0).image_size == 256


def test_guard_off_mask_and_no_nms_on_a_classifier_are_accepted(monkeypatch):
    from mvit.exporters import options
    from mvit.exporters.targets import get_target

    onnx = get_target("onnx")
    for given, flag in (({"mask": True}, "--mask"), ({"nms": False}, "--no-nms")):
        with pytest.raises(options.ExportError, match=flag):
            options.normalise_options("classification", given, onnx)
    monkeypatch.setattr(options, "task_only_options", lambda: set())
    assert options.normalise_options("classification", {"mask": True}, onnx).as_dict() == {"mask": True}
    assert options.normalise_options("classification", {"nms": False}, onnx).as_dict() == {}  # dropped without a word


def test_guard_off_config_b_is_silently_ignored(inputs, monkeypatch):
    from mvit.exporters import resolve

    with pytest.raises(resolve.ExportError, match="--config B"):
        resolve.resolve_model(None, config="B", checkpoint=inputs.mvit_a)
    monkeypatch.setattr(resolve, "_check_config", lambda *a: None)
    assert resolve.resolve_model(None, config="B", checkpoint=inputs.mvit_a).config == "A"  # B asked, A exported


def test_guard_off_unsafe_unpickling_runs_the_code(inputs, tmp_path, monkeypatch):
    import torch

    from mvit.models.checkpoints import read

    monkeypatch.chdir(tmp_path)
    _evil_pickle("evil.pt")(tmp_path, inputs)
    with pytest.raises(read.CheckpointError, match="never unpickles"):
        read.read_tensors(tmp_path / "evil.pt")
    assert not (tmp_path / "pwned").exists()
    real_load = torch.load
    monkeypatch.setattr(read.torch, "load", lambda *a, **k: real_load(*a, **{**k, "weights_only": False}))
    read.read_tensors(tmp_path / "evil.pt")  # loads "fine": the damage is done while unpickling
    assert (tmp_path / "pwned").exists(), "the pickle really runs code when unpickled without weights_only"


def test_guard_off_stale_staging_stays(inputs, tmp_path, monkeypatch):
    from mvit.exporters import api

    _stale_staging(tmp_path, inputs)
    stale = [p for p in (tmp_path / "out").iterdir() if not p.name.startswith(".mvit-tmp-1-")]
    from mvit.exporters import stages

    monkeypatch.setattr(stages, "clean_stale_staging", lambda folder: [])
    api.prepare_out_dir(tmp_path / "out")
    assert all(p.exists() for p in stale)
    monkeypatch.undo()
    api.prepare_out_dir(tmp_path / "out")
    assert not any(p.exists() for p in stale) and (tmp_path / "out" / ".mvit-tmp-1-z").exists()


def test_guard_off_native_chatter_reaches_the_terminal(capfd, monkeypatch):
    from mvit.cli_support import native_chatter_filtered

    monkeypatch.delenv("MVIT_DEBUG", raising=False)
    notice = b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\n"
    with native_chatter_filtered():
        os.write(2, notice + b"E0000 00:00:00 a real native error\n")
    assert capfd.readouterr().err == "E0000 00:00:00 a real native error\n"
    os.write(2, notice)  # what the same call prints without the filter
    assert capfd.readouterr().err == notice.decode()
