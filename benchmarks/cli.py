"""`mvit-bench`: run, report, compare, ab, ci. A thin layer over the library functions."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import typer

from .files import atomic_write_text
from .schema import ResultsFileError, load_results, write_results
from .verdict import DEFAULT_THRESHOLD

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Latency benchmarks for mvit models and artefacts (results schema v1).")

DEFAULT_THREADS = min(4, os.cpu_count() or 1)


def _fail(message: str, code: int = 2) -> None:
    typer.echo(f"mvit-bench: {message}", err=True)
    raise typer.Exit(code)


def _split(values: list[str]) -> list[str]:
    return [v.strip() for item in values for v in item.split(",") if v.strip()]


def _progress():
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    transient=False)


@app.command()
def run(
    models: list[str] = typer.Option(["mobilevit_xxs", "mobilevit_xs", "mobilevit_s", "mobilenet_v2"], "--model", "-m",
                                     help="Registry names or cvt_13; repeat or comma-separate."),
    configs: list[str] = typer.Option(["A", "B"], "--config", "-c", help="Patch configs A and/or B."),
    runtimes: list[str] = typer.Option(["pytorch", "onnxruntime", "litert", "coreml"], "--runtime", "-r"),
    image_size: Optional[int] = typer.Option(None, help="Override the task's input size (quick runs)."),
    threads: int = typer.Option(DEFAULT_THREADS, min=1, help="Threads for every runtime (fixed, recorded)."),
    warmups: int = typer.Option(10, min=0),
    runs: int = typer.Option(100, min=1),
    out: Path = typer.Option(Path("bench-results.json"), "--out", "-o", help="Results JSON (schema v1)."),
    artefact_dir: Path = typer.Option(Path("bench-artefacts"), help="Where exported artefacts are written."),
    report: bool = typer.Option(True, help="Also write <out>.md and <out>.png."),
    reuse_artefacts: bool = typer.Option(False, help="Reuse artefacts in --artefact-dir whose metadata match "
                                         "(only when they were built by this same code)."),
) -> None:
    """Time model x config x runtime at batch 1 and write a results file."""
    from .runner import RunPlan, run_benchmarks
    from .runtimes import RUNTIMES

    bad = [r for r in _split(runtimes) if r not in RUNTIMES]
    if bad:
        _fail(f"unknown runtime {bad[0]!r}; choose from {', '.join(RUNTIMES)}")
    bad = [c for c in _split(configs) if c not in ("A", "B")]
    if bad:
        _fail(f"unknown config {bad[0]!r}; use A and/or B")
    plan = RunPlan(models=_split(models), configs=_split(configs), runtimes=_split(runtimes), image_size=image_size,
                   threads=threads, warmups=warmups, runs=runs, artefact_dir=artefact_dir,
                   reuse_artefacts=reuse_artefacts)
    try:
        plan.rows()
    except KeyError as exc:
        _fail(str(exc.args[0]))
    import torch

    torch.set_num_threads(threads)
    with _progress() as progress:
        outcome = run_benchmarks(plan, log=progress.console.print, progress=progress)
    if not outcome.document["results"]:
        _fail("no row could run here: " + "; ".join(outcome.skipped + outcome.failed), 1)
    write_results(out, outcome.document)
    typer.echo(f"wrote {out}")
    if report:
        _write_report(outcome.document, out)
    if outcome.failed:
        _fail(f"{len(outcome.failed)} row(s) failed: " + "; ".join(outcome.failed), 1)


def _write_report(doc: dict, out: Path) -> None:
    from .report import markdown_table, plot

    text = markdown_table(doc)
    md, png = out.with_suffix(".md"), out.with_suffix(".png")
    atomic_write_text(md, text)
    plot(doc, png)
    typer.echo(text)
    typer.echo(f"wrote {md} and {png}")


@app.command()
def report(
    results: Path = typer.Argument(..., help="Results JSON from mvit-bench run or the iOS harness."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Stem for .md/.png (default: beside the input)."),
) -> None:
    """Render a results file as a markdown table and a PNG plot."""
    try:
        doc = load_results(results)
    except ResultsFileError as exc:
        _fail(str(exc))
    if not doc["results"]:
        _fail(f"{results}: the file has no results rows to report")
    _write_report(doc, out or results)


@app.command()
def compare(
    base: Path = typer.Argument(..., help="Baseline results JSON."),
    candidate: Path = typer.Argument(..., help="Candidate results JSON."),
    threshold: float = typer.Option(DEFAULT_THRESHOLD, min=0.0, help="Relative slowdown that counts (0.10 = 10%)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Also write the markdown here."),
) -> None:
    """Per-row ratio with a bootstrap CI and a verdict; exit 1 only on a significant regression."""
    from .compare import compare_documents, comparison_markdown, has_regression

    try:
        base_doc, cand_doc = load_results(base), load_results(candidate)
    except ResultsFileError as exc:
        _fail(str(exc))
    rows, notes = compare_documents(base_doc, cand_doc, threshold=threshold)
    text = comparison_markdown(rows, title=f"{candidate} vs {base}", threshold=threshold, notes=notes,
                               statistic="p10",
                               method="unpaired, ratio of 10th percentiles, each side resampled independently")
    typer.echo(text)
    if out:
        atomic_write_text(out, text)
    if has_regression(rows):
        raise typer.Exit(1)


@app.command()
def ab(
    base: Path = typer.Argument(..., help="Baseline artefact (.onnx, .tflite)."),
    candidate: Path = typer.Argument(..., help="Candidate artefact."),
    runs: int = typer.Option(100, min=1, help="Timed runs per artefact (interleaved pairs)."),
    warmups: int = typer.Option(10, min=0),
    threads: int = typer.Option(1, min=1),
    image_size: Optional[int] = typer.Option(None, help="Input size when the artefact's metadata lacks it."),
    threshold: float = typer.Option(DEFAULT_THRESHOLD, min=0.0),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Also write both rows as results JSON."),
) -> None:
    """Interleave runs of two artefacts (ABBA) in one process; verdict from paired ratios."""
    from .ab import run_ab
    from .compare import RowComparison, comparison_markdown
    from .runtimes import RuntimeUnavailable

    for path in (base, candidate):
        if not path.exists():
            _fail(f"{path}: no such artefact; pass the path of an exported .onnx or .tflite file")
    try:
        with _progress() as progress:
            task = progress.add_task(f"{base.name} vs {candidate.name}", total=warmups + runs)
            outcome = run_ab(base, candidate, threads=threads, warmups=warmups, runs=runs,
                             image_size=image_size, threshold=threshold, on_step=lambda: progress.advance(task))
    except RuntimeUnavailable as exc:
        _fail(str(exc))
    b, c = outcome.document["results"]
    row = RowComparison(f"{candidate.name} vs {base.name}", b["stats"]["median_ms"], c["stats"]["median_ms"],
                        outcome.comparison)
    text = comparison_markdown([row], title="Interleaved A/B", threshold=threshold, statistic="median",
                               method=f"ABBA interleaved, {runs} pairs, {threads} thread(s), median of paired ratios")
    typer.echo(text)
    if out:
        write_results(out, outcome.document)
    if outcome.comparison.verdict.value == "REGRESSION":
        raise typer.Exit(1)


@app.command()
def ci(
    out: Path = typer.Option(Path("latency-report.md"), "--out", "-o"),
    runs: int = typer.Option(60, min=1, help="Interleaved pairs per row."),
    warmups: int = typer.Option(5, min=0),
    threads: int = typer.Option(1, min=1),
    previous: bool = typer.Option(True, help="Baseline = previous commit's exports (else A/A)."),
    repo: Path = typer.Option(Path("."), help="Git checkout whose HEAD~1 is the baseline."),
) -> None:
    """CI latency report for MobileViT-XXS A/B on ONNX Runtime and LiteRT; never fails on latency."""
    from mvit.exporters.base import ExportError

    from .ci import CiSettings, run_ci
    from .runtimes import RuntimeUnavailable

    settings = CiSettings(runs=runs, warmups=warmups, threads=threads, previous=previous, repo=repo)
    try:
        text = run_ci(settings, log=lambda m: typer.echo(f"mvit-bench ci: {m}", err=True))
    except (ExportError, RuntimeUnavailable) as exc:
        # This commit's own XXS artefacts cannot be built or run: the one real failure here.
        _fail(f"this commit's MobileViT-XXS artefacts cannot be built or run: {exc}", 1)
    atomic_write_text(out, text)
    typer.echo(text)
    typer.echo(f"wrote {out}", err=True)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
