"""Is a variant (quantised, fp16...) worth shipping instead of the fp32 artefact of the same target?

Recommended only when it is at least 1.2x faster or at least 2x smaller AND loses at most 1.0
point of the task's headline metric (top-1, mIoU, mAP) against the baseline on the same images.
Otherwise the line says which condition failed, with the numbers. "Only when" leaves room for
one more condition a user would insist on: a variant measured more than 1.2x SLOWER (speed-up
below 1/1.2) is not recommended however small it is. ONNX Runtime's dynamic int8 ran 12x slower
than fp32 on this project's CPU (docs/quantization.md); a smaller file is no bargain at that price.

- size: bytes on disk (a folder artefact: every file in it), baseline / variant;
- speed: benchmarks' interleaved A/B (`mvit-bench ab`: ABBA blocks in one process), the median
  of paired time ratios, as baseline time / variant time, with its 95% bootstrap interval;
- accuracy drop: baseline minus variant, in points (x100), scored on the same images, with the
  paired bootstrap interval (bootstrap.py).
The rule reads the point estimates; the intervals are printed beside them so a reader can see
how firm each number is.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from mvit.errors import MvitError, one_line

MIN_SPEEDUP = 1.2
MIN_SIZE_RATIO = 2.0
MAX_DROP_POINTS = 1.0
MIN_SPEEDUP_WHEN_SMALLER = 1.0 / MIN_SPEEDUP  # a smaller variant may be a little slower, not much
METRIC_NAMES = {"top1": "top-1", "miou": "mIoU", "map": "mAP"}


class VerdictError(MvitError):
    """A variant and a baseline that cannot be compared (exit 2)."""


@dataclass
class Speed:
    speedup: float | None  # baseline time / variant time; > 1: the variant is faster
    ci: list[float] | None
    runs: int
    note: str | None = None  # why it was not measured


@dataclass
class Verdict:
    variant: str
    baseline: str
    size_ratio: float  # baseline bytes / variant bytes
    speedup: float | None
    speedup_ci: list[float] | None
    metric: str | None
    drop_points: float | None  # baseline - variant, x100
    drop_ci: list[float] | None
    recommended: bool
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def line(self) -> str:
        parts = [f"{self.size_ratio:.2f}x smaller"]
        if self.speedup is not None:
            ci = f" [{self.speedup_ci[0]:.2f}, {self.speedup_ci[1]:.2f}]" if self.speedup_ci else ""
            parts.append(f"{self.speedup:.2f}x faster{ci}")
        if self.drop_points is not None:
            ci = f" [{_signed(self.drop_ci[0])}, {_signed(self.drop_ci[1])}]" if self.drop_ci else ""
            parts.append(f"{METRIC_NAMES.get(self.metric or '', self.metric)} drop {_signed(self.drop_points)} points{ci}")
        verdict = "recommended" if self.recommended else f"not recommended: {self.reason}"
        return f"{self.variant} vs {self.baseline}: {', '.join(parts)}: {verdict}"


def _signed(points: float) -> str:
    return f"{round(points, 2) + 0.0:+.2f}"  # never "-0.00"


def decide(size_ratio: float, speedup: float | None, drop_points: float | None, metric: str | None, speed_note: str | None = None) -> tuple[bool, str]:
    """The rule on point estimates: (recommended, why or why not)."""
    why_not = []
    faster = speedup is not None and speedup >= MIN_SPEEDUP
    smaller = size_ratio >= MIN_SIZE_RATIO
    if not (faster or smaller):
        speed = f"only {speedup:.2f}x faster" if speedup is not None else f"speed not measured ({speed_note or 'no A/B run'})"
        why_not.append(f"{speed} and only {size_ratio:.2f}x smaller (needs >= {MIN_SPEEDUP}x faster or >= {MIN_SIZE_RATIO:g}x smaller)")
    if smaller and not faster and speedup is not None and speedup < MIN_SPEEDUP_WHEN_SMALLER:
        why_not.append(f"{size_ratio:.2f}x smaller but {1.0 / speedup:.2f}x slower on this machine (at most {MIN_SPEEDUP:g}x slower allowed)")
    name = METRIC_NAMES.get(metric or "", metric or "accuracy")
    if drop_points is None:
        why_not.append("accuracy not measured on labelled data (pass --data)")
    elif drop_points > MAX_DROP_POINTS:
        why_not.append(f"loses {drop_points:.2f} points of {name} (at most {MAX_DROP_POINTS:g} allowed)")
    if why_not:
        return False, "; ".join(why_not)
    gain = f"{speedup:.2f}x faster" if faster and speedup is not None else f"{size_ratio:.2f}x smaller"
    return True, f"{gain}, loses {max(drop_points or 0.0, 0.0):.2f} points of {name}"


def size_bytes(path: Path) -> int:
    from mvit.exporters.api import artefact_size_bytes

    return artefact_size_bytes(Path(path))


def check_same_target(variant: Path, baseline: Path) -> None:
    from mvit.exporters.api import target_for_path

    a, b = target_for_path(Path(variant)), target_for_path(Path(baseline))
    if a != b:
        raise VerdictError(
            f"{variant} is an artefact of target {a} but --baseline {baseline} is one of {b}; compare variants of one target with that target's fp32 artefact"
        )


def measure_speed(baseline: Path, variant: Path, *, runs: int, warmups: int, threads: int, on_step=None) -> Speed:
    """Interleaved A/B with benchmarks' machinery; a runtime that cannot time here is a note, not a failure."""
    from mvit.benchmarks.ab import run_ab

    try:
        outcome = run_ab(Path(baseline), Path(variant), threads=threads, warmups=warmups, runs=runs, on_step=on_step, measure_gemm=False)
    except MvitError as exc:
        return Speed(None, None, 0, one_line(exc, 160))
    c = outcome.comparison  # candidate time / base time
    if c.ratio is None:
        return Speed(None, None, 0, c.reason)
    ci = [1.0 / c.ci_high, 1.0 / c.ci_low] if c.ci_low is not None and c.ci_high is not None else None
    return Speed(1.0 / c.ratio, ci, runs, None if ci else c.reason)


def judge(variant: Path, baseline: Path, speed: Speed | None, metric: str | None, difference: dict[str, Any] | None) -> Verdict:
    """`difference` is variant - baseline for `metric` ({"value", "ci"}, fractions), from bootstrap."""
    ratio = size_bytes(baseline) / max(size_bytes(variant), 1)
    drop = drop_ci = None
    if difference is not None and difference.get("value") is not None:
        drop = -100.0 * float(difference["value"])
        if difference.get("ci"):
            lo, hi = difference["ci"]
            drop_ci = [-100.0 * hi, -100.0 * lo]
    speedup = speed.speedup if speed else None
    ok, reason = decide(ratio, speedup, drop, metric, speed.note if speed else "--no-speed")
    return Verdict(Path(variant).name, Path(baseline).name, ratio, speedup, speed.ci if speed else None, metric, drop, drop_ci, ok, reason)
