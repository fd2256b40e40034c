"""`mvit-export` and `mvit-verify`: thin typer layers over api.export_model / api.verify_artefact.

Exit codes: 0 ok, 1 a verification gate failed, 2 bad input (one line on stderr, no traceback).
"""

from __future__ import annotations

import logging
import os
import sys
import warnings
from pathlib import Path
from typing import Optional

# Before torch is imported (torch.hub imports tqdm, which reads TQDM_* once): the converters'
# own tqdm bars would bury our progress bar. MVIT_DEBUG=1 keeps them.
if not os.environ.get("MVIT_DEBUG"):
    os.environ.setdefault("TQDM_DISABLE", "1")

import typer  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn  # noqa: E402

from .base import ExportError  # noqa: E402
from .targets import target_names  # noqa: E402

VERIFIER_HELP = ("CoreML: auto (Apple's runtime on macOS, the MIL reference evaluator elsewhere) | "
                 "mil-reference | coreml-runtime (macOS) | both (macOS: each judged against PyTorch)")
EXIT_FAILED_VERIFICATION = 1
EXIT_BAD_INPUT = 2
_err = Console(stderr=True, highlight=False)

export_app = typer.Typer(add_completion=False, help="Export a MobileViT model to CoreML, ONNX or TFLite and verify its numerics.")
verify_app = typer.Typer(add_completion=False, help="Verify an existing export against its PyTorch model.")


def _human_size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


def _fail(message: str, code: int = EXIT_BAD_INPUT) -> int:
    _err.print(f"error: {message}", markup=False, soft_wrap=True)
    return code


@export_app.command()
def export(
    target: str = typer.Option("coreml", help="coreml | onnx | tflite | all"),
    model: Optional[str] = typer.Option(None, help="Registered model name, or pkg.module:factory for your own nn.Module. Default: mobilevit_xs"),
    config: str = typer.Option("A", help="Patch config: A (2,2,2) or B (8,4,2)"),
    checkpoint: Optional[Path] = typer.Option(None, help="Weights (HF folder/file, ml-cvnets .pt, timm, or mvit .safetensors)"),
    precision: str = typer.Option("fp16", help="fp16 | fp32"),
    image_size: Optional[int] = typer.Option(None, help="Input size (square). Default: the checkpoint's, else the model's"),
    out: Path = typer.Option(Path("exports"), help="Output folder"),
    labels: Optional[Path] = typer.Option(None, help="Labels file, one per line (default: checkpoint id2label, else the model's)"),
    channel_order: Optional[str] = typer.Option(None, help="RGB | BGR the weights expect (default: checkpoint, else model spec)"),
    mask: bool = typer.Option(False, "--mask", help="Segmentation: upsample to input size and argmax inside the model"),
    raw_detection: bool = typer.Option(False, "--raw-detection", help="Detection: raw box/score tensors; anchors saved as <artefact>.anchors.npy"),
    no_nms: bool = typer.Option(False, "--no-nms", help="Detection: decoded boxes and scores, no NMS"),
    raw_input: bool = typer.Option(False, "--raw-input", help="Take the normalised tensor instead of RGB pixels (CoreML: a TensorType input)"),
    nhwc: bool = typer.Option(False, "--nhwc", help="TFLite: NHWC input"),
    dynamic_batch: bool = typer.Option(False, "--dynamic-batch", help="ONNX: dynamic batch dimension"),
    no_verify: bool = typer.Option(False, "--no-verify", help="Skip numerics verification"),
    into_harness: bool = typer.Option(False, "--into-harness", help="Copy the .mlpackage into ios_harness/App/Models/"),
    verifier: str = typer.Option("auto", help=VERIFIER_HELP),
) -> int:
    from . import api

    targets = target_names() if target == "all" else [target]
    if target != "all" and target not in target_names():
        return _fail(f"unknown --target {target!r}: use coreml, onnx, tflite or all")
    for flag, on, needs in (("--nhwc", nhwc, "tflite"), ("--dynamic-batch", dynamic_batch, "onnx")):
        if on and needs not in targets:
            return _fail(f"{flag} applies to {needs} exports only (got --target {target})")
    if verifier != "auto" and "coreml" not in targets:
        return _fail(f"--verifier {verifier} applies to CoreML exports only (got --target {target})")
    if into_harness and "coreml" not in targets:
        return _fail("--into-harness needs --target coreml (or all)")
    options = dict(mask=mask, raw_detection=raw_detection, raw_input=raw_input, nhwc=nhwc,
                   dynamic_batch=dynamic_batch, channel_order=channel_order)
    if no_nms:
        options["nms"] = False
    code = 0
    lines: list[str] = []
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                  TimeElapsedColumn(), console=_err, transient=True) as progress:
        bar = progress.add_task("exporting", total=len(targets))
        for name in targets:
            progress.update(bar, description=f"{name}: export{' + verify' if not no_verify else ''}")
            try:
                result = api.export_model(model, name, out, config=config, precision=precision, image_size=image_size,
                                          checkpoint=checkpoint, labels=labels, verify=not no_verify,
                                          verifier=verifier if name == "coreml" else "auto", **options)
                if into_harness and name == "coreml":
                    dest = api.copy_into_harness(result.path)
                    lines.append(f"copied {result.path.name} -> {dest}")
            except ExportError as exc:
                progress.stop()
                code = max(code, _fail(str(exc)))
                if target != "all":
                    return code
                continue
            finally:
                progress.advance(bar)
            verdict = result.verdict
            detail = f" ({'; '.join(result.report['failed'])})" if result.report and result.report.get("failed") else ""
            by = f" by {result.report['verified_by']}" if result.report and result.report.get("verified_by") else ""
            n_warn = len(result.report.get("warnings", [])) if result.report else 0
            warn = f"  [{n_warn} warning(s) in {result.report_path.name}]" if n_warn else ""
            lines.insert(0, f"{result.path}  {_human_size(result.size_bytes)}  {verdict}{by}{detail}{warn}")
            if verdict == "fail":
                code = max(code, EXIT_FAILED_VERIFICATION)
    for line in lines:
        typer.echo(line)
    if lines and checkpoint is None and (model is None or ":" not in model):
        _err.print(f"note: no --checkpoint given, so {model or 'mobilevit_xs'} had RANDOM weights (seed {api.RANDOM_WEIGHTS_SEED}): "
                   "fine for testing the pipeline, useless for predictions.", markup=False, soft_wrap=True)
    return code


