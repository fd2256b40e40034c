"""`mvit-bench calibrate-ci`: the CI latency step's false-alarm rate and power, measured here.

The CI step (benchmarks/ci.py) times each MobileViT-XXS row (configs A/B x ONNX Runtime/LiteRT)
with `run_ab`: interleaved ABBA blocks, its settings (`CiSettings`: 60 pairs, 5 warm-ups, 1
thread, ±10%), verdict from the paired ratios. This command runs that same call K times per row
on two candidates: a byte copy of the artefact (identical builds: any REGRESSION is a false
alarm) and a build that is a known fraction slower with bit-identical outputs
(benchmarks/slowed.py: any REGRESSION is a catch; `--identical-only` skips it). The report adds
the identical-build runs with the candidate's times multiplied by 1.15 and 1.20 afterwards: real
noise around an exactly known slowdown. Counts come with Wilson 95% intervals, every
run keeps its timings and the load average before and after it, and the JSON is rewritten after
every trial, so an interrupted calibration keeps what it measured.

"Longer steps" are resampled, not measured: the pairs of k different measured trials of a row
are joined into one k x 60-pair sample and judged again; it estimates what more pairs per step
would give, from real timings, but draws share trials and are not independent.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from mvit.errors import MvitError

from .files import atomic_write_text
from .slowed import PROBE_LAYERS, SIZING_PAIRS
from .verdict import Verdict, compare_samples

IDENTICAL, SLOWED = "identical", "slowed"
CONDITIONS = (IDENTICAL, SLOWED)
WILSON_Z = 1.959964  # two-sided 95%
INJECTED = (1.15, 1.20)
RESAMPLED_TRIALS = (2, 3, 4)  # "longer steps": 120, 180, 240 pairs at the CI's 60


@dataclass
class Trial:
    """One run of the CI step's timing for one row: base vs candidate, paired times in ms."""

    index: int
    row: str
    condition: str  # IDENTICAL, SLOWED, or an injected slowdown of IDENTICAL (with_injected)
    base_ms: list[float]
    candidate_ms: list[float]
    load_before: float  # 1-minute load average (os.getloadavg) before / after the run
    load_after: float
    wall_s: float


def wilson(k: int, n: int, z: float = WILSON_Z) -> tuple[float, float]:
    """Wilson score interval for k successes in n trials (stays inside [0, 1] at k = 0 or n)."""
    if n == 0:
        return 0.0, 1.0
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def judge(base_ms: list[float], candidate_ms: list[float], threshold: float) -> Verdict:
    """The CI step's verdict on one row (run_ab's own call)."""
    return compare_samples(base_ms, candidate_ms, paired=True, threshold=threshold).verdict


@dataclass
class Rate:
    row: str
    condition: str
    verdicts: dict[str, int]
    n: int
    median_ratio: float | None  # median of every paired ratio of these trials
    load: tuple[float, float]  # lowest and highest load average seen
    wall_s: float  # mean seconds per run

    @property
    def regressions(self) -> int:
        return self.verdicts.get(Verdict.REGRESSION.value, 0)

    @property
    def interval(self) -> tuple[float, float]:
        return wilson(self.regressions, self.n)


def _rate(row: str, condition: str, trials: list[Trial], verdicts: list[Verdict]) -> Rate:
    ratios = [c / b for t in trials for b, c in zip(t.base_ms, t.candidate_ms)]
    loads = [x for t in trials for x in (t.load_before, t.load_after)]
    return Rate(
        row,
        condition,
        {v.value: verdicts.count(v) for v in Verdict},
        len(verdicts),
        statistics.median(ratios) if ratios else None,
        (min(loads), max(loads)),
        statistics.fmean(t.wall_s for t in trials),
    )


STEP = "CI step (any of its rows)"


