"""Hostile inputs, third round: hangs, exit codes, silently accepted data, terminal escapes, SIGTERM.

Each row of CASES is one command a careless user or an attacker could type, run in a fresh folder
after `setup` wrote its inputs there (copies of files built once per module), through the CLI the
README documents (`mvit-export`, `mvit-verify`, `mvit-eval`, `mvit-bench`). Every case asserts the
exit code, that stderr is exactly one `error: ` line with the helpful words, no traceback, no raw
control character on the terminal, and that nothing was written: no artefact, report or staging
folder. Every case is bounded: FIFO cases run as subprocesses with a timeout (a blocked open in
native code cannot be interrupted in-process), the others in-process under a SIGALRM watchdog, so a
regression fails instead of hanging CI. `describe_cases()` feeds docs/reliability.md.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import struct
import subprocess
import sys
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import pytest
from cli_utils import stop_and_check_interrupted
from test_checkpoints_cli import hf_config  # labels 'thing 0'.. 'thing 2'
from test_hostile_export import Setup, _all, _env, _nothing, _staging  # the same helpers, another fixture

# Builds two ONNX exports and, for the SIGTERM test, one CoreML export: runs in CI, `-m "not slow"` skips it.
pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent
TIMEOUT_S = 120  # every case finishes in seconds once its guard holds; a hang fails at this bound

HANGS = "Hangs: FIFOs as config.json, model.safetensors, --checkpoint or an evaluation image; 3,000 recorded functions"
EXIT3 = "Exit 3 where the input is bad: decompression bombs, a 200 KB CSV field, deep JSON, list ids, ONNX external data"
WRONG_EXIT = "Wrong exit code: F32 relabelled as I32 (1 instead of 2); ab of a classifier and a segmenter (1 instead of 2)"
SILENT = (
    "Silently accepted: id2label '0' and '00', 10 MB of labels, image_std 1e-30, a 1 x 100000 image, "
    "full-width --image-size, 993 sizes, shared COCO ids, latencies of 1e-300 / 1e300 ms"
)
ESCAPES = "Terminal injection: labels from config.json with ANSI escapes"
SIGNALS = "Signals: SIGTERM during mvit-verify of a CoreML package (MIL reference running)"


# --- inputs built once per module ------------------------------------------------------------------


@dataclass
class Inputs:
    hf: Path  # a Hugging Face MobileViT-XXS classification folder, labels "thing 0".."thing 2"
    onnx: Path  # mobilevit_xxs at 64, fp32
    segmenter: Path  # deeplabv3_mobilevit_xxs at 64, fp32
    mvit: Path  # an mvit .safetensors of mobilevit_xxs
    bomb: Path  # a real 20000 x 20000 greyscale PNG of about 400 KB
    coreml: Path  # mobilevit_xxs at 64, fp32 (.mlpackage)


def _png(width: int, height: int, rows: Callable[[], bytes]) -> bytes:
    """A greyscale PNG whose pixel rows come from `rows` (one call per row), compressed as it goes."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    z = zlib.compressobj(9)
    parts = [z.compress(b"\x00" + rows()) for _ in range(height)]
    idat = b"".join(parts) + z.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit greyscale
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, shared_export) -> Inputs:
    import transformers

    from mvit.models import create_model
    from mvit.models.checkpoints import save_checkpoint

    root = tmp_path_factory.mktemp("round3-inputs")
    transformers.MobileViTForImageClassification(hf_config(3)).eval().save_pretrained(root / "hf")
    onnx = shared_export("mobilevit_xxs", "onnx", precision="fp32", image_size=64).path
    segmenter = shared_export("deeplabv3_mobilevit_xxs", "onnx", precision="fp32", image_size=64).path
    mvit = save_checkpoint(create_model("mobilevit_xxs", config="A"), root / "xxs.safetensors", "mobilevit_xxs", config="A")
    row = bytes(20000)
    bomb = root / "bomb.png"
    bomb.write_bytes(_png(20000, 20000, lambda: row))
    coreml = shared_export("mobilevit_xxs", "coreml", precision="fp32", image_size=64).path
    return Inputs(root / "hf", onnx, segmenter, mvit, bomb, coreml)


