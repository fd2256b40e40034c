"""`mvit-export` and `mvit-verify`: thin typer layers over api.export_model / api.verify_artefact.

Exit codes: 0 ok, 1 a verification check failed (or could not run), 2 bad input, 130 interrupted,
3 a bug; every error is one `error:` line on stderr, never a traceback (mvit.cli_support).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Optional

from mvit.cli_support import PlainProgress, fail, note_sigterm_until_run, print_note, quiet_third_party, run_cli

note_sigterm_until_run()
quiet_third_party()  # before torch and the converters are imported: their C++ loggers read it once

import typer  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn  # noqa: E402

from mvit.errors import EXIT_BAD_INPUT, EXIT_FAILED, MvitError, one_line  # noqa: E402, F401
from mvit.models.checkpoints.validate import MIN_STD  # noqa: E402

from . import api, multisize, quantize  # noqa: E402
from .base import ExportError  # noqa: E402
from .calibration import image_files  # noqa: E402
from .resolve import RANDOM_WEIGHTS_SEED  # noqa: E402
from .target_flags import with_target_options  # noqa: E402
from .targets import all_target_names, declared_options, get_target, target_names  # noqa: E402

VERIFIER_HELP = (
    "CoreML: auto (Apple's runtime on macOS, the MIL reference evaluator elsewhere) | "
    "mil-reference | coreml-runtime (macOS) | both (macOS: each judged against PyTorch)"
)
_err = Console(stderr=True, highlight=False)

export_app = typer.Typer(add_completion=False, help="Export a MobileViT model to CoreML, ONNX or TFLite and verify its numerics.")
verify_app = typer.Typer(add_completion=False, help="Verify an existing export against its PyTorch model.")


def _human_size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


def _note(message: str) -> None:
    print_note(_err, message)


def parse_triple(text: str | None, flag: str, positive: bool = False) -> tuple[float, float, float] | None:
    """'0.485,0.456,0.406' -> three floats on the 0..1 scale (torchvision's Normalize), or one for all."""
    if text is None:
        return None
    try:
        values = [float(v) for v in text.replace(" ", "").split(",")]
    except ValueError:
        raise MvitError(f"{flag} {text!r} is not numbers; give R,G,B like 0.485,0.456,0.406") from None
    if len(values) == 1:
        values *= 3
    if len(values) != 3 or not all(math.isfinite(v) for v in values):
        raise MvitError(f"{flag} {text!r} needs three finite numbers R,G,B (or one for all channels)")
    if positive and min(values) < MIN_STD:
        raise MvitError(f"{flag} {text!r} must be at least {MIN_STD} on the 0..1 scale (typical: 0.2-0.3)")
    if max(abs(v) for v in values) > 2:
        raise MvitError(f"{flag} {text!r} looks like a 0..255 value; give it on the 0..1 scale, as torchvision's Normalize takes it (divide by 255)")
    return (values[0], values[1], values[2])


@export_app.command()
@with_target_options
def export(
    target: str = typer.Option(target_names()[0], help=" | ".join([*target_names(), "all (" + ", ".join(all_target_names()) + ")"])),
    model: Optional[str] = typer.Option(None, help="Registered model name, or pkg.module:factory for your own nn.Module. Default: mobilevit_xs"),
    config: Optional[str] = typer.Option(None, help="Patch config: A (2,2,2) or B (8,4,2), or A,B for both in one artefact. Default: the checkpoint's, else A"),
    checkpoint: Optional[Path] = typer.Option(None, help="Weights (HF folder/file, ml-cvnets .pt, timm, or mvit .safetensors)"),
    precision: str = typer.Option("fp16", help="fp16 | fp32 | int8-weights | int8 | palette4 | palette6 (CoreML only)"),
    calibration: Optional[Path] = typer.Option(
        None, help="int8: folder of images that set activation scales (default: the verification photos); quantised exports are also judged on them"
    ),
    image_size: Optional[str] = typer.Option(
        None, help="Input size (square), or several (256,320,384,512) for one multi-size artefact. Default: the checkpoint's, else the model's"
    ),
    out: Path = typer.Option(Path("exports"), help="Output folder"),
    labels: Optional[Path] = typer.Option(None, help="Labels file, one per line (default: checkpoint id2label, else the model's)"),
    channel_order: Optional[str] = typer.Option(None, help="RGB | BGR the weights expect (default: checkpoint, else model spec)"),
    mean: Optional[str] = typer.Option(None, help="Per-channel mean R,G,B on the 0..1 scale (torchvision Normalize). Default: checkpoint's, else none"),
    std: Optional[str] = typer.Option(None, help="Per-channel std R,G,B on the 0..1 scale. Default: checkpoint's, else none"),
    mask: bool = typer.Option(False, "--mask", help="Segmentation: upsample to input size and argmax inside the model"),
    raw_detection: bool = typer.Option(False, "--raw-detection", help="Detection: raw box/score tensors; anchors saved as <artefact>.anchors.npy"),
    no_nms: bool = typer.Option(False, "--no-nms", help="Detection: decoded boxes and scores, no NMS"),
    raw_input: bool = typer.Option(False, "--raw-input", help="Take the normalised tensor instead of RGB pixels (CoreML: a TensorType input)"),
    no_verify: bool = typer.Option(False, "--no-verify", help="Skip numerics verification"),
    into_harness: bool = typer.Option(False, "--into-harness", help="Copy the .mlpackage into ios_harness/App/Models/"),
    verifier: str = typer.Option("auto", help=VERIFIER_HELP),
    **target_options: Any,
) -> int:
    if target != "all" and target not in target_names():
        return fail(f"unknown --target {target!r}: use {', '.join(target_names())} or all")
    targets = [get_target(t) for t in (all_target_names() if target == "all" else [target])]
    declared = declared_options()
    for name, value in target_options.items():
        option, owners = declared[name]
        if value not in (None, False) and not any(t.name in owners for t in targets):
            return fail(f"{option.flag} applies to {option.owner or ' / '.join(owners)} exports only (got --target {target})")
    if verifier != "auto" and not any(verifier in t.verifiers for t in targets):
        return fail(f"--verifier {verifier} applies to CoreML exports only (got --target {target})")
    if into_harness and not any(t.harness_ready for t in targets):
        return fail("--into-harness needs --target coreml (or all)")
    if into_harness:
        api.check_harness_writable()
    for t in targets:  # e.g. a palette for ONNX: said once, before anything is built
        quantize.check_precision(precision, t)
    if calibration is not None and precision in quantize.FLOAT_PRECISIONS:
        return fail(
            f"--calibration applies to quantised precisions ({', '.join(quantize.QUANTISED)}); an {precision} export "
            "has nothing to calibrate: drop --calibration, or judge it on your images with mvit-verify ARTEFACT --images DIR"
        )
    if calibration is not None:
        image_files(calibration)
    options: dict[str, Any] = dict(
        mask=mask,
        raw_detection=raw_detection,
        raw_input=raw_input,
        channel_order=channel_order,
        mean=parse_triple(mean, "--mean"),
        std=parse_triple(std, "--std", positive=True),
    )
    # How several sizes share one artefact is the multi-size writer's choice, not an export option.
    shapes_form = next((v for n, v in target_options.items() if declared[n][0].means == "multisize_form" and v is not None), None)
    options.update((n, v) for n, v in target_options.items() if declared[n][0].means != "multisize_form")
    if no_nms:
        options["nms"] = False
    verifier_for = {t.name: verifier if verifier in t.verifiers else "auto" for t in targets}
    for t in targets:
        if not no_verify:
            api.check_verifier(t, verifier_for[t.name])
    # One model, one set of checks, for every target: bad input is said once, before anything is written.
    sizes, configs = multisize.parse_size_list(image_size), multisize.parse_config_list(config)
    if multisize.wanted(sizes, configs, shapes_form):
        return _export_several_sizes(
            model,
            [t.name for t in targets],
            out,
            sizes=sizes,
            configs=configs,
            shapes_form=shapes_form,
            precision=precision,
            verify=not no_verify,
            verifier_for=verifier_for,
            checkpoint=checkpoint,
            labels=labels,
            into_harness=into_harness,
            **options,
        )
    prepared = api.prepare_export(
        model, [t.name for t in targets], config=config, image_size=sizes[0] if sizes else None, checkpoint=checkpoint, labels=labels, **options
    )
    code = 0
    lines: list[str] = []
    notes: list[str] = list(prepared.resolved.notes)
    step = ["exporting"]
    with (
        Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total}"),
            TimeElapsedColumn(),
            console=_err,
            transient=True,
            disable=not _err.is_terminal,
        ) as progress,
        PlainProgress("mvit-export", lambda: step[0], enabled=not _err.is_terminal),
    ):
        bar = progress.add_task("exporting", total=len(targets))
        for i, export_target in enumerate(targets, start=1):
            name = export_target.name
            step[0] = f"{name}: export{' + verify' if not no_verify else ''} ({i} of {len(targets)})"
            progress.update(bar, description=step[0])
            try:
                result = api.export_prepared(
                    prepared, export_target, out, precision=precision, verify=not no_verify, verifier=verifier_for[name], calibration=calibration
                )
                lines.append(_result_line(result, _human_size))
                notes += ((result.report or {}).get("quantisation") or {}).get("notes", [])
                if into_harness and export_target.harness_ready:
                    dest = api.copy_into_harness(result.path)
                    lines.append(f"copied {result.path.name} -> {dest}")
            except MvitError as exc:
                # A target-specific failure: the other targets still run, and the exit code says so.
                progress.stop()
                code = max(code, fail(one_line(exc), exc.exit_code))
                continue
            finally:
                progress.advance(bar)
            code = max(code, result.exit_code(verified=not no_verify))
    print_results(lines, model, checkpoint, notes)
    return code