def summarize(trials: list[Trial], threshold: float) -> list[Rate]:
    """Per row and condition; plus, on identical builds, whole CI steps: a step (one trial index
    over every row) raises a false alarm when any of its rows says REGRESSION."""
    out = []
    for row in dict.fromkeys(t.row for t in trials):
        for condition in dict.fromkeys(t.condition for t in trials):
            chosen = [t for t in trials if t.row == row and t.condition == condition]
            if chosen:
                out.append(_rate(row, condition, chosen, [judge(t.base_ms, t.candidate_ms, threshold) for t in chosen]))
    same = [t for t in trials if t.condition == IDENTICAL]
    rows = set(t.row for t in same)
    steps: dict[int, list[Trial]] = {}
    for t in same:
        steps.setdefault(t.index, []).append(t)
    complete = {i: ts for i, ts in steps.items() if {t.row for t in ts} == rows}
    if len(rows) > 1 and complete:
        verdicts = [_step_verdict([judge(t.base_ms, t.candidate_ms, threshold) for t in ts]) for ts in complete.values()]
        rate = _rate(STEP, IDENTICAL, [t for ts in complete.values() for t in ts], verdicts)
        rate.wall_s *= len(rows)  # a step times every row
        out.append(rate)
    return out


def _step_verdict(rows: list[Verdict]) -> Verdict:
    """A step's worst row: any REGRESSION is an alarm; else any UNKNOWN leaves the step undecided."""
    for v in (Verdict.REGRESSION, Verdict.UNKNOWN, Verdict.IMPROVEMENT):
        if v in rows:
            return v
    return Verdict.SAME


def longer_steps(trials: list[Trial], k: int, threshold: float, draws: int = 200, seed: int = 0) -> list[Rate]:
    """Resampled: verdicts on the joined pairs of k distinct measured trials of the same row."""
    rng = np.random.default_rng(seed)
    out = []
    for row in dict.fromkeys(t.row for t in trials):
        for condition in dict.fromkeys(t.condition for t in trials):
            chosen = [t for t in trials if t.row == row and t.condition == condition]
            if len(chosen) < k:
                continue
            combos = list(itertools.combinations(range(len(chosen)), k))
            if len(combos) > draws:
                combos = [combos[i] for i in rng.choice(len(combos), draws, replace=False)]
            verdicts = [judge([x for i in c for x in chosen[i].base_ms], [x for i in c for x in chosen[i].candidate_ms], threshold) for c in combos]
            rate = _rate(row, condition, chosen, verdicts)
            rate.wall_s *= k
            out.append(rate)
    return out


def with_injected(trials: list[Trial], factors: tuple[float, ...] = INJECTED) -> list[Trial]:
    """`trials` plus, per factor, every identical-build trial with its candidate times multiplied
    by it: this machine's real pair-to-pair noise around an exactly known slowdown."""
    out = list(trials)
    for f in factors:
        out += [
            replace(t, condition=f"{IDENTICAL} x{f:.2f} (injected)", candidate_ms=[c * f for c in t.candidate_ms]) for t in trials if t.condition == IDENTICAL
        ]
    return out


def _fmt_rate(r: Rate, independent: bool = True) -> str:
    lo, hi = r.interval
    interval = f"[{lo:.3f}, {hi:.3f}]" if independent else "-"
    others = " / ".join(str(r.verdicts.get(v.value, 0)) for v in (Verdict.SAME, Verdict.UNKNOWN, Verdict.IMPROVEMENT))
    ratio = f"{r.median_ratio:.3f}" if r.median_ratio is not None else "n/a"
    return (
        f"| {r.row} | {r.condition} | {r.n} | {r.regressions} | {r.regressions / r.n:.3f} | {interval} "
        f"| {others} | {ratio} | {r.load[0]:.1f}-{r.load[1]:.1f} | {r.wall_s:.1f} |"
    )


HEADER = [
    "| row | candidate | runs | REGRESSION | rate | Wilson 95% | SAME / UNKNOWN / IMPROVEMENT | median paired ratio | load avg | s per run |",
    "|---|---|---|---|---|---|---|---|---|---|",
]