# --- what the cases write ----------------------------------------------------------------------------


def _hf(name: str = "hf", fifo: str | None = None, preprocessor: dict | None = None, **changes) -> Setup:
    """A copy of the HF folder with config.json changed, a preprocessor_config.json, or one file a FIFO."""

    def setup(folder: Path, given: Inputs) -> None:
        shutil.copytree(given.hf, folder / name)
        path = folder / name / "config.json"
        config = json.loads(path.read_text())
        for key, value in changes.items():
            config[key] = value
        path.write_text(json.dumps(config))
        if preprocessor is not None:
            (folder / name / "preprocessor_config.json").write_text(json.dumps(preprocessor))
        if fifo:
            (folder / name / fifo).unlink()
            os.mkfifo(folder / name / fifo)

    return setup


def _fifo(name: str) -> Setup:
    def setup(folder: Path, given: Inputs) -> None:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        os.mkfifo(folder / name)

    return setup


def _package(item: str, link_to_fifo: bool = False) -> Setup:
    """A copy of the CoreML package as pkg.mlpackage with `item` a FIFO, or a symlink to a FIFO beside the package."""

    def setup(folder: Path, given: Inputs) -> None:
        shutil.copytree(given.coreml, folder / "pkg.mlpackage")
        (folder / "pkg.mlpackage" / item).unlink()
        if link_to_fifo:
            os.mkfifo(folder / "pipe")
            os.symlink(folder / "pipe", folder / "pkg.mlpackage" / item)
        else:
            os.mkfifo(folder / "pkg.mlpackage" / item)

    return setup


def _text(name: str, text: str) -> Setup:
    def setup(folder: Path, given: Inputs) -> None:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)

    return setup


def _image(name: str, width: int = 8, height: int = 8) -> Setup:
    def setup(folder: Path, given: Inputs) -> None:
        from PIL import Image

        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        Image.new("L", (width, height), 7).save(folder / name)

    return setup


def _bomb(name: str) -> Setup:
    def setup(folder: Path, given: Inputs) -> None:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(given.bomb, folder / name)

    return setup


def _voc(mask: Setup) -> Setup:
    return _all(_image("voc/JPEGImages/a.png", 16, 16), mask)


def _coco(images: list[dict], name: str = "coco/annotations.json") -> Setup:
    doc = {"images": images, "annotations": [], "categories": [{"id": 1, "name": "person"}]}
    return _all(_image("coco/a.png"), _image("coco/b.png"), _text(name, json.dumps(doc)))


def _onnx_meta(name: str, which: str = "onnx", **changes: str) -> Setup:
    def setup(folder: Path, given: Inputs) -> None:
        import onnx

        model = onnx.load(str(getattr(given, which)))
        for prop in model.metadata_props:
            if prop.key in changes:
                prop.value = changes[prop.key]
        for key in set(changes) - {p.key for p in model.metadata_props}:
            model.metadata_props.append(onnx.StringStringEntryProto(key=key, value=changes[key]))
        onnx.save(model, str(folder / name))

    return setup


def _onnx_external(name: str, location: str, length: int | None = None, link: str | None = None) -> Setup:
    """The export with its largest weight moved "outside the file", at `location` (optionally a symlink to `link`)."""

    def setup(folder: Path, given: Inputs) -> None:
        import onnx

        model = onnx.load(str(given.onnx))
        tensor = max(model.graph.initializer, key=lambda t: len(t.raw_data))
        size = len(tensor.raw_data)
        tensor.ClearField("raw_data")
        tensor.data_location = onnx.TensorProto.EXTERNAL
        for key, value in (("location", location), ("offset", "0"), ("length", str(length if length is not None else size))):
            tensor.external_data.append(onnx.StringStringEntryProto(key=key, value=value))
        (folder / "art").mkdir()
        (folder / "art" / name).write_bytes(model.SerializeToString())
        if link:
            os.symlink(link, folder / "art" / location)

    return setup


