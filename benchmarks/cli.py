"""`mvit-bench`: run, report, compare, ab, profile, ci, calibrate-ci. A thin layer over the library functions.

Errors go the way of every mvit command (mvit.cli_support.run_cli): one `error: ...` line on
stderr; exit 0 ok, 1 a significant regression (or a benchmark row that crashed), 2 bad input,
130 interrupted, 3 a bug in mvit.
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

import typer

from mvit.cli_support import PlainProgress, describe_bars, print_note, quiet_third_party, run_cli
from mvit.errors import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_INTERRUPTED, MvitError
from mvit.reading import printable

from .files import atomic_write_text, check_output_path
from .runtime_names import DEFAULT_RUN_RUNTIMES
from .schema import load_results, write_results
from .verdict import DEFAULT_THRESHOLD

if TYPE_CHECKING:
    from .user_ci import UserCiSettings

app = typer.Typer(add_completion=False, help="Latency benchmarks for mvit models and artefacts (results schema v1).")

DEFAULT_THREADS = min(4, os.cpu_count() or 1)
# The bounds mvit-export accepts: smaller breaks the network, larger needs tens of GB.
MIN_IMAGE_SIZE, MAX_IMAGE_SIZE = 32, 1024
INTERRUPTED = "interrupted; no half-written results, reports or artefacts were left"


class BenchError(MvitError):
    """A one-line failure of a mvit-bench command with its exit code (2 unless said)."""

    def __init__(self, message: str, exit_code: int = EXIT_BAD_INPUT):
        super().__init__(message)
        self.exit_code = exit_code


class Interrupted(MvitError):
    exit_code = EXIT_INTERRUPTED


def _fail(message: str, code: int = EXIT_BAD_INPUT) -> None:
    raise BenchError(message, code)


def _interruptible(command):
    """typer turns Ctrl-C into a silent exit 130 before run_cli sees it; say it in one line."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except KeyboardInterrupt:
            raise Interrupted(INTERRUPTED) from None

    return wrapper


def _finite(value: float, flag: str) -> float:
    if not math.isfinite(value):  # click's range check lets NaN through (every comparison is false)
        _fail(f"{flag} {value} is not a finite number; pass a fraction such as 0.10")
    return value


def _split(values: list[str]) -> list[str]:
    return [v.strip() for item in values for v in item.split(",") if v.strip()]