def report_markdown(doc: dict) -> str:
    s = doc["settings"]
    trials = with_injected([Trial(**t) for t in doc["trials"]])
    lines = [
        f"### CI latency step, measured: {len({t.index for t in trials})} trials "
        f"({s['runs']} pairs, {s['warmups']} warm-ups, {s['threads']} thread(s), threshold ±{s['threshold']:.0%})",
        "",
    ]
    for row, build in doc["builds"].items():
        lines.append(
            f"- {row}: slowed build = {build['layers']} branch layers, x{build['ratio']:.3f} in "
            f"{SIZING_PAIRS} interleaved pairs ({PROBE_LAYERS}-layer probe: x{build['probe_ratio']:.3f}), outputs "
            f"bit-identical: {build['outputs_identical']}"
        )
    lines += [f"- {note}" for note in doc.get("notes", [])]
    lines += [
        "- identical = a byte copy (REGRESSION is a false alarm); slowed = the slowed build "
        "(REGRESSION is a catch); injected = the identical-build runs with the candidate's times multiplied "
        "by the factor afterwards (real noise, an exact slowdown)",
        "",
        *HEADER,
    ]
    lines += [_fmt_rate(r) for r in summarize(trials, s["threshold"])]
    for k in RESAMPLED_TRIALS:
        resampled = longer_steps(trials, k, s["threshold"])
        if resampled:
            lines += [
                "",
                f"Resampled (not measured): {k} measured trials of a row joined = {k * s['runs']} pairs; "
                "runs = draws of distinct trial sets, which share trials (not independent: no interval); "
                "s per run = k x measured",
                "",
                *HEADER,
            ]
            lines += [_fmt_rate(r, independent=False) for r in resampled]
    if doc.get("export_s") is not None:
        how = "reusing (or exporting) them in --artefact-dir" if doc.get("artefacts_reused") else "exporting them"
        lines += ["", f"This commit's {len({t.row for t in trials})} artefacts: {how} took {doc['export_s']:.0f} s."]
    return "\n".join(lines) + "\n"


@contextmanager
def _workdir(artefact_dir: Path | None) -> Iterator[Path]:
    if artefact_dir is not None:
        artefact_dir.mkdir(parents=True, exist_ok=True)
        yield artefact_dir
        return
    with tempfile.TemporaryDirectory(prefix="mvit-calibrate-ci-") as tmp:
        yield Path(tmp)


Measure = Callable[[Path, Path], tuple[list[float], list[float]]]


def run_trials(
    rows: dict[str, dict[str, Path]],
    trials: int,
    measure: Measure,
    on_trial: Callable[[list[Trial]], None] = lambda done: None,
    log: Callable[[str], None] = print,
) -> list[Trial]:
    """rows: name -> {"base": path, IDENTICAL: path, SLOWED: path}. The two conditions alternate
    which goes first, so neither always meets the same moment of the machine's load."""
    done: list[Trial] = []
    for index in range(trials):
        for r, (row, paths) in enumerate(rows.items()):
            present = [c for c in CONDITIONS if c in paths]
            order = present if (index + r) % 2 == 0 else present[::-1]
            for condition in order:
                before, start = os.getloadavg()[0], time.monotonic()
                base_ms, cand_ms = measure(paths["base"], paths[condition])
                done.append(Trial(index, row, condition, base_ms, cand_ms, before, os.getloadavg()[0], time.monotonic() - start))
        on_trial(done)
        log(f"trial {index + 1}/{trials} done, load average {os.getloadavg()[0]:.1f}")
    return done


Export = Callable[[Path], dict[str, Path]]  # work folder -> row name -> base artefact