def _export_several_sizes(
    model: str | None,
    targets: list[str],
    out: Path,
    *,
    sizes: list[int] | None,
    configs: list[str] | None,
    shapes_form: str | None,
    precision: str,
    verify: bool,
    verifier_for: dict[str, str],
    checkpoint: Path | None,
    labels: Path | None,
    into_harness: bool,
    **options: Any,
) -> int:
    """`mvit-export --image-size 256,320 [--config A,B]`: one artefact per target (ONNX: per config)."""
    if precision not in ("fp16", "fp32"):
        # The multi-size writers cast weights themselves; quantised forms go through one size at a time.
        raise ExportError(
            f"several sizes or configs in one artefact take --precision fp16 or fp32 (got {precision}); export quantised artefacts one size at a time"
        )
    entries = multisize.prepare(model, targets, sizes=sizes, configs=configs, coreml_shapes=shapes_form, checkpoint=checkpoint, labels=labels, **options)
    code, lines = 0, []
    step = [""]
    with PlainProgress("mvit-export", lambda: step[0]):
        for i, target in enumerate(targets, start=1):
            step[0] = f"{target}: export{' + verify' if verify else ''} of {len(entries)} sizes/configs in one artefact ({i} of {len(targets)})"
            try:
                results = multisize.export(
                    entries,
                    target,
                    out,
                    precision=precision,
                    verify=verify,
                    verifier=verifier_for[target],
                    coreml_shapes=shapes_form if shapes_form in get_target(target).multisize_forms else None,
                )
            except MvitError as exc:
                code = max(code, fail(one_line(exc), exc.exit_code))
                continue
            for result in results:
                per = ", ".join(f"{e['name']} {e['verdict']}" for e in (result.report or {}).get("per_size", []))
                lines.append(_result_line(result, _human_size) + (f"  [{per}]" if per else ""))
                if into_harness and get_target(target).harness_ready:
                    lines.append(f"copied {result.path.name} -> {api.copy_into_harness(result.path)}")
                code = max(code, result.exit_code(verified=verify))
    print_results(lines, model, checkpoint, list(entries[0].prepared.resolved.notes))
    return code


