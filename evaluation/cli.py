"""`mvit-eval ARTEFACT... --data DIR`: accuracy of PyTorch and artefacts on labelled images, and
the verdict on variants against a baseline artefact. A thin typer layer over evaluation/.

Exit codes as every mvit command (mvit.cli_support): 0 ok, 2 bad input (a malformed dataset names
the file and the problem), 130 interrupted, 3 a bug.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Optional

from mvit.cli_support import PlainProgress, describe_bars, native_chatter_filtered, note_sigterm_until_run, print_note, quiet_third_party, run_cli

note_sigterm_until_run()
quiet_third_party()  # before torch and the runtimes are imported: their C++ loggers read it once

import typer  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn  # noqa: E402

from mvit.errors import MvitError  # noqa: E402
from mvit.work import Workers  # noqa: E402

app = typer.Typer(add_completion=False, help="Accuracy of PyTorch and exported artefacts on a labelled dataset.")
_err = Console(stderr=True, highlight=False)


class EvalError(MvitError):
    """Bad input to mvit-eval (exit 2)."""


def _note(message: str) -> None:
    print_note(_err, message)


@contextlib.contextmanager
def _progress() -> Iterator[Progress]:
    """A bar on a terminal; elsewhere (CI logs, pipes) a plain line on stderr now and then."""
    with (
        Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=_err,
            transient=True,
            disable=not _err.is_terminal,
        ) as progress,
        PlainProgress("mvit-eval", lambda: describe_bars(progress), enabled=not _err.is_terminal),
    ):
        yield progress


def _models(artefacts: list[Path], baseline: Path | None, threads: int, runner: str = "auto"):
    """Artefacts that can run here, and (artefact, reason) for those that cannot."""
    from .runners import Skipped, artefact_model
    from .verdict import check_same_target

    paths = list(dict.fromkeys(artefacts + ([baseline] if baseline else [])))  # the baseline is scored too
    if baseline:
        for path in artefacts:
            if path != baseline:
                check_same_target(path, baseline)
    scored, skipped = [], []
    for path in paths:
        try:
            with native_chatter_filtered():
                scored.append(artefact_model(path, threads, runner))
        except Skipped as why:
            skipped.append({"artefact": str(path), "reason": str(why)})
    names = [m.name for m in scored]
    for m in scored:  # two folders' model.onnx: the reports name them by path
        if names.count(m.name) > 1 or m.name == "pytorch":
            m.name = str(m.path)
    return scored, skipped


def _agree(models, task: str) -> str:
    first = models[0]
    for m in models[1:]:
        if m.task != first.task:
            raise EvalError(f"{m.name} is a {m.task} model but {first.name} is {first.task}; score one task at a time")
        if m.labels != first.labels:
            raise EvalError(f"{m.name} has other labels than {first.name} ({len(m.labels)} vs {len(first.labels)}); compare models of the same classes")
    if task != "auto" and task != first.task:
        raise EvalError(f"--task {task} but {first.name} is a {first.task} model")
    return first.task


def _verdicts(
    artefacts: list[Path], baseline: Path, models, records, task: str, resamples: int, speed: bool, runs: int, warmups: int, threads: int
) -> list[dict]:
    """Each scored artefact against the baseline: size, interleaved speed-up, accuracy drop, the rule."""
    from .bootstrap import paired_difference
    from .tasks import SCORING
    from .verdict import judge, measure_speed

    scored = {m.path: m for m in models if m.path is not None}
    verdicts = []
    for variant in artefacts:
        if variant == baseline or variant not in scored:
            continue
        difference = None
        if baseline in scored:  # else (skipped here) the drop cannot be measured, and the line says so
            difference = paired_difference(records, scored[variant].name, scored[baseline].name, resamples)[SCORING[task].primary_metric]
        timing = None
        if speed:
            with _progress() as progress:
                bar = progress.add_task(f"timing {variant.name} vs {baseline.name}", total=warmups + runs)
                with native_chatter_filtered():
                    timing = measure_speed(
                        baseline, variant, runs=runs, warmups=warmups, threads=threads, on_step=lambda bar=bar, progress=progress: progress.advance(bar)
                    )
        v = judge(variant, baseline, timing, SCORING[task].primary_metric, difference)
        verdicts.append({**v.as_dict(), "line": v.line(), "timed_runs": timing.runs if timing else 0})
    return verdicts


@app.command()
def evaluate(
    artefacts: Optional[list[Path]] = typer.Argument(None, help="Artefacts (.onnx, .tflite, .mlpackage) written by mvit-export"),
    data: Path = typer.Option(
        ..., help="Labelled data: class folders or a CSV (classification), a VOC folder (segmentation), a COCO-style JSON or its folder (detection)"
    ),
    task: str = typer.Option("auto", help="auto (the model's) | classification | segmentation | detection"),
    model: Optional[str] = typer.Option(None, help="PyTorch reference: a registered model name, or pkg.module:factory"),
    checkpoint: Optional[Path] = typer.Option(None, help="PyTorch reference weights (as mvit-export takes them)"),
    config: Optional[str] = typer.Option(None, help="PyTorch reference patch config A | B (default: the checkpoint's)"),
    labels: Optional[Path] = typer.Option(None, help="PyTorch reference labels file, if the export used one"),
    out: Optional[Path] = typer.Option(None, help="Write the results as JSON here"),
    md: Optional[Path] = typer.Option(None, help="Write the markdown table here (it is printed either way)"),
    baseline: Optional[Path] = typer.Option(None, help="The fp32 artefact of the same target: each other artefact gets a verdict"),
    speed: bool = typer.Option(True, "--speed/--no-speed", help="With --baseline: time each variant against it, interleaved"),
    runs: int = typer.Option(100, min=1, help="With --baseline: timed A/B pairs per variant"),
    warmups: int = typer.Option(10, min=0, help="With --baseline: untimed calls per side first"),
    bootstrap: int = typer.Option(1000, min=0, help="Bootstrap resamples of the images for the 95% intervals (0: none)"),
    limit: Optional[int] = typer.Option(None, min=1, help="Score at most N images, drawn at random with a fixed seed"),
    threads: int = typer.Option(1, min=1, help="Threads per runtime (1: images are scored one at a time, where more threads mostly wait on each other)"),
    runner: str = typer.Option(
        "auto",
        help="auto (the target's runtime) | a verifier of the target, e.g. mil-reference: "
        "CoreML's reference evaluator, to score .mlpackage files off macOS (slow; never timed)",
    ),
    workers: Optional[int] = typer.Option(None, min=1, help="Local worker processes scoring chunks of images (default: one per core; 1: in this process)"),
    ray: Optional[str] = typer.Option(None, help="Score on the Ray cluster at this address (default: $RAY_ADDRESS; `local` starts one here); needs mvit[ray]"),
) -> int:
    from mvit.benchmarks.files import atomic_write_text, check_output_path

    from . import report
    from .bootstrap import bootstrap as run_bootstrap
    from .datasets import check_items
    from .evaluate import choose
    from .runners import pytorch_model
    from .scale import ModelsRecipe, PyTorchReference, discard_journal, journal_folder, pieces, score_dataset
    from .tasks import SCORED_TASKS, load_dataset

    workers_at = Workers.choose(workers, ray)
    artefacts = list(artefacts or [])
    known = ("auto", *SCORED_TASKS)
    if task not in known:
        raise EvalError(f"unknown --task {task!r}: use {', '.join(known)}")
    if not artefacts and not baseline and model is None and checkpoint is None:
        raise EvalError("nothing to score: name artefacts, or --model / --checkpoint for the PyTorch reference")
    for path, flag in ((out, "--out"), (md, "--md")):
        if path is not None:
            check_output_path(path, flag, inputs=(*artefacts, baseline, checkpoint, labels, None if data.is_dir() else data), data=data)
    models, skipped = _models(artefacts, baseline, threads, runner)
    for s in skipped:
        _note(f"skipped {s['artefact']}: {s['reason']}")
    reference_spec = None
    if model is not None or checkpoint is not None:
        first = models[0] if models else None
        reference_spec = PyTorchReference(model, checkpoint, config, labels, first.recipe.crop if first else None, first.nms if first else None)
        models.insert(
            0, pytorch_model(model, checkpoint, config=config, labels=labels, image_size=reference_spec.image_size, nms=reference_spec.nms, num_threads=threads)
        )
    if not models:
        raise EvalError("no artefact can be scored on this machine (see the notes above); pass --model or --checkpoint to score the PyTorch reference")
    task = _agree(models, task)
    dataset = load_dataset(data, task, models[0].labels)
    dataset = choose(dataset, limit)
    check_items(dataset, len(models[0].labels))

    recipe = ModelsRecipe([m.name for m in models], [m.path for m in models], runner, threads, reference_spec)
    journal = journal_folder(out) if out is not None else None
    with _progress() as progress:
        bar = progress.add_task(f"scoring {len(models)} model(s)", total=len(dataset.items))
        records, run = score_dataset(models, recipe, dataset, workers_at, journal, note=_note, on_images=lambda n: progress.advance(bar, n))
    # Differences are against PyTorch; without it, against the baseline artefact when there is one.
    by_path = {m.path: m.name for m in models if m.path is not None}
    reference = "pytorch" if models[0].kind == "pytorch" else by_path.get(baseline) if baseline else None
    scores = run_bootstrap(records, bootstrap, reference=reference)

    verdicts = _verdicts(artefacts, baseline, models, records, task, bootstrap, speed, runs, warmups, threads) if baseline else []

    described = [
        {
            "name": m.name,
            "kind": m.kind,
            "path": str(m.path) if m.path else None,
            "precision": m.precision,
            "recipe": {"resize_shortest": m.recipe.resize_shortest, "crop": m.recipe.crop},
        }
        for m in models
    ]
    info = {"path": str(data), "task": task, "layout": dataset.layout, "images": len(dataset.items), "limit": limit}
    doc = report.document(info, described, scores, resamples=bootstrap, reference=reference, skipped=skipped, verdicts=verdicts)
    doc["run"] = run
    text = report.markdown(doc) + f"\nScored {len(dataset.items)} images {', '.join(pieces(run))}.\n"
    typer.echo(text, nl=False)
    if out is not None:
        atomic_write_text(out, json.dumps(doc, indent=2, sort_keys=True) + "\n")
        discard_journal(journal_folder(out))
    if md is not None:
        atomic_write_text(md, text)
    return 0


def main(argv: list[str] | None = None) -> None:
    raise SystemExit(run_cli(typer.main.get_command(app), argv, "mvit-eval"))


if __name__ == "__main__":
    main()