def _safetensors_as_int(name: str) -> Setup:
    """mvit's own .safetensors with every F32 tensor relabelled I32 in the header (same bytes, same length)."""

    def setup(folder: Path, given: Inputs) -> None:
        data = given.mvit.read_bytes()
        (n,) = struct.unpack("<Q", data[:8])
        header = data[8 : 8 + n].replace(b'"dtype":"F32"', b'"dtype":"I32"')
        assert len(header) == n and b'"F32"' not in header
        (folder / name).write_bytes(data[:8] + header + data[8 + n :])

    return setup


def _bench_doc(name: str, latency: float) -> Setup:
    def setup(folder: Path, given: Inputs) -> None:
        from bench_docs import document, lognormal_times, result

        doc = document([result(lognormal_times(10.0, 30, 1))])
        doc["results"][0]["times_ms"][3] = latency
        (folder / name).write_text(json.dumps(doc))

    return setup


def _copy(name: str, which: str) -> Setup:
    def setup(folder: Path, given: Inputs) -> None:
        shutil.copy(getattr(given, which), folder / name)

    return setup


def _deep(depth: int) -> str:
    return "[" * depth + "]" * depth


ANSI_LABELS = {"0": "\x1b[2J\x1b[31mred", "1": "\x1b]0;pwned\x07title", "2": "plain"}
FUNCTIONS_3000 = json.dumps([{"name": f"A_{64 + i}", "image_size": 64 + i, "config": "A"} for i in range(3000)])
MANY_SIZES = ",".join(str(32 + i) for i in range(993))
EXPORT = "--target onnx --image-size 64 --precision fp32 --out out"
CAL = "mvit-export --model mobilevit_xxs --target onnx --image-size 64 --precision int8 --calibration cal --out out"
EVAL_CLS = "mvit-eval --checkpoint hf --data data"


# --- the table ---------------------------------------------------------------------------------------


class Case(NamedTuple):
    id: str
    bullet: str  # the issue bullet this case covers
    command: str  # the command line, run in the case's folder
    setup: Setup
    exit: int
    words: tuple[str, ...]  # in the one stderr line
    absent: tuple[str, ...] = ("out/*",)  # globs that must match nothing afterwards
    subprocess: bool = False  # the installed entry point with a timeout (a FIFO could block in native code)

    @property
    def tool(self) -> str:
        return self.command.split()[0]


NOT_REGULAR = ("a pipe, not a regular file", "must be a file on disk")
WEIGHT_BIN = "Data/com.apple.CoreML/weights/weight.bin"

