"""`mvit-bench ci`: the CI latency report for MobileViT-XXS configs A and B on ONNX Runtime and LiteRT.

Baseline: the previous commit's own exports. HEAD~1 is unpacked with `git archive` into a temp
folder and exports in a subprocess whose PYTHONPATH puts that tree's `mvit` first (the editable
install's finder comes after the path finder, so the old code wins). Both commits' artefacts are
then timed interleaved (ABBA, in short blocks, no thread spinning between calls:
benchmarks/timing.py) in one process, so machine drift cancels pair by pair.

When nothing under mvit/, models/ or exporters/ changed since HEAD~1, the previous commit's
artefacts are this commit's (exports are deterministic), so nothing is rebuilt and the table is
the noise floor, labelled as such. When the previous commit cannot export (first commit, no git, older code without
`mvit.exporters.api`, a timeout), the baseline is this commit's artefacts timed against
themselves (A/A): the report then says so and shows the run-to-run noise floor only.

Exit status: 0 for every latency outcome, including REGRESSION and a missing baseline; noise
must never turn CI red. Non-zero only when this commit's XXS artefacts cannot be built or run
(a real defect, not noise) or the tool itself crashes.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import textwrap
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from mvit.exporters.api import artefact_sha256

from .ab import BLOCKS, run_ab
from .compare import RowComparison, comparison_markdown
from .runtimes import RUNTIME_TARGETS, RuntimeUnavailable, bench_model, build_artefact, runtime_available

CI_MODEL = "mobilevit_xxs"
CI_CONFIGS = ("A", "B")
CI_RUNTIMES = ("onnxruntime", "litert")
PREVIOUS_EXPORT_TIMEOUT_S = 120
# Folders whose code decides what an export contains; if none changed, HEAD~1's artefacts are
# byte for byte this commit's (exports are deterministic), so they are not rebuilt.
EXPORT_SOURCES = ("mvit", "models", "exporters")

# Run inside the previous commit's tree: print one "runtime<TAB>config<TAB>path" line per artefact.
_PREVIOUS_EXPORT_SCRIPT = textwrap.dedent("""
    import sys, torch
    torch.set_num_threads(1)
    from pathlib import Path
    import mvit.exporters.api
    from mvit.exporters.api import export_model
    print(f"source\t{mvit.exporters.api.__file__}", flush=True)
    out, model = Path(sys.argv[1]), sys.argv[2]
    for item in sys.argv[3:]:
        runtime, target, config = item.split(":")
        r = export_model(model, target, out / runtime, config=config, precision="fp32", verify=False)
        print(f"{runtime}\\t{config}\\t{r.path}", flush=True)
""")


@dataclass
class CiSettings:
    runs: int = 60
    warmups: int = 5
    threads: int = 1
    threshold: float = 0.10
    previous: bool = True  # try the previous commit; False = A/A noise floor only
    repo: Path = Path(".")


def export_current(out: Path, runtimes: list[str]) -> dict[tuple[str, str], Path]:
    return {(runtime, config): build_artefact(bench_model(CI_MODEL, config), runtime, out / runtime) for runtime in runtimes for config in CI_CONFIGS}


class ArchiveFailed(RuntimeError):
    """`git archive` refused the ref; the message is git's own first words."""


def unpack_commit(repo: Path, ref: str, dest: Path, timeout: float) -> None:
    """The files of `ref` in `repo` (as `git archive` writes them), unpacked into the new folder `dest`."""
    dest.mkdir(parents=True)
    archive = dest.with_suffix(".tar")
    with open(archive, "wb") as fh:
        made = subprocess.run(["git", "-C", str(repo), "archive", ref], stdout=fh, stderr=subprocess.PIPE, timeout=timeout)
    if made.returncode != 0:
        archive.unlink()
        raise ArchiveFailed(f"git archive {ref} failed: {made.stderr.decode(errors='replace').strip()[:200]}")
    with tarfile.open(archive) as tar:
        tar.extractall(dest, filter="data")
    archive.unlink()


def _shim_package(tree: Path, shim: Path) -> None:
    """Lay the old tree out as the installed package does (pyproject's package-dir mapping)."""
    package = shim / "mvit"
    shutil.copytree(tree / "mvit", package)
    for sub, folder in (("models", "models"), ("exporters", "exporters"), ("benchmarks", "benchmarks")):
        if (tree / folder).is_dir():
            os.symlink(tree / folder, package / sub)