@contextlib.contextmanager
def _progress() -> Iterator[Any]:
    """rich's bars on stderr when it is a terminal, else plain lines there: stdout carries only
    results, so `mvit-bench ... > file` gets no bar in the file."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    console = Console(stderr=True, highlight=False)
    with (
        Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            transient=False,
            console=console,
            disable=not console.is_terminal,
        ) as progress,
        PlainProgress("mvit-bench", lambda: describe_bars(progress), enabled=not console.is_terminal),
    ):
        yield progress


def _report_paths(out: Path, source: Path | None = None) -> tuple[Path, Path]:
    md, png = out.with_suffix(".md"), out.with_suffix(".png")
    for path in (md, png):
        check_output_path(path, "report")
        if path == out or (source is not None and path.resolve() == source.resolve()):
            _fail(f"the report {path} would overwrite the results file; name the results file *.json")
    return md, png


@app.command()
@_interruptible
def run(
    models: list[str] = typer.Option(
        ["mobilevit_xxs", "mobilevit_xs", "mobilevit_s", "mobilenet_v2"], "--model", "-m", help="Registry names or cvt_13; repeat or comma-separate."
    ),
    configs: list[str] = typer.Option(["A", "B"], "--config", "-c", help="Patch configs A and/or B."),
    runtimes: list[str] = typer.Option(list(DEFAULT_RUN_RUNTIMES), "--runtime", "-r"),
    image_size: Optional[int] = typer.Option(None, min=MIN_IMAGE_SIZE, max=MAX_IMAGE_SIZE, help="Override the task's input size (quick runs)."),
    threads: int = typer.Option(DEFAULT_THREADS, min=1, help="Threads for every runtime (fixed, recorded)."),
    warmups: int = typer.Option(10, min=0),
    runs: int = typer.Option(100, min=1),
    out: Path = typer.Option(Path("bench-results.json"), "--out", "-o", help="Results JSON (schema v1)."),
    artefact_dir: Optional[Path] = typer.Option(None, help="Keep the exported artefacts here (default: a temporary folder, removed when the run ends)."),
    report: bool = typer.Option(True, help="Also write <out>.md and <out>.png."),
    reuse_artefacts: bool = typer.Option(False, help="Reuse artefacts in --artefact-dir whose metadata match (only when they were built by this same code)."),
) -> None:
    """Time model x config x runtime at batch 1 and write a results file."""
    check_output_path(out)
    if report:
        _report_paths(out)
    from .runner import RunPlan, run_benchmarks
    from .runtimes import RUNTIMES

    bad = [r for r in _split(runtimes) if r not in RUNTIMES]
    if bad:
        _fail(f"unknown runtime {bad[0]!r}; choose from {', '.join(RUNTIMES)}")
    bad = [c for c in _split(configs) if c not in ("A", "B")]
    if bad:
        _fail(f"unknown config {bad[0]!r}; use A and/or B")
    if reuse_artefacts and artefact_dir is None:
        _fail("--reuse-artefacts needs --artefact-dir DIR: without it the artefacts live in a temporary folder")
    plan = RunPlan(
        models=_split(models),
        configs=_split(configs),
        runtimes=_split(runtimes),
        image_size=image_size,
        threads=threads,
        warmups=warmups,
        runs=runs,
        artefact_dir=artefact_dir,
        reuse_artefacts=reuse_artefacts,
    )
    try:
        plan.rows()
    except KeyError as exc:
        _fail(" ".join(str(exc.args[0]).split()))
    import torch

    torch.set_num_threads(threads)
    with _progress() as progress:
        outcome = run_benchmarks(plan, log=lambda line: print_note(progress.console, line), progress=progress)
    if not outcome.document["results"]:
        _fail("no row could run here: " + "; ".join(outcome.skipped + outcome.failed), EXIT_FAILED)
    write_results(out, outcome.document)
    typer.echo(f"wrote {out}")
    if report:
        _write_report(outcome.document, out)
    if outcome.failed:
        _fail(f"{len(outcome.failed)} row(s) failed: " + "; ".join(outcome.failed), EXIT_FAILED)


def _write_report(doc: dict, out: Path, source: Path | None = None) -> None:
    from .report import markdown_table, plot

    md, png = _report_paths(out, source)
    text = markdown_table(doc)
    atomic_write_text(md, text)
    plot(doc, png)
    typer.echo(text)
    typer.echo(f"wrote {md} and {png}")


@app.command()
@_interruptible
def report(
    results: Path = typer.Argument(..., help="Results JSON from mvit-bench run or the iOS harness."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Stem for .md/.png (default: beside the input)."),
) -> None:
    """Render a results file as a markdown table and a PNG plot."""
    _report_paths(out or results, results)
    doc = load_results(results)
    if not doc["results"]:
        _fail(f"{results}: the file has no results rows to report")
    _write_report(doc, out or results, results)


@app.command()
@_interruptible
def compare(
    base: Path = typer.Argument(..., help="Baseline results JSON."),
    candidate: Path = typer.Argument(..., help="Candidate results JSON."),
    threshold: float = typer.Option(DEFAULT_THRESHOLD, min=0.0, help="Relative slowdown that counts (0.10 = 10%)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Also write the markdown here."),
) -> None:
    """Per-row ratio with a bootstrap CI and a verdict; exit 1 only on a significant regression."""
    from .compare import compare_documents, comparison_markdown, has_regression

    _finite(threshold, "--threshold")
    if out:
        check_output_path(out, inputs=(base, candidate))
    base_doc, cand_doc = load_results(base), load_results(candidate)
    rows, notes = compare_documents(base_doc, cand_doc, threshold=threshold)
    text = comparison_markdown(
        rows,
        title=f"{candidate} vs {base}",
        threshold=threshold,
        notes=notes,
        statistic="p10",
        method="unpaired, ratio of 10th percentiles, each side resampled independently",
    )
    typer.echo(text)
    if out:
        atomic_write_text(out, text)
    if has_regression(rows):
        raise typer.Exit(EXIT_FAILED)


@app.command()
@_interruptible
def ab(
    base: Path = typer.Argument(..., help="Baseline artefact (.onnx, .tflite)."),
    candidate: Path = typer.Argument(..., help="Candidate artefact."),
    runs: int = typer.Option(100, min=1, help="Timed runs per artefact (interleaved pairs)."),
    warmups: int = typer.Option(10, min=0),
    threads: int = typer.Option(1, min=1),
    image_size: Optional[int] = typer.Option(None, min=MIN_IMAGE_SIZE, max=MAX_IMAGE_SIZE, help="Input size when the artefact's metadata lacks it."),
    threshold: float = typer.Option(DEFAULT_THRESHOLD, min=0.0),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Also write both rows as results JSON."),
) -> None:
    """Interleave runs of two artefacts (ABBA) in one process; verdict from paired ratios."""
    from .ab import BLOCKS, run_ab
    from .compare import RowComparison, comparison_markdown

    _finite(threshold, "--threshold")
    for path in (base, candidate):
        if not path.exists():
            _fail(f"{path}: no such artefact; pass the path of an exported .onnx or .tflite file")
    if out:
        check_output_path(out, inputs=(base, candidate))
    with _progress() as progress:  # a RuntimeUnavailable names the file and is bad input (exit 2)
        task = progress.add_task(f"{base.name} vs {candidate.name}", total=warmups + runs)
        outcome = run_ab(
            base, candidate, threads=threads, warmups=warmups, runs=runs, image_size=image_size, threshold=threshold, on_step=lambda: progress.advance(task)
        )
    b, c = outcome.document["results"]
    row = RowComparison(f"{candidate.name} vs {base.name}", b["stats"]["median_ms"], c["stats"]["median_ms"], outcome.comparison)
    text = comparison_markdown(
        [row],
        title="Interleaved A/B",
        threshold=threshold,
        statistic="median",
        method=f"ABBA interleaved in blocks of {BLOCKS.calls} calls (first {BLOCKS.discard} untimed), "
        f"{runs} pairs, {threads} thread(s), median of paired ratios",
    )
    typer.echo(text)
    if out:
        write_results(out, outcome.document)
    if outcome.comparison.verdict.value == "REGRESSION":
        raise typer.Exit(EXIT_FAILED)


@app.command()
@_interruptible
def profile(
    artefact: Path = typer.Argument(..., help="An exported .onnx or .tflite file."),
    threads: int = typer.Option(DEFAULT_THREADS, min=1),
    warmups: int = typer.Option(5, min=0),
    runs: int = typer.Option(20, min=1),
    image_size: Optional[int] = typer.Option(None, min=MIN_IMAGE_SIZE, max=MAX_IMAGE_SIZE, help="Input size when the artefact's metadata lacks it."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Write <out>.json and <out>.md."),
) -> None:
    """Time by op type (ONNX Runtime's profiler); LiteRT: ops by type and XNNPACK partitions."""
    from .op_profile import profile_artefact, profile_markdown

    paths = (out.with_suffix(".json"), out.with_suffix(".md")) if out else ()
    for path in paths:
        check_output_path(path, inputs=(artefact,))
    result = profile_artefact(artefact, threads=threads, warmups=warmups, runs=runs, image_size=image_size)
    text = profile_markdown(result)
    typer.echo(text)
    if paths:
        atomic_write_text(paths[0], json.dumps(result.as_dict(), indent=2) + "\n")
        atomic_write_text(paths[1], text)
        typer.echo(f"wrote {paths[0]} and {paths[1]}", err=True)


@app.command()
@_interruptible
def ci(
    out: Path = typer.Option(Path("latency-report.md"), "--out", "-o", help="Markdown report; with --model or a baseline also <out>.json and <out>.png."),
    runs: int = typer.Option(60, min=1, help="Interleaved pairs per row."),
    warmups: int = typer.Option(5, min=0),
    threads: int = typer.Option(1, min=1),
    previous: bool = typer.Option(True, help="mvit's own step: baseline = previous commit's exports (else A/A)."),
    repo: Path = typer.Option(Path("."), help="Git checkout: HEAD~1 (mvit's own step) or the one --baseline-ref names."),
    model: Optional[str] = typer.Option(None, help="Your model: a registered name or pkg.module:factory, exported from --repo on both sides."),
    checkpoint: Optional[str] = typer.Option(None, help="Weights for a registered model; a relative path is read from each side's tree."),
    target: list[str] = typer.Option(["onnx", "tflite"], "--target", "-t", help="Targets to time (repeat or comma-separate)."),
    export_args: str = typer.Option("", help="More mvit-export options, one string, e.g. '--precision fp32 --image-size 128'."),
    import_root: str = typer.Option(".", help="Folder of --repo put on the import path for pkg.module (e.g. src)."),
    baseline_ref: Optional[str] = typer.Option(None, help="Baseline: a git ref of --repo, exported from its tree."),
    baseline_results: Optional[Path] = typer.Option(None, help="Baseline: the JSON of an earlier run (or a results file)."),
    base_artefact: list[Path] = typer.Option([], help="Baseline: artefacts, paired in order with --candidate-artefact."),
    candidate_artefact: list[Path] = typer.Option([], help="Candidate artefacts (with --base-artefact)."),
    base_harness: Optional[Path] = typer.Option(None, help="iOS harness results JSON of the baseline (CoreML compute plan)."),
    candidate_harness: Optional[Path] = typer.Option(None, help="iOS harness results JSON of the candidate."),
    history: Optional[Path] = typer.Option(
        None, help="History JSON, read and extended: the gate then needs 2 consecutive slow points against a 5-point window."
    ),
    history_label: Optional[str] = typer.Option(None, help="This run's label in --history (default: the commit)."),
    threshold: float = typer.Option(DEFAULT_THRESHOLD, min=0.0, help="Relative change that counts; never below 0.02."),
    gate: bool = typer.Option(False, help="Exit 1 when a row is a REGRESSION (default: report only)."),
    artefact_dir: Optional[Path] = typer.Option(None, help="Keep both sides' exports here (baseline/, candidate/)."),
) -> None:
    """CI latency report: mvit's own XXS step by default; with --model or a baseline, your model."""
    from mvit.exporters.base import ExportError

    from .ci import CiSettings, run_ci
    from .runtimes import RuntimeUnavailable

    check_output_path(out)
    if model or baseline_ref or baseline_results or base_artefact or candidate_artefact or base_harness or candidate_harness or history or gate:
        from .user_ci import UserCiSettings

        _finite(threshold, "--threshold")
        _user_ci(
            out,
            UserCiSettings(
                model=model,
                checkpoint=checkpoint,
                targets=tuple(_split(target)),
                export_args=_export_args(export_args),
                repo=repo,
                import_root=import_root,
                baseline_ref=baseline_ref,
                baseline_results=baseline_results,
                base_artefacts=tuple(base_artefact),
                candidate_artefacts=tuple(candidate_artefact),
                base_harness=base_harness,
                candidate_harness=candidate_harness,
                history=history,
                history_label=history_label,
                artefact_dir=artefact_dir,
                runs=runs,
                warmups=warmups,
                threads=threads,
                threshold=threshold,
                gate=gate,
            ),
        )
        return
    settings = CiSettings(runs=runs, warmups=warmups, threads=threads, previous=previous, repo=repo)
    try:
        text = run_ci(settings, log=lambda m: typer.echo(f"mvit-bench ci: {printable(m)}", err=True))
    except (ExportError, RuntimeUnavailable) as exc:
        # This commit's own XXS artefacts cannot be built or run: the one real failure here.
        _fail(f"this commit's MobileViT-XXS artefacts cannot be built or run: {exc}", EXIT_FAILED)
    atomic_write_text(out, text)
    typer.echo(text)
    typer.echo(f"wrote {out}", err=True)


def _export_args(text: str) -> tuple[str, ...]:
    import shlex

    try:
        return tuple(shlex.split(text))
    except ValueError as exc:
        raise BenchError(f"--export-args {text!r}: {exc}; quote it as a shell would") from None


def _user_ci(out: Path, settings: UserCiSettings) -> None:
    from .user_ci import run_user_ci
    from .user_ci_report import write_reports

    for path in (out.with_suffix(".json"), out.with_suffix(".png")):
        check_output_path(path, "report")
    if out.suffix != ".md":
        _fail(f"--out {out}: name the report *.md (the JSON and PNG are written beside it)")
    outcome = run_user_ci(settings, log=lambda m: typer.echo(f"mvit-bench ci: {printable(m)}", err=True))
    text, written = write_reports(outcome, settings, out)
    typer.echo(text)
    typer.echo("wrote " + ", ".join(map(str, written)), err=True)
    if settings.gate and outcome.regression:
        raise typer.Exit(EXIT_FAILED)


@app.command("calibrate-ci")
@_interruptible
def calibrate_ci(
    trials: int = typer.Option(20, min=1, help="CI-step runs per row on each candidate."),
    slowdown: float = typer.Option(0.15, min=0.01, max=1.0, help="How much slower the slowed build is (solo)."),
    out: Path = typer.Option(Path("calibrate-ci.json"), "--out", "-o", help="Every run's timings; also <out>.md."),
    artefact_dir: Optional[Path] = typer.Option(None, help="Keep (and reuse) the artefacts here."),
    from_file: Optional[Path] = typer.Option(None, "--from", help="Only summarise an earlier --out JSON."),
    identical_only: bool = typer.Option(False, help="No slowed build: false alarms only, half the time."),
    model: Optional[str] = typer.Option(
        None, help="Calibrate `mvit-bench ci --model` for this model (registered name or pkg.module:factory, exported from --repo) instead of mvit's own step."
    ),
    repo: Path = typer.Option(Path("."), help="With --model: the checkout it is exported from."),
    import_root: str = typer.Option(".", help="With --model: folder of --repo on the import path."),
    export_args: str = typer.Option("", help="With --model: more mvit-export options, one string."),
    target: list[str] = typer.Option(["onnx", "tflite"], "--target", "-t", help="With --model: targets to time."),
) -> None:
    """Measure the CI step's false-alarm rate (identical builds) and power (a slowed build) here."""
    from .calibrate_ci import calibrate_ci as measure
    from .calibrate_ci import load_calibration, report_markdown

    md = out.with_suffix(".md")
    for path in (out, md):
        check_output_path(path)
    _finite(slowdown, "--slowdown")
    export = _user_export(model, repo, import_root, export_args, target) if model else None
    doc = (
        load_calibration(from_file)
        if from_file
        else measure(
            trials,
            slowdown,
            out,
            artefact_dir,
            slowed=not identical_only,
            export=export,
            log=lambda m: typer.echo(f"mvit-bench calibrate-ci: {printable(m)}", err=True),
        )
    )
    text = report_markdown(doc)
    atomic_write_text(md, text)
    typer.echo(text)
    typer.echo(f"wrote {md}" if from_file else f"wrote {out} and {md}", err=True)


def _user_export(model: str, repo: Path, import_root: str, export_args: str, targets: list[str]):
    """The calibration's base artefacts, exported as `mvit-bench ci --model` exports this side."""
    from .user_ci import TARGET_RUNTIMES, UserCiSettings, check_export_settings, export_side

    settings = UserCiSettings(model=model, repo=repo, import_root=import_root, targets=tuple(_split(targets)), export_args=_export_args(export_args))
    check_export_settings(settings)

    def export(work: Path) -> dict[str, Path]:
        paths = export_side(repo.resolve(), work / "exports", settings, list(settings.targets))
        return {f"{model} {TARGET_RUNTIMES[t]}": p for t, p in paths.items()}

    return export


def main(argv: list[str] | None = None) -> None:
    quiet_third_party()  # before torch, onnxruntime or LiteRT load: their C++ loggers read it once
    sys.exit(run_cli(typer.main.get_command(app), argv, "mvit-bench"))


if __name__ == "__main__":
    main()
