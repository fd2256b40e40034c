"""Round three of hostile input, part A: silently wrong inputs, misleading messages, user files.

Each row of CASES is one command a user could type, run through the CLI in a fresh folder after
`setup` wrote its inputs (real files: exports, reports, datasets). Every case asserts the exit
code, that stderr is exactly one `error: ` line with the helpful words (exit 2) or that the words
are in what the command showed, no traceback, and its own `check` of what is on disk afterwards
(the user's files byte-identical, nothing written over an input). `describe_cases()` turns the
table into rows for docs/reliability.md.

Beside the table: processor folders saved by transformers' own `save_pretrained` export with the
preprocessing transformers applies (checked against the processor's output), and plain progress
lines when output is not a terminal.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pytest
import torch
import transformers  # the test extra; a missing reference must fail, not skip
from model_utils import randomize_
from PIL import Image

from mvit.models.mobilevit import SIZES

# Conversion-heavy: runs in CI; `pytest -m "not slow"` skips it for a quick check.
pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent
SIZE = 64


def _cli(tool: str, *args: str, cwd: Path | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    run_env = {k: v for k, v in os.environ.items() if k != "MVIT_DEBUG"} | (env or {})
    return subprocess.run([str(BIN / tool), *args], capture_output=True, text=True, timeout=600, cwd=cwd, env=run_env)


# --- transformers' own processor folders ------------------------------------------------------------


def _hf_classifier(folder: Path, num_labels: int = 10) -> transformers.MobileViTForImageClassification:
    s = SIZES["xxs"]
    labels = {i: f"thing {i}" for i in range(num_labels)}
    config = transformers.MobileViTConfig(
        neck_hidden_sizes=s.hf_neck_hidden_sizes,
        hidden_sizes=list(s.dims),
        expand_ratio=s.expand_ratio,
        id2label=labels,
        label2id={v: k for k, v in labels.items()},
        image_size=SIZE,
    )
    model = randomize_(transformers.MobileViTForImageClassification(config).eval(), seed=5)
    model.save_pretrained(folder)
    return model


# Every processor class transformers 5 can save that mvit reads, built with transformers' defaults
# except the sizes (64 px keeps the export quick); ViT's with torchvision's ImageNet statistics too.
PROCESSORS = {
    "mobilevit-defaults": lambda: transformers.MobileViTImageProcessor(size={"shortest_edge": SIZE}, crop_size={"height": SIZE, "width": SIZE}),
    "mobilevit-pil-no-flip": lambda: transformers.MobileViTImageProcessorPil(
        size={"shortest_edge": SIZE}, crop_size={"height": SIZE, "width": SIZE}, do_flip_channel_order=False
    ),
    "vit-defaults": lambda: transformers.ViTImageProcessor(size={"height": SIZE, "width": SIZE}),
    "vit-pil-imagenet": lambda: transformers.ViTImageProcessorPil(
        size={"height": SIZE, "width": SIZE}, image_mean=[0.485, 0.456, 0.406], image_std=[0.229, 0.224, 0.225]
    ),
}


@pytest.mark.parametrize("name", list(PROCESSORS))
def test_processor_folder_saved_by_transformers_exports_with_transformers_preprocessing(name, tmp_path):
    import onnxruntime as ort

    folder = tmp_path / "fine-tune"
    hf = _hf_classifier(folder)
    processor = PROCESSORS[name]()
    processor.save_pretrained(folder)
    r = _cli("mvit-export", "--checkpoint", str(folder), "--target", "onnx", "--precision", "fp32", "--out", str(tmp_path / "out"))
    assert r.returncode == 0, r.stderr
    artefact = Path(r.stdout.split()[0])
    pixels = np.random.default_rng(0).integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)
    pixels[:8, :8] = 0  # a black corner: MobileViT's processor maps it to 0.0, a normalising one does not
    seen = transformers.AutoImageProcessor.from_pretrained(folder)(Image.fromarray(pixels), return_tensors="pt")["pixel_values"]
    with torch.no_grad():
        expected = hf(pixel_values=seen).logits.softmax(-1).numpy()
    got = ort.InferenceSession(str(artefact)).run(["probabilities"], {"image": pixels.transpose(2, 0, 1)[None].astype(np.float32)})[0]
    assert np.abs(expected - got).max() < 1e-5, name
    if name.startswith("mobilevit"):
        assert float(seen[0, :, 0, 0].abs().max()) == 0.0  # transformers applies no normalisation here


# --- the case table ------------------------------------------------------------------------------------

SILENT_WEIGHTS = "Silently wrong: mvit-verify without --checkpoint judges a checkpoint export against random weights"
SILENT_PROCESSOR = "Silently wrong: processor configs get a normalisation transformers never applies"
SILENT_CALIBRATION = "Silently wrong: --calibration with fp16 ignored; int8 without calibration exits 0 where mvit-verify exits 1"
MESSAGES = "Confusing or wrong messages"
DESTROYED = "User data destroyed: an output naming an input; folders at an artefact's final names"
MODIFIED = "The input is modified: mvit-verify rewrites the Manifest.json of the package it verifies"
FILES = "Progress and files: bench artefacts in the current folder"

STEM = "mobilevit_xxs_A_64_fp32"
ONNX = f"{STEM}.onnx"
PACKAGE = f"{STEM}.mlpackage"
EXPORT_ONNX = "mvit-export --model mobilevit_xxs --image-size 64 --target onnx --precision fp32 --out out"


class Inputs(NamedTuple):
    checkpoint: Path  # mvit .safetensors, 10 classes
    trained_onnx: Path  # exported from `checkpoint`, with its report
    random_package: Path  # CoreML, random weights, with its report
    hf_folder: Path  # config.json + model.safetensors saved by transformers


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Inputs:
    from mvit.models import create_model
    from mvit.models.checkpoints import save_checkpoint

    root = tmp_path_factory.mktemp("inputs")
    checkpoint = save_checkpoint(
        randomize_(create_model("mobilevit_xxs", num_classes=10), seed=2), root / "ck.safetensors", "mobilevit_xxs", labels=[f"class{i}" for i in range(10)]
    )
    for args in (("--checkpoint", str(checkpoint), "--target", "onnx"), ("--model", "mobilevit_xxs", "--target", "coreml")):
        r = _cli("mvit-export", *args, "--image-size", str(SIZE), "--precision", "fp32", "--out", str(root))
        assert r.returncode == 0, r.stderr
    hf_folder = root / "hf"
    _hf_classifier(hf_folder)
    return Inputs(checkpoint, root / ONNX, root / PACKAGE, hf_folder)


Setup = Callable[[Path, Inputs], None]


def _with_report(artefact: Path, folder: Path, name: str | None = None) -> None:
    name = name or artefact.name
    if artefact.is_dir():
        shutil.copytree(artefact, folder / name)
    else:
        shutil.copy2(artefact, folder / name)
    shutil.copy2(artefact.with_name(artefact.name + ".report.json"), folder / f"{name}.report.json")


def _trained(folder: Path, inputs: Inputs) -> None:
    shutil.copy2(inputs.checkpoint, folder / "ck.safetensors")
    _with_report(inputs.trained_onnx, folder)


def _package(edit: Callable[[dict], None] | None = None, indent: int = 1) -> Setup:
    def setup(folder: Path, inputs: Inputs) -> None:
        _with_report(inputs.random_package, folder)
        manifest = folder / PACKAGE / "Manifest.json"
        doc = json.loads(manifest.read_text())
        if edit:
            edit(doc)
        manifest.write_text(json.dumps(doc, indent=indent))  # valid, but not as coremltools writes it

    return setup


def _root_is_etc_passwd(doc: dict) -> None:
    doc["itemInfoEntries"][doc["rootModelIdentifier"]]["path"] = "/etc/passwd"


def _images(where: str, count: int = 2) -> Setup:
    def setup(folder: Path, inputs: Inputs) -> None:
        target = folder / where
        target.mkdir(parents=True, exist_ok=True)
        for i in range(count):
            pixels = np.random.default_rng(i).integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(target / f"img{i}.png")

    return setup


def _csv_dataset(folder: Path, inputs: Inputs) -> None:
    _images("data/images")(folder, inputs)
    (folder / "data" / "val.csv").write_text("file,label\nimages/img0.png,class1\nimages/img1.png,class3\n")


def _class_folders(folder: Path, inputs: Inputs) -> None:
    _images("classes/class1", 1)(folder, inputs)
    _images("classes/class2", 1)(folder, inputs)


def _user_folder(name: str) -> Setup:
    def setup(folder: Path, inputs: Inputs) -> None:
        (folder / name).mkdir(parents=True)
        (folder / name / "thesis.txt").write_text("years of work\n")

    return setup


def _results(folder: Path, inputs: Inputs) -> None:
    from bench_docs import document, lognormal_times, result

    for name, median in (("base.json", 10.0), ("cand.json", 10.5)):
        (folder / name).write_text(json.dumps(document([result(lognormal_times(median, 30, 1))])))


def _two_onnx(folder: Path, inputs: Inputs) -> None:
    shutil.copy2(inputs.trained_onnx, folder / "a.onnx")
    shutil.copy2(inputs.trained_onnx, folder / "b.onnx")


def _processor(type_name: str) -> Setup:
    def setup(folder: Path, inputs: Inputs) -> None:
        shutil.copytree(inputs.hf_folder, folder / "fine-tune")
        (folder / "fine-tune" / "preprocessor_config.json").write_text(json.dumps({"image_processor_type": type_name}))

    return setup


def _harness_models_is_a_file(folder: Path, inputs: Inputs) -> None:
    (folder / "ios_harness" / "App").mkdir(parents=True)
    (folder / "ios_harness" / "App" / "Models").write_text("not a folder\n")


def _my_net(folder: Path, inputs: Inputs) -> None:
    (folder / "mynet.py").write_text(
        "import torch\n\n"
        "def build():\n"
        "    torch.manual_seed(0)\n"
        "    return torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, stride=2), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),\n"
        "                               torch.nn.Flatten(), torch.nn.Linear(4, 5))\n"
    )


def _all(*setups: Setup) -> Setup:
    def setup(folder: Path, inputs: Inputs) -> None:
        for s in setups:
            s(folder, inputs)

    return setup


def _nothing(folder: Path, inputs: Inputs) -> None:
    pass


# --- what the cases check afterwards ----------------------------------------------------------------------

Check = Callable[[Path, dict], None]


def _report(path: Path) -> dict:
    return json.loads(path.read_text())


def _verify_images_judged(folder: Path, before: dict) -> None:
    samples = _report(folder / f"{ONNX}.verify.json")["verification"]["samples"]
    assert sum(s.startswith("image_") for s in samples) == 2, samples  # one image of each class folder


def _nhwc_shape(folder: Path, before: dict) -> None:
    (path,) = (folder / "out").glob("*.tflite.report.json")
    report = _report(path)
    assert report["input"] == {"name": "image", "shape": [1, SIZE, SIZE, 3], "layout": "NHWC"}


def _custom_net_exported(folder: Path, before: dict) -> None:
    (path,) = (folder / "out").glob("*.onnx.report.json")
    assert _report(path)["model"] == "mynet:build"


def _no_bench_artefacts_left(folder: Path, before: dict) -> None:
    assert not (folder / "bench-artefacts").exists()
    assert sorted(p.name for p in folder.iterdir()) == ["bench-results.json"]


class Case(NamedTuple):
    id: str
    bullet: str
    command: str  # run in the case's folder
    setup: Setup
    exit: int
    words: tuple[str, ...]  # in the one stderr line (exit 2), else in what the command showed
    not_words: tuple[str, ...] = ()
    absent: tuple[str, ...] = ()  # globs that must match nothing afterwards
    check: Check | None = None  # more on disk afterwards
    changes: tuple[str, ...] = ()  # globs of files the command may write or replace; every other file is untouched

    @property
    def tool(self) -> str:
        return self.command.split()[0]


CASES = [
    # silently wrong
    Case(
        "verify-checkpoint-export-without-checkpoint",
        SILENT_WEIGHTS,
        f"mvit-verify {ONNX}",
        _trained,
        2,
        ("ck.safetensors", "--checkpoint"),
        not_words=("re-export", "relative_error"),
    ),
    Case(
        "verify-checkpoint-export-wrong-classes",
        SILENT_WEIGHTS,
        f"mvit-verify {ONNX} --model mobilevit_xxs",
        _trained,
        2,
        ("--checkpoint",),
        not_words=("re-export", "reshape"),
    ),
    Case(
        "export-processor-class-unknown",
        SILENT_PROCESSOR,
        "mvit-export --checkpoint fine-tune --target onnx --out out",
        _processor("CLIPImageProcessor"),
        2,
        ("CLIPImageProcessor", "MobileViTImageProcessor", "--mean"),
        absent=("out/*",),
    ),
    Case(
        "export-calibration-with-fp16",
        SILENT_CALIBRATION,
        "mvit-export --model mobilevit_xxs --image-size 64 --target onnx --precision fp16 --calibration imgs --out out",
        _images("imgs"),
        2,
        ("--calibration", "fp16", "--images"),
        absent=("out/*",),
    ),
    Case(
        "export-int8-without-calibration-exits-1",
        SILENT_CALIBRATION,
        "mvit-export --checkpoint ck.safetensors --image-size 64 --target onnx --precision int8 --out out",
        _trained,
        1,
        ("not-verified", "--calibration DIR"),
        changes=("out/*",),
    ),
    # messages
    Case(
        "verify-images-class-folders",
        MESSAGES,
        f"mvit-verify {ONNX} --checkpoint ck.safetensors --images val",
        _all(_trained, _images("val/cat", 1), _images("val/dog", 1)),
        0,
        (" pass ",),
        check=_verify_images_judged,
        changes=(f"{ONNX}.verify.json",),
    ),
    Case(
        "verify-images-folder-without-images",
        MESSAGES,
        f"mvit-verify {ONNX} --checkpoint ck.safetensors --images val",
        _all(_trained, _user_folder("val/cat")),
        2,
        ("--images", "holds no images", "class folders"),
        not_words=("--calibration",),
    ),
    Case(
        "export-unknown-model-lists-ssdlite",
        MESSAGES,
        "mvit-export --model nosuch --target onnx --out out",
        _nothing,
        2,
        ("ssdlite_mobilevit_s/xs/xxs", "pkg.module:factory"),
        not_words=("...",),
    ),
    Case(
        "verify-not-an-onnx-file-names-target",
        MESSAGES,
        "mvit-verify broken.onnx",
        lambda folder, inputs: (folder / "broken.onnx").write_bytes(b"not a model"),
        2,
        ("target onnx",),
        not_words=("a onnx",),
    ),
    Case(
        "export-into-harness-checked-first",
        MESSAGES,
        "mvit-export --model mobilevit_xxs --image-size 64 --target coreml --precision fp32 --into-harness --out out",
        _harness_models_is_a_file,
        2,
        ("--into-harness", "is a file"),
        absent=("out/*",),
    ),
    Case(
        "export-nhwc-report-shape",
        MESSAGES,
        "mvit-export --model mobilevit_xxs --image-size 64 --target tflite --precision fp32 --nhwc --out out",
        _nothing,
        0,
        (" pass ",),
        check=_nhwc_shape,
        changes=("out/*",),
    ),
    Case(
        "export-factory-in-current-folder",
        MESSAGES,
        "mvit-export --model mynet:build --image-size 64 --target onnx --precision fp32 --out out",
        _my_net,
        0,
        (" pass ",),
        check=_custom_net_exported,
        changes=("out/*", "__pycache__/*"),
    ),
    # user data destroyed
    Case(
        "eval-out-is-the-dataset-csv",
        DESTROYED,
        f"mvit-eval {ONNX} --data data/val.csv --out data/val.csv",
        _all(_trained, _csv_dataset),
        2,
        ("--out", "val.csv", "reads"),
    ),
    Case("eval-md-is-the-artefact", DESTROYED, f"mvit-eval {ONNX} --data data/val.csv --md {ONNX}", _all(_trained, _csv_dataset), 2, ("--md", ONNX, "reads")),
    Case(
        "eval-out-is-a-dataset-image",
        DESTROYED,
        f"mvit-eval {ONNX} --data classes --out classes/class1/img0.png",
        _all(_trained, _class_folders),
        2,
        ("--out", "dataset"),
    ),
    Case(
        "eval-md-inside-the-package",
        DESTROYED,
        f"mvit-eval {PACKAGE} --data classes --md {PACKAGE}/Manifest.json",
        _all(_package(), _class_folders),
        2,
        ("--md", "inside", PACKAGE),
    ),
    Case("bench-compare-out-is-base", DESTROYED, "mvit-bench compare base.json cand.json --out base.json", _results, 2, ("--out", "base.json", "reads")),
    Case("bench-ab-out-is-a", DESTROYED, "mvit-bench ab a.onnx b.onnx --out a.onnx", _two_onnx, 2, ("--out", "a.onnx", "reads")),
    Case(
        "bench-profile-out-is-the-artefact",
        DESTROYED,
        "mvit-bench profile a.onnx --out a.json",
        _all(_two_onnx, lambda folder, inputs: os.link(folder / "a.onnx", folder / "a.json")),
        2,
        ("--out", "reads"),
    ),
    Case(
        "export-folder-at-artefact-name",
        DESTROYED,
        EXPORT_ONNX,
        _user_folder(f"out/{ONNX}"),
        2,
        (f"out/{ONNX}", "folder mvit did not write", "--out"),
        absent=(f"out/{ONNX}.report.json",),
    ),
    Case(
        "export-folder-at-report-name",
        DESTROYED,
        EXPORT_ONNX,
        _user_folder(f"out/{ONNX}.report.json"),
        2,
        (f"{ONNX}.report.json", "folder mvit did not write"),
        absent=(f"out/{ONNX}",),
    ),
    Case(
        "export-folder-at-verify-report-name",
        DESTROYED,
        EXPORT_ONNX,
        _user_folder(f"out/{ONNX}.verify.json"),
        2,
        (f"{ONNX}.verify.json", "folder mvit did not write"),
        absent=(f"out/{ONNX}",),
    ),
    Case(
        "export-coreml-folder-at-package-name",
        DESTROYED,
        "mvit-export --model mobilevit_xxs --image-size 64 --target coreml --precision fp32 --out out",
        _user_folder(f"out/{PACKAGE}"),
        2,
        (PACKAGE, "folder mvit did not write"),
        absent=(f"out/{PACKAGE}.report.json",),
    ),
    Case(
        "verify-folder-at-verify-report-name",
        DESTROYED,
        f"mvit-verify {ONNX} --checkpoint ck.safetensors",
        _all(_trained, _user_folder(f"{ONNX}.verify.json")),
        2,
        (f"{ONNX}.verify.json", "folder mvit did not write"),
    ),
    # the input is modified
    Case("verify-reformatted-manifest-left-as-it-is", MODIFIED, f"mvit-verify {PACKAGE}", _package(), 0, (" pass ",), changes=(f"{PACKAGE}.verify.json",)),
    Case(
        "verify-manifest-root-etc-passwd-left-as-it-is",
        MODIFIED,
        f"mvit-verify {PACKAGE}",
        _package(_root_is_etc_passwd),
        2,
        (PACKAGE,),
        absent=(f"{PACKAGE}.verify.json",),
    ),
    # files
    Case(
        "bench-run-leaves-no-artefacts-here",
        FILES,
        "mvit-bench run -m mobilevit_xxs -c A -r onnxruntime --image-size 64 --runs 2 --warmups 0 --no-report",
        _nothing,
        0,
        ("wrote bench-results.json",),
        check=_no_bench_artefacts_left,
        changes=("bench-results.json",),
    ),
]


def describe_cases() -> list[dict]:
    """One row per case for docs/reliability.md."""
    rows = [{"id": c.id, "command": c.command, "exit": c.exit, "bullet": c.bullet, "asserted": _asserted(c)} for c in CASES]
    rows += [
        {
            "id": f"processor-{name}",
            "command": "mvit-export --checkpoint FOLDER --target onnx  (FOLDER saved by transformers)",
            "exit": 0,
            "bullet": SILENT_PROCESSOR,
            "asserted": "the ONNX artefact fed raw pixels gives transformers' probabilities for its processor's tensor (1e-5)",
        }
        for name in PROCESSORS
    ]
    rows.append(
        {
            "id": "progress-lines-when-piped",
            "command": f"{EXPORT_ONNX}  (stdout and stderr piped)",
            "exit": 0,
            "bullet": "Progress and files: no progress when output is not a terminal",
            "asserted": "stderr has plain `mvit-export: onnx: export + verify (1 of 1) (m:ss elapsed)` lines; stdout only the result line",
        }
    )
    rows.append(
        {
            "id": "bench-progress-off-stdout",
            "command": "mvit-bench run ... > results  (stdout piped)",
            "exit": 0,
            "bullet": "Progress and files: mvit-bench's bars off stdout",
            "asserted": "stdout has no bar or progress line; stderr has the plain progress lines",
        }
    )
    return rows


def _asserted(case: Case) -> str:
    said = ("one `error:` line with " if case.exit == 2 else "shows ") + ", ".join(f"'{w}'" for w in case.words)
    parts = [said]
    if case.not_words:
        parts.append("never " + ", ".join(f"'{w}'" for w in case.not_words))
    if case.absent:
        parts.append("nothing at " + ", ".join(f"`{a}`" for a in case.absent))
    kept = "every file there before is byte-identical, mtime too"
    parts.append(kept + (" (except " + ", ".join(f"`{c}`" for c in case.changes) + ")" if case.changes else ""))
    return "; ".join(parts)


def _snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    return {str(p.relative_to(folder)): (p.read_bytes(), p.stat().st_mtime_ns) for p in folder.rglob("*") if p.is_file() and not p.is_symlink()}


def _main(tool: str):
    if tool == "mvit-export":
        from mvit.exporters.cli import main
    elif tool == "mvit-verify":
        from mvit.exporters.cli import verify_main as main
    elif tool == "mvit-bench":
        from mvit.benchmarks.cli import main
    else:
        from mvit.evaluation.cli import main
    return main


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_case(case: Case, inputs: Inputs, tmp_path, monkeypatch, capsys):
    from fnmatch import fnmatch

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MVIT_DEBUG", raising=False)
    case.setup(tmp_path, inputs)
    before = _snapshot(tmp_path)
    with pytest.raises(SystemExit) as info:
        _main(case.tool)(shlex.split(case.command)[1:])
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    assert info.value.code == case.exit, (out, err)
    shown = out + err
    if case.exit == 2:
        lines = err.splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), err
        shown = lines[0]
    for word in case.words:
        assert word in shown, (word, shown)
    for word in case.not_words:
        assert word not in shown, (word, shown)
    for pattern in case.absent:
        assert not list(tmp_path.glob(pattern)), pattern
    after = _snapshot(tmp_path)
    for name, (data, mtime) in before.items():
        if any(fnmatch(name, c) for c in case.changes):
            continue
        assert name in after, f"{name} was deleted"
        assert after[name] == (data, mtime), f"{name} was changed"
    if case.check:
        case.check(tmp_path, before)


def test_the_table_documents_every_case():
    rows = describe_cases()
    assert len({r["id"] for r in rows}) == len(rows)
    assert all(r["bullet"] and r["asserted"] and r["exit"] in (0, 1, 2) for r in rows)
    covered = {r["bullet"] for r in rows}
    assert {SILENT_WEIGHTS, SILENT_PROCESSOR, SILENT_CALIBRATION, MESSAGES, DESTROYED, MODIFIED, FILES} <= covered


# --- progress where output is not a terminal ------------------------------------------------------------


def test_progress_lines_when_piped(tmp_path):
    # A short interval stands in for a long export: the lines are the same a 6-minute job prints every 30 s.
    r = _cli("mvit-export", *shlex.split(EXPORT_ONNX)[1:], cwd=tmp_path, env={"MVIT_PROGRESS_SECONDS": "0.1"})
    assert r.returncode == 0, r.stderr
    assert len(r.stdout.splitlines()) == 1 and " pass " in r.stdout  # results only: progress never goes to stdout
    progress = [line for line in r.stderr.splitlines() if line.startswith("mvit-export: onnx: export + verify (1 of 1) (")]
    assert progress and progress[-1].endswith(" elapsed)"), r.stderr
    assert "Traceback" not in r.stderr


def test_bench_progress_stays_off_stdout(tmp_path):
    r = _cli(
        "mvit-bench",
        "run",
        "-m",
        "mobilevit_xxs",
        "-c",
        "A",
        "-r",
        "pytorch",
        "--image-size",
        "64",
        "--runs",
        "200",
        "--warmups",
        "0",
        "--no-report",
        "--out",
        "r.json",
        cwd=tmp_path,
        env={"MVIT_PROGRESS_SECONDS": "0.1"},
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["wrote r.json"], r.stdout  # what a pipe into a file gets: no bar, no progress
    assert any(line.startswith("mvit-bench: ") and line.endswith(" elapsed)") for line in r.stderr.splitlines()), r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.json"]  # no bench-artefacts/ left here


def test_install_hint_keeps_its_brackets(tmp_path):
    """A machine without ONNX Runtime, made by a package of that name that fails to import: the
    skipped row's hint must read pip install 'mvit[onnx]', not lose `[onnx]` to rich's markup."""
    blocker = tmp_path / "blocker" / "onnxruntime"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text("raise ImportError('onnxruntime is not installed here')\n")
    r = _cli(
        "mvit-bench",
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
        "2",
        "--warmups",
        "0",
        "--no-report",
        "--out",
        "r.json",
        cwd=tmp_path,
        env={"PYTHONPATH": str(tmp_path / "blocker")},
    )
    assert r.returncode == 0, r.stderr
    assert "pip install 'mvit[onnx]'" in r.stderr, r.stderr
    assert "onnxruntime" not in r.stdout  # the note is not a result: it stays off stdout