CASES: list[Case] = [
    # Hangs: every file a stranger names is opened only if it is a regular file.
    Case(
        "export-hf-config-json-fifo",
        HANGS,
        f"mvit-export --checkpoint hf {EXPORT}",
        _hf(fifo="config.json"),
        2,
        ("hf/config.json", *NOT_REGULAR),
        subprocess=True,
    ),
    Case(
        "export-hf-model-safetensors-fifo",
        HANGS,
        f"mvit-export --checkpoint hf {EXPORT}",
        _hf(fifo="model.safetensors"),
        2,
        ("hf/model.safetensors", *NOT_REGULAR),
        subprocess=True,
    ),
    Case(
        "export-checkpoint-safetensors-fifo",
        HANGS,
        f"mvit-export --checkpoint pipe.safetensors {EXPORT}",
        _fifo("pipe.safetensors"),
        2,
        ("pipe.safetensors", *NOT_REGULAR),
        subprocess=True,
    ),
    Case("export-checkpoint-pt-fifo", HANGS, f"mvit-export --checkpoint pipe.pt {EXPORT}", _fifo("pipe.pt"), 2, ("pipe.pt", *NOT_REGULAR), subprocess=True),
    Case(
        "eval-image-fifo", HANGS, EVAL_CLS, _all(_hf(), _image("data/thing 0/a.png"), _fifo("data/thing 1/b.png")), 2, ("b.png", *NOT_REGULAR), subprocess=True
    ),
    Case(
        "export-labels-fifo",
        HANGS,
        f"mvit-export --model mobilevit_xxs --labels labels.txt {EXPORT}",
        _fifo("labels.txt"),
        2,
        ("labels.txt", *NOT_REGULAR),
        subprocess=True,
    ),
    Case("verify-onnx-fifo", HANGS, "mvit-verify pipe.onnx", _fifo("pipe.onnx"), 2, ("pipe.onnx", *NOT_REGULAR), subprocess=True),
    Case("verify-tflite-fifo", HANGS, "mvit-verify pipe.tflite", _fifo("pipe.tflite"), 2, ("pipe.tflite", *NOT_REGULAR), subprocess=True),
    Case("bench-ab-tflite-fifo", HANGS, "mvit-bench ab pipe.tflite pipe.tflite", _fifo("pipe.tflite"), 2, ("pipe.tflite", *NOT_REGULAR), subprocess=True),
    Case(
        "verify-mlpackage-weight-bin-fifo",
        HANGS,
        "mvit-verify pkg.mlpackage",
        _package(WEIGHT_BIN),
        2,
        ("pkg.mlpackage/" + WEIGHT_BIN, *NOT_REGULAR),
        absent=("pkg.mlpackage.verify.json",),
        subprocess=True,
    ),
    Case(
        "verify-mlpackage-manifest-fifo",
        HANGS,
        "mvit-verify pkg.mlpackage",
        _package("Manifest.json"),
        2,
        ("pkg.mlpackage/Manifest.json", *NOT_REGULAR),
        absent=("pkg.mlpackage.verify.json",),
        subprocess=True,
    ),
    Case(
        "verify-mlpackage-weight-bin-symlink-to-fifo",
        HANGS,
        "mvit-verify pkg.mlpackage",
        _package(WEIGHT_BIN, link_to_fifo=True),
        2,
        ("pkg.mlpackage/" + WEIGHT_BIN, *NOT_REGULAR),
        absent=("pkg.mlpackage.verify.json",),
        subprocess=True,
    ),
    Case(
        "verify-mlpackage-manifest-symlink-to-fifo",
        HANGS,
        "mvit-verify pkg.mlpackage",
        _package("Manifest.json", link_to_fifo=True),
        2,
        ("pkg.mlpackage/Manifest.json", *NOT_REGULAR),
        absent=("pkg.mlpackage.verify.json",),
        subprocess=True,
    ),
    Case(
        "eval-mlpackage-weight-bin-fifo",
        HANGS,
        "mvit-eval --model mobilevit_xxs --runner mil-reference --data data pkg.mlpackage",
        _all(_package(WEIGHT_BIN), _image("data/tench/a.png")),
        2,
        ("pkg.mlpackage/" + WEIGHT_BIN, *NOT_REGULAR),
        subprocess=True,
    ),
    Case(
        "verify-onnx-3000-recorded-functions",
        HANGS,
        "mvit-verify many.onnx",
        _onnx_meta("many.onnx", functions=FUNCTIONS_3000),
        2,
        ("records 3000 functions", "at most 32", "re-export"),
        absent=("many.onnx.verify.json",),
    ),
    Case(
        "verify-onnx-function-recorded-twice",
        HANGS,
        "mvit-verify twice.onnx",
        _onnx_meta("twice.onnx", functions=json.dumps([{"name": "A_64", "image_size": 64, "config": "A"}] * 2)),
        2,
        ("same function twice", "re-export"),
        absent=("twice.onnx.verify.json",),
    ),
    # Exit 3 where the input is bad.
    Case("eval-decompression-bomb-image", EXIT3, EVAL_CLS, _all(_hf(), _bomb("data/thing 0/bomb.png")), 2, ("bomb.png", "million pixels", "resize it first")),
    Case("export-calibration-decompression-bomb", EXIT3, CAL, _bomb("cal/bomb.png"), 2, ("calibration image", "bomb.png", "million pixels")),
    Case(
        "eval-voc-mask-decompression-bomb",
        EXIT3,
        "mvit-eval --model deeplabv3_mobilevit_xxs --data voc",
        _voc(_bomb("voc/SegmentationClass/a.png")),
        2,
        ("SegmentationClass/a.png", "unreadable mask", "million pixels"),
    ),
    Case(
        "eval-csv-200kb-field",
        EXIT3,
        "mvit-eval --checkpoint hf --data data.csv",
        _all(_hf(), _text("data.csv", "file,label\n" + "a" * 200_000 + ",thing 0\n")),
        2,
        ("data.csv", "not a CSV", "field"),
    ),
    Case(
        "eval-coco-100000-deep",
        EXIT3,
        "mvit-eval --model ssdlite_mobilevit_xxs --data coco",
        _text("coco/annotations.json", _deep(100_000)),
        2,
        ("annotations.json", "not valid JSON", "nested too deeply"),
    ),
    Case(
        "eval-coco-image-id-list",
        EXIT3,
        "mvit-eval --model ssdlite_mobilevit_xxs --data coco",
        _coco([{"id": [1], "file_name": "a.png"}]),
        2,
        ("annotations.json", "id [1]", "ids are numbers"),
    ),
    Case(
        "verify-onnx-metadata-100000-deep",
        EXIT3,
        "mvit-verify deep.onnx",
        _onnx_meta("deep.onnx", preprocess=_deep(100_000)),
        2,
        ("deep.onnx", "no mvit export metadata"),
        absent=("deep.onnx.verify.json",),
    ),
    Case(
        "verify-onnx-functions-100000-deep",
        EXIT3,
        "mvit-verify deepf.onnx",
        _onnx_meta("deepf.onnx", functions=_deep(100_000)),
        2,
        ("recorded functions are malformed",),
        absent=("deepf.onnx.verify.json",),
    ),
    Case(
        "verify-onnx-external-etc-passwd",
        EXIT3,
        "mvit-verify art/m.onnx",
        _onnx_external("m.onnx", "/etc/passwd"),
        2,
        ("m.onnx", "'/etc/passwd'", "outside the artefact's folder"),
        absent=("art/m.onnx.verify.json",),
    ),
    Case(
        "verify-onnx-external-parent-folder",
        EXIT3,
        "mvit-verify art/m.onnx",
        _all(_text("secret.bin", "x" * 64), _onnx_external("m.onnx", "../secret.bin")),
        2,
        ("'../secret.bin'", "outside the artefact's folder"),
        absent=("art/m.onnx.verify.json",),
    ),
    Case(
        "verify-onnx-external-dev-zero-16gb",
        EXIT3,
        "mvit-verify art/m.onnx",
        _onnx_external("m.onnx", "/dev/zero", 16 * 2**30),
        2,
        ("'/dev/zero'", "outside the artefact's folder"),
        absent=("art/m.onnx.verify.json",),
    ),
    Case(
        "verify-onnx-external-symlink-to-dev-zero",
        EXIT3,
        "mvit-verify art/m.onnx",
        _onnx_external("m.onnx", "w.bin", 16 * 2**30, link="/dev/zero"),
        2,
        ("'w.bin'", "outside the artefact's folder"),
        absent=("art/m.onnx.verify.json",),
    ),
    Case(
        "verify-onnx-external-beyond-its-file",
        EXIT3,
        "mvit-verify art/m.onnx",
        _all(_onnx_external("m.onnx", "w.bin", 16 * 2**30), _text("art/w.bin", "x" * 64)),
        2,
        ("'w.bin'", "which holds 64", "damaged"),
        absent=("art/m.onnx.verify.json",),
    ),
    # Wrong exit codes.
    Case(
        "export-safetensors-f32-relabelled-i32",
        WRONG_EXIT,
        f"mvit-export --checkpoint ints.safetensors {EXPORT}",
        _safetensors_as_int("ints.safetensors"),
        2,
        ("ints.safetensors", "does not fit", "wrong type", "torch.int32"),
    ),
    Case(
        "bench-ab-classifier-vs-segmenter",
        WRONG_EXIT,
        "mvit-bench ab cls.onnx seg.onnx",
        _all(_copy("cls.onnx", "onnx"), _copy("seg.onnx", "segmenter")),
        2,
        ("classification", "segmentation", "of one task"),
    ),
    # Silently accepted.
    Case(
        "export-hf-id2label-0-and-00",
        SILENT,
        f"mvit-export --checkpoint hf {EXPORT}",
        _hf(id2label={"0": "a", "00": "b", "1": "c"}),
        2,
        ("hf/config.json", "'00'", "not a class number"),
    ),
    Case(
        "export-hf-id2label-full-width-key",
        SILENT,
        f"mvit-export --checkpoint hf {EXPORT}",
        _hf(id2label={"0": "a", "１": "b", "2": "c"}),
        2,
        ("hf/config.json", "'１'", "not a class number"),
    ),
    Case(
        "export-hf-10mb-label",
        SILENT,
        f"mvit-export --checkpoint hf {EXPORT}",
        _hf(id2label={"0": "a" * 10_000_000, "1": "b", "2": "c"}),
        2,
        ("id2label", "10000000 characters", "up to 1000"),
    ),
    Case(
        "export-hf-10mb-of-labels",
        SILENT,
        f"mvit-export --checkpoint hf {EXPORT}",
        _hf(id2label={str(i): "x" * 1000 for i in range(10_000)}, num_labels=10_000),
        2,
        ("id2label", "10000000 characters in all", "up to 2000000"),
    ),
    Case(
        "export-labels-file-10mb",
        SILENT,
        f"mvit-export --model mobilevit_xxs --labels labels.txt {EXPORT}",
        _text("labels.txt", ("y" * 9999 + "\n") * 1000),
        2,
        ("labels.txt", "9999 characters"),
    ),
    Case(
        "export-hf-image-std-1e-30",
        SILENT,
        f"mvit-export --checkpoint hf {EXPORT}",
        _hf(preprocessor={"image_processor_type": "ViTImageProcessor", "do_normalize": True, "image_mean": [0.5, 0.5, 0.5], "image_std": [1e-30] * 3}),
        2,
        ("preprocessor_config.json", "image_std", "0.001", "--std"),
    ),
    Case("export-std-flag-1e-30", SILENT, f"mvit-export --model mobilevit_xxs --std 1e-30 {EXPORT}", _nothing, 2, ("--std", "at least 0.001")),
    Case("eval-thin-image", SILENT, EVAL_CLS, _all(_hf(), _image("data/thing 0/thin.png", 100_000, 1)), 2, ("thin.png", "100000x1", "crop it first")),
    Case("export-calibration-thin-image", SILENT, CAL, _image("cal/thin.png", 1, 100_000), 2, ("calibration image", "thin.png", "1x100000", "crop it first")),
    Case(
        "export-image-size-full-width-and-underscore",
        SILENT,
        "mvit-export --model mobilevit_xxs --target onnx --image-size ６４,9_6 --out out",
        _nothing,
        2,
        ("--image-size", "'６４'", "not a whole number"),
    ),
    Case(
        "export-image-size-underscore",
        SILENT,
        "mvit-export --model mobilevit_xxs --target onnx --image-size 9_6 --out out",
        _nothing,
        2,
        ("--image-size", "'9_6'", "not a whole number"),
    ),
    Case(
        "export-993-sizes",
        SILENT,
        f"mvit-export --model mobilevit_xxs --target onnx --image-size {MANY_SIZES} --out out",
        _nothing,
        2,
        ("993 sizes", "at most 16"),
    ),
    Case(
        "eval-coco-shared-image-id",
        SILENT,
        "mvit-eval --model ssdlite_mobilevit_xxs --data coco",
        _coco([{"id": 1, "file_name": "a.png"}, {"id": 1, "file_name": "b.png"}]),
        2,
        ("annotations.json", "id 1", "listed twice"),
    ),
    Case(
        "bench-compare-latency-1e-300",
        SILENT,
        "mvit-bench compare base.json tiny.json",
        _all(_bench_doc("base.json", 10.0), _bench_doc("tiny.json", 1e-300)),
        2,
        ("tiny.json", "times_ms[3]", "1e-300 ms"),
    ),
    Case(
        "bench-compare-latency-1e300",
        SILENT,
        "mvit-bench compare base.json huge.json",
        _all(_bench_doc("base.json", 10.0), _bench_doc("huge.json", 1e300)),
        2,
        ("huge.json", "times_ms[3]", "1e+300 ms"),
    ),
    # Terminal injection.
    Case(
        "eval-ansi-labels-escaped",
        ESCAPES,
        EVAL_CLS,
        _all(_hf(id2label=ANSI_LABELS), _image("data/cat/a.png")),
        2,
        ("'cat'", "\\x1b[2J\\x1b[31mred", "\\x1b]0;pwned\\x07title"),
    ),
    Case(
        "export-ansi-label-key-escaped",
        ESCAPES,
        f"mvit-export --checkpoint hf {EXPORT}",
        _hf(id2label={"0": "a", "\x1b[31m1": "b", "2": "c"}),
        2,
        ("\\x1b[31m1", "not a class number"),
    ),
]