def print_results(lines: list[str], model: str | None, checkpoint: Path | None, notes: list[str]) -> None:
    """The result lines, then what the user should know about them (random weights, assumptions)."""
    for line in lines:
        typer.echo(line)
    if lines:
        if checkpoint is None and (model is None or ":" not in model):
            _note(
                f"no --checkpoint given, so {model or 'mobilevit_xs'} had RANDOM weights (seed {RANDOM_WEIGHTS_SEED}): "
                "fine for testing the pipeline, useless for predictions."
            )
        for note in notes:
            _note(note)


def _result_line(result, human_size) -> str:
    report = result.report or {}
    detail = f" ({'; '.join(report['failed'])})" if report.get("failed") else ""
    reason = (report.get("verification") or {}).get("reason")
    detail += f" ({reason})" if result.verdict == "not-verified" and reason else ""  # why the exit code is 1
    by = f" by {report['verified_by']}" if report.get("verified_by") else ""
    n_warn = len(report.get("warnings", []))
    warn = f"  [{n_warn} warning(s) in {result.report_path.name}]" if n_warn else ""
    pre = f"  input: {report['preprocess_summary']}" if report.get("preprocess_summary") else ""
    return f"{result.path}  {human_size(result.size_bytes)}  {result.verdict}{by}{detail}{pre}{warn}"


@verify_app.command()
def verify(
    path: Path = typer.Argument(..., help="An .onnx, .tflite or .mlpackage written by mvit-export"),
    model: Optional[str] = typer.Option(
        None, help="Model name (default: the registered one recorded in the artefact). A custom network is only imported when you name it here."
    ),
    checkpoint: Optional[Path] = typer.Option(None, help="Weights the artefact was exported from (HF folder or file)"),
    config: Optional[str] = typer.Option(None, help="A | B (default: as recorded)"),
    labels: Optional[Path] = typer.Option(None, help="Labels file, if the export used one"),
    verifier: str = typer.Option("auto", help=VERIFIER_HELP),
    images: Optional[Path] = typer.Option(
        None, help="Quantised artefacts: a folder of your images to judge agreement with fp32 on, besides the verification photos"
    ),
) -> int:
    with PlainProgress("mvit-verify", lambda: f"verifying {path.name}"):
        report = api.verify_artefact(path, model, checkpoint=checkpoint, config=config, labels=labels, verifier=verifier, images=images)
    detail = f" ({'; '.join(report['failed'])})" if report.get("failed") else ""
    reason = report.get("verification", {}).get("reason")
    detail += f" ({reason})" if report["verdict"] == "not-verified" and reason else ""
    by = f" by {report['verified_by']}" if report.get("verified_by") else ""
    typer.echo(f"{path}  {report['verdict']}{by}{detail}  report: {path.name}.verify.json")
    # Verifying is the whole point of this command: anything short of "pass" is not success.
    return 0 if report["verdict"] == "pass" else EXIT_FAILED


def main(argv: list[str] | None = None) -> None:
    raise SystemExit(run_cli(typer.main.get_command(export_app), argv, "mvit-export"))


def verify_main(argv: list[str] | None = None) -> None:
    raise SystemExit(run_cli(typer.main.get_command(verify_app), argv, "mvit-verify"))


if __name__ == "__main__":
    main()