def calibrate_ci(
    trials: int,
    slowdown: float,
    out: Path,
    artefact_dir: Path | None = None,
    runtimes: tuple[str, ...] | None = None,
    slowed: bool = True,
    log: Callable[[str], None] = print,
    export: Export | None = None,
) -> dict:
    """`slowed=False`: identical builds only (false alarms), at half the time per trial.
    `export`: the rows' base artefacts come from it (the user's model, `mvit-bench ci --model`)
    instead of MobileViT-XXS A/B; a model whose artefact cannot carry the slowed branch (no
    Softmax) is measured on identical builds, and its power comes from the injected slowdowns."""
    import torch

    from .ab import run_ab
    from .ci import CI_CONFIGS, CI_MODEL, CI_RUNTIMES, CiSettings
    from .runtimes import RuntimeUnavailable, bench_model, build_artefact, runtime_available
    from .slowed import SlowedError, build_slowed

    settings = CiSettings()
    torch.set_num_threads(settings.threads)
    usable = []
    for runtime in runtimes or CI_RUNTIMES:
        try:
            runtime_available(runtime)
            usable.append(runtime)
        except RuntimeUnavailable as exc:
            log(f"skipped: {exc}")
    if not usable and export is None:
        raise RuntimeUnavailable("no CI runtime (onnxruntime, litert) is installed here; nothing to calibrate")
    doc: dict = {
        "settings": {
            "runs": settings.runs,
            "warmups": settings.warmups,
            "threads": settings.threads,
            "threshold": settings.threshold,
            "slowdown": slowdown,
            "trials": trials,
            "cpu_count": os.cpu_count(),
        },
        "builds": {},
        "trials": [],
    }
    with _workdir(artefact_dir) as work:
        start = time.monotonic()
        if export is not None:
            bases = export(work)
        else:
            bases = {
                f"{CI_MODEL} {c} {r}": build_artefact(bench_model(CI_MODEL, c), r, work / r, reuse=artefact_dir is not None) for r in usable for c in CI_CONFIGS
            }
        doc["export_s"] = time.monotonic() - start
        doc["artefacts_reused"] = artefact_dir is not None
        rows: dict[str, dict[str, Path]] = {}
        for name, base in bases.items():
            # Not beside the base: their metadata match it, so a later --artefact-dir reuse could pick them.
            candidates = work / "candidates" / base.suffix.lstrip(".")
            candidates.mkdir(parents=True, exist_ok=True)
            copy = candidates / f"identical_{base.name}"
            shutil.copyfile(base, copy)
            rows[name] = {"base": base, IDENTICAL: copy}
            if slowed:
                try:
                    build = build_slowed(base, candidates / f"slowed_{base.name}", slowdown, settings.threads, log=log)
                except SlowedError as exc:
                    log(f"{name}: identical builds only ({exc})")
                    doc.setdefault("notes", []).append(f"{name}: no slowed build ({exc}); power from the injected rows")
                    continue
                doc["builds"][name] = {"layers": build.layers, "ratio": build.ratio, "probe_ratio": build.probe_ratio, "outputs_identical": True}
                rows[name][SLOWED] = build.path

        def measure(base: Path, candidate: Path) -> tuple[list[float], list[float]]:
            outcome = run_ab(
                base, candidate, threads=settings.threads, warmups=settings.warmups, runs=settings.runs, threshold=settings.threshold, measure_gemm=False
            )
            b, c = outcome.document["results"]
            return b["times_ms"], c["times_ms"]

        def save(done: list[Trial]) -> None:
            doc["trials"] = [asdict(t) for t in done]
            atomic_write_text(out, json.dumps(doc) + "\n")

        run_trials(rows, trials, measure, on_trial=save, log=log)
    return doc


class CalibrationFileError(MvitError):
    """A --from file that calibrate-ci did not write; one line, exit 2."""


def load_calibration(path: Path) -> dict:
    try:
        text = path.read_text()
    except OSError as exc:
        raise CalibrationFileError(f"{path}: cannot read it ({exc.strerror or type(exc).__name__})") from None
    try:
        doc = json.loads(text)
        [Trial(**t) for t in doc["trials"]]
        settings = doc["settings"]
        settings["runs"], settings["warmups"], settings["threads"], float(settings["threshold"])  # noqa: B018
        [(b["layers"], float(b["ratio"]), float(b["probe_ratio"])) for b in doc["builds"].values()]  # the report reads these
    except (ValueError, KeyError, TypeError) as exc:
        raise CalibrationFileError(f"{path}: not a calibrate-ci result ({exc.__class__.__name__}); pass a JSON written by mvit-bench calibrate-ci") from None
    return doc