# When SIGTERM comes, as a share of one uninterrupted run of the same command on this machine now:
# during the imports, while the MIL reference is set up, while it runs. Shares, not seconds, so a
# fast idle machine and a slow shared one both interrupt each phase.
SIGTERM_DELAYS = (0.1, 0.3, 0.5)
SIGTERM_COMMAND = "mvit-verify mobilevit_xxs_A_64_fp32.mlpackage"


# A note quoting a file name from a folder a stranger handed over (`mvit-eval --data data exports/*`):
# the CoreML package cannot run here, so mvit-eval notes that it skipped it, by name.
ESCAPED_NOTE_PACKAGE = "\x1b]0;pwned\x07\x1b[2Jred.mlpackage"
ESCAPED_NOTE_COMMAND = "mvit-eval --checkpoint hf --data data"


def describe_cases() -> list[dict]:
    """One row per case for docs/reliability.md (the SIGTERM runs and the escaped note included)."""
    rows = [{"id": c.id, "command": c.command, "exit": c.exit, "bullet": c.bullet, "asserted": _asserted(c)} for c in CASES]
    rows.append(
        {
            "id": "eval-ansi-file-name-in-note-escaped",
            "command": f"{ESCAPED_NOTE_COMMAND} {ascii(ESCAPED_NOTE_PACKAGE)}",
            "exit": 0,
            "bullet": ESCAPES,
            "asserted": "the `note: skipped` line shows the name with `\\x1b`, `\\x07`; no control characters on stderr",
        }
    )
    rows += [
        {
            "id": f"subprocess-sigterm-{delay:.0%}-into-verify-coreml",
            "command": f"{SIGTERM_COMMAND}  (SIGTERM at {delay:.0%} of a whole run)",
            "exit": 130,
            "bullet": SIGNALS,
            "asserted": "one `error: interrupted` line; no .verify.json; no staging left",
        }
        for delay in SIGTERM_DELAYS
    ]
    return rows