def export_previous(repo: Path, work: Path, runtimes: list[str]) -> tuple[dict[tuple[str, str], Path] | None, str]:
    """(artefacts, description) of HEAD~1's exports, or (None, why not); ({}, description) when
    the export code did not change since HEAD~1, so this commit's artefacts are also HEAD~1's."""
    try:
        rev = subprocess.run(["git", "-C", str(repo), "rev-parse", "--short", "HEAD~1"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError) as exc:
        return None, f"git is not usable here ({exc.__class__.__name__})"
    if rev.returncode != 0:
        return None, "there is no previous commit (HEAD~1) in this checkout"
    commit = rev.stdout.strip()
    unchanged = subprocess.run(["git", "-C", str(repo), "diff", "--quiet", "HEAD~1", "--", *EXPORT_SOURCES], capture_output=True, timeout=30)
    if unchanged.returncode == 0:
        folders = ", ".join(f"{d}/" for d in EXPORT_SOURCES)
        return {}, f"previous commit {commit} (nothing changed under {folders}: same artefacts)"
    tree, shim = work / "previous-src", work / "previous-shim"
    try:
        unpack_commit(repo, "HEAD~1", tree, timeout=60)
    except ArchiveFailed as exc:
        return None, str(exc)
    if not (tree / "mvit").is_dir() or not (tree / "exporters" / "api.py").is_file():
        return None, f"previous commit {commit} has no mvit.exporters.api to export with"
    _shim_package(tree, shim)
    env = {**os.environ, "PYTHONPATH": str(shim) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    items = [f"{r}:{RUNTIME_TARGETS[r]}:{c}" for r in runtimes for c in CI_CONFIGS]
    try:
        done = subprocess.run(
            [sys.executable, "-c", _PREVIOUS_EXPORT_SCRIPT, str(work / "previous"), CI_MODEL, *items],
            capture_output=True,
            text=True,
            timeout=PREVIOUS_EXPORT_TIMEOUT_S,
            env=env,
            cwd=work,
        )  # not the checkout: `python -c` puts the cwd first on sys.path
    except subprocess.TimeoutExpired:
        return None, f"exporting with previous commit {commit} took over {PREVIOUS_EXPORT_TIMEOUT_S} s"
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return None, f"previous commit {commit} could not export: {last[:200]}"
    paths, source = {}, None
    for line in done.stdout.splitlines():
        parts = line.split("\t")
        if parts[0] == "source":
            source = Path(parts[1]).resolve()
        if len(parts) == 3 and parts[0] in runtimes:
            paths[(parts[0], parts[1])] = Path(parts[2])
    if source is None or not source.is_relative_to(tree.resolve()):
        return None, f"the previous commit's code was not the one imported (got {source})"
    if len(paths) != len(items):
        return None, f"previous commit {commit} exported {len(paths)} of {len(items)} artefacts"
    return paths, f"previous commit {commit}"


def run_ci(settings: CiSettings, log: Callable[[str], None] = print) -> str:
    """Build, time and compare; return the markdown report. Raises only on this commit's failure."""
    started = time.monotonic()
    runtimes, skipped = [], []
    for runtime in CI_RUNTIMES:
        try:
            runtime_available(runtime)
            runtimes.append(runtime)
        except RuntimeUnavailable as exc:
            skipped.append(str(exc))
    with tempfile.TemporaryDirectory(prefix="mvit-bench-ci-") as tmp:
        work = Path(tmp)
        log(f"exporting {CI_MODEL} A/B for {', '.join(runtimes)} (this commit)")
        current = export_current(work / "current", runtimes)
        baseline, baseline_name = None, "not attempted (--no-previous)"
        if settings.previous:
            log("exporting the same with the previous commit's code")
            baseline, baseline_name = export_previous(settings.repo, work, runtimes)
        notes = list(skipped)
        if baseline == {}:
            notes.append(f"baseline: {baseline_name}; the table therefore shows the noise floor (A/A)")
            baseline = current
        elif baseline is None:
            notes.append(
                f"no previous-commit baseline: {baseline_name}; baseline = this commit's artefacts "
                "timed against themselves (A/A), so the table shows the noise floor only"
            )
            baseline = current
        rows = []
        for (runtime, config), cand in current.items():
            base = baseline[(runtime, config)]
            identical = base != cand and artefact_sha256(base) == artefact_sha256(cand)
            log(f"timing {CI_MODEL} {config} {runtime}: {settings.runs} interleaved pairs")
            outcome = run_ab(
                base, cand, threads=settings.threads, warmups=settings.warmups, runs=settings.runs, threshold=settings.threshold, measure_gemm=False
            )
            b, c = outcome.document["results"]
            name = f"{CI_MODEL} {config} {runtime}" + (" (artefacts byte-identical)" if identical else "")
            rows.append(RowComparison(name, b["stats"]["median_ms"], c["stats"]["median_ms"], outcome.comparison))
    elapsed = time.monotonic() - started
    report = comparison_markdown(
        rows,
        title=f"Latency: this commit vs {'itself (A/A)' if baseline is current else baseline_name}",
        threshold=settings.threshold,
        statistic="median",
        method=f"interleaved ABBA blocks in one process ({BLOCKS.calls} calls, the first {BLOCKS.discard} untimed), "
        f"{settings.runs} pairs after {settings.warmups} warm-ups, {settings.threads} thread(s), "
        "median of paired ratios",
        notes=notes,
    )
    return report + (f"\nInformational only: this step never fails CI on latency. Took {elapsed:.0f} s.\n")