@verify_app.command()
def verify(
    path: Path = typer.Argument(..., help="An .onnx, .tflite or .mlpackage written by mvit-export"),
    model: Optional[str] = typer.Option(None, help="Model name (default: the one recorded in the artefact)"),
    checkpoint: Optional[Path] = typer.Option(None, help="Weights the artefact was exported from"),
    config: Optional[str] = typer.Option(None, help="A | B (default: as recorded)"),
    labels: Optional[Path] = typer.Option(None, help="Labels file, if the export used one"),
    verifier: str = typer.Option("auto", help=VERIFIER_HELP),
) -> int:
    from . import api

    try:
        report = api.verify_artefact(path, model, checkpoint=checkpoint, config=config, labels=labels, verifier=verifier)
    except ExportError as exc:
        return _fail(str(exc))
    detail = f" ({'; '.join(report['failed'])})" if report.get("failed") else ""
    by = f" by {report['verified_by']}" if report.get("verified_by") else ""
    typer.echo(f"{path}  {report['verdict']}{by}{detail}  report: {path.name}.verify.json")
    return EXIT_FAILED_VERIFICATION if report["verdict"] == "fail" else 0


def _run(app: typer.Typer, argv: list[str] | None, prog: str) -> int:
    command = typer.main.get_command(app)
    try:
        rv = command.main(args=argv, prog_name=prog, standalone_mode=False)
    except KeyboardInterrupt:
        return _fail("interrupted; no partial files were left", 130)
    except Exception as exc:
        # typer 0.29 vendors click (typer._click), so usage errors are matched by shape.
        if hasattr(exc, "format_message") and hasattr(exc, "exit_code"):
            return _fail(f"{exc.format_message()} (see {prog} --help)")
        if exc.__class__.__name__ == "Abort":
            return _fail("interrupted", 130)
        # A bug, not bad input: still one line, the traceback on request.
        if os.environ.get("MVIT_DEBUG"):
            raise
        return _fail(f"internal error: {exc.__class__.__name__}: {exc} (rerun with MVIT_DEBUG=1 for the traceback)", 3)
    return rv if isinstance(rv, int) else 0


def _quiet_converters() -> None:
    """Keep the terminal to our progress bar and result lines.

    coremltools logs that its macOS-only runtime is missing on every import off macOS, torchao
    (pulled in by litert-torch) that its CUDA kernels are missing, and both converters draw their
    own tqdm bars. None of it is actionable for a user; MVIT_DEBUG=1 keeps it all.
    """
    if os.environ.get("MVIT_DEBUG"):
        return
    for name in ("coremltools", "torchao", "torch.utils._pytree", "absl"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", message=r".*Converting a tensor to a Python.*")  # torch TracerWarning
    warnings.filterwarnings("ignore", message=r".*has not been tested with coremltools.*")


def main(argv: list[str] | None = None) -> None:
    _quiet_converters()
    sys.exit(_run(export_app, argv, "mvit-export"))


def verify_main(argv: list[str] | None = None) -> None:
    _quiet_converters()
    sys.exit(_run(verify_app, argv, "mvit-verify"))


if __name__ == "__main__":
    main()