def _asserted(case: Case) -> str:
    parts = ["one `error:` line with " + ", ".join(f"'{w}'" for w in case.words), "no control characters on stderr"]
    if case.absent:
        parts.append("nothing at " + ", ".join(f"`{a}`" for a in case.absent))
    if case.subprocess:
        parts.append(f"run as a subprocess, killed as a hang after {TIMEOUT_S} s")
    return "; ".join(parts)


# --- running a case ----------------------------------------------------------------------------------


class Hung(BaseException):
    """The watchdog fired: the command did not finish within TIMEOUT_S."""


def _entry_point(tool: str):
    if tool == "mvit-bench":
        from mvit.benchmarks.cli import main
    elif tool == "mvit-eval":
        from mvit.evaluation.cli import main
    elif tool == "mvit-verify":
        from mvit.exporters.cli import verify_main as main
    else:
        from mvit.exporters.cli import main
    return main


def _in_process(case: Case, argv: list[str], capsys) -> tuple[int, str, str]:
    def hung(signum, frame):
        raise Hung(f"{case.id} ran past {TIMEOUT_S} s")

    previous = signal.signal(signal.SIGALRM, hung)
    signal.alarm(TIMEOUT_S)
    try:
        with pytest.raises(SystemExit) as info:
            _entry_point(case.tool)(argv)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    out = capsys.readouterr()
    return info.value.code, out.out, out.err


def _as_subprocess(case: Case, argv: list[str], folder: Path) -> tuple[int, str, str]:
    try:
        done = subprocess.run([str(BIN / case.tool), *argv], cwd=folder, capture_output=True, text=True, timeout=TIMEOUT_S, env=_env())
    except subprocess.TimeoutExpired:
        pytest.fail(f"{case.id}: `{case.command}` still running after {TIMEOUT_S} s (a hang)")
    return done.returncode, done.stdout, done.stderr


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_case(case: Case, inputs: Inputs, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MVIT_DEBUG", raising=False)
    case.setup(tmp_path, inputs)
    argv = shlex.split(case.command)[1:]
    code, out, err = _as_subprocess(case, argv, tmp_path) if case.subprocess else _in_process(case, argv, capsys)

    assert code == case.exit, (out, err)
    assert "Traceback" not in out + err
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "internal error" not in lines[0]
    assert lines[0].isprintable(), repr(lines[0])  # no ESC, BEL or CR reaches the terminal
    for word in case.words:
        assert word in lines[0], (word, lines[0])
    for pattern in case.absent:
        assert not list(tmp_path.glob(pattern)), pattern
    assert not _staging(tmp_path), _staging(tmp_path)


def test_the_table_documents_every_case():
    rows = describe_cases()
    assert len({r["id"] for r in rows}) == len(rows) == len(CASES) + len(SIGTERM_DELAYS) + 1
    assert all(r["command"].split()[0] in ("mvit-export", "mvit-verify", "mvit-eval", "mvit-bench") for r in rows)
    assert all(r["bullet"] and r["asserted"] and r["exit"] in (0, 1, 2, 130) for r in rows)
    assert {HANGS, EXIT3, WRONG_EXIT, SILENT, ESCAPES, SIGNALS} == {r["bullet"] for r in rows}


def test_note_lines_escape_control_characters_from_file_names(inputs: Inputs, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    _all(_hf(), _image("data/thing 0/a.png"))(tmp_path, inputs)
    shutil.copytree(inputs.coreml, tmp_path / ESCAPED_NOTE_PACKAGE)
    argv = [*shlex.split(ESCAPED_NOTE_COMMAND)[1:], ESCAPED_NOTE_PACKAGE]
    code, out, err = _in_process(Case("note", ESCAPES, ESCAPED_NOTE_COMMAND, _nothing, 0, ()), argv, capsys)
    assert code == 0, err
    notes = [line for line in err.splitlines() if line.startswith("note: skipped")]
    assert len(notes) == 1 and "\\x1b]0;pwned\\x07\\x1b[2Jred.mlpackage" in notes[0], err
    assert all(line.isprintable() for line in err.splitlines()), repr(err)  # no ESC or BEL reaches the terminal


@pytest.fixture(scope="module")
def coreml_package(shared_export) -> Path:
    result = shared_export("mobilevit_xxs", "coreml", precision="fp32", image_size=64)
    assert result.verdict == "pass", result.report["failed"]
    return result.path


@pytest.fixture(scope="module")
def whole_verify_seconds(coreml_package, tmp_path_factory) -> float:
    """One uninterrupted mvit-verify of the package, timed: the SIGTERM delays are shares of it."""
    folder = tmp_path_factory.mktemp("round3-whole-verify")
    shutil.copytree(coreml_package, folder / coreml_package.name)
    started = time.monotonic()
    done = subprocess.run([str(BIN / "mvit-verify"), coreml_package.name], cwd=folder, env=_env(), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    return time.monotonic() - started


@pytest.mark.parametrize("delay", SIGTERM_DELAYS, ids=[f"{d:.0%}" for d in SIGTERM_DELAYS])
def test_sigterm_during_verify_of_a_coreml_package_exits_130(delay, coreml_package, whole_verify_seconds, tmp_path):
    package = tmp_path / coreml_package.name
    shutil.copytree(coreml_package, package)
    # The machine can speed up between the timed run and this one: a run that is already over was not
    # interrupted, so it is tried again at half the delay (twice at most), never counted as a pass.
    for attempt in range(3):
        proc = subprocess.Popen([str(BIN / "mvit-verify"), package.name], cwd=tmp_path, env=_env(), text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        time.sleep(delay * whole_verify_seconds / 2**attempt)
        if proc.poll() is None:
            break
        out, err = proc.communicate()
        for left in tmp_path.glob("*.verify.json"):
            left.unlink()
    else:
        pytest.fail(f"mvit-verify kept finishing before SIGTERM (exit {proc.returncode}): {err}")
    stop_and_check_interrupted(proc, signal.SIGTERM)
    assert not list(tmp_path.glob("*.verify.json"))
    assert not _staging(tmp_path)
