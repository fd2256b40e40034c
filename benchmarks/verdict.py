"""Is the candidate slower than the base? A ratio, its bootstrap confidence interval, a verdict.

Method (docs/benchmarks.md, "Regression verdicts"; rates measured by benchmarks/calibrate.py):
- Unpaired samples (two result files, measured at different times): ratio of the 10th
  percentiles, q10(candidate) / q10(base), bootstrap resampling each side independently.
  Background load only ever adds time, so the fast tail is the model's own speed; on a
  simulated shared machine it gave far fewer false alarms than a ratio of medians
  (calibrate.py; rates in docs/benchmark-results.md).
- Paired samples (interleaved `mvit-bench ab` runs, pair i = base run and candidate run
  measured back to back): exp(median(log(c_i / b_i))), bootstrap resampling pairs, so slow drift of the
  machine cancels inside each pair.
- Confidence interval: percentile bootstrap, `resamples` draws, seeded, so a rerun on the same
  data gives the same verdict.
- Verdict with threshold t (default 10%), band = [1/(1+t), 1+t] (symmetric in log space, so
  swapping base and candidate swaps REGRESSION and IMPROVEMENT):
    fewer than `min_runs` samples on a side     -> UNKNOWN (too little data)
    CI entirely above 1+t                        -> REGRESSION
    CI entirely below 1/(1+t)                    -> IMPROVEMENT
    CI entirely inside the band                  -> SAME
    anything else (CI straddles a band edge)     -> UNKNOWN
  A verdict is only given when the whole interval agrees; the data decide or we say UNKNOWN.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

DEFAULT_THRESHOLD = 0.10
DEFAULT_CONFIDENCE = 0.95
DEFAULT_RESAMPLES = 2000
DEFAULT_MIN_RUNS = 20
DEFAULT_SEED = 20261123
UNPAIRED_QUANTILE = 0.10


class Verdict(str, enum.Enum):
    REGRESSION = "REGRESSION"
    IMPROVEMENT = "IMPROVEMENT"
    SAME = "SAME"
    UNKNOWN = "UNKNOWN"


@dataclass(frozen=True)
class Comparison:
    verdict: Verdict
    ratio: float | None  # candidate / base; > 1 means the candidate is slower
    ci_low: float | None
    ci_high: float | None
    base_n: int
    candidate_n: int
    paired: bool
    reason: str  # one short phrase saying why this verdict

    def ratio_text(self) -> str:
        if self.ratio is None:
            return "n/a"
        if self.ci_low is None:
            return f"{self.ratio:.3f}"
        return f"{self.ratio:.3f} [{self.ci_low:.3f}, {self.ci_high:.3f}]"


_BOOTSTRAP_CHUNK = 4_000_000  # resampled values held at once (32 MB): a 100k-run file must not need 1.6 GB


def _bootstrap_quantiles(samples: np.ndarray, q: float, resamples: int, rng: np.random.Generator) -> np.ndarray:
    rows = max(1, _BOOTSTRAP_CHUNK // len(samples))
    out = []
    for start in range(0, resamples, rows):
        idx = rng.integers(0, len(samples), size=(min(rows, resamples - start), len(samples)))
        out.append(np.quantile(samples[idx], q, axis=1))
    return np.concatenate(out)


def decide(ratio: float, ci_low: float, ci_high: float, threshold: float) -> tuple[Verdict, str]:
    upper, lower = 1.0 + threshold, 1.0 / (1.0 + threshold)
    if ci_low > upper:
        return Verdict.REGRESSION, f"slower by more than {threshold:.0%} (whole CI above {upper:.3f})"
    if ci_high < lower:
        return Verdict.IMPROVEMENT, f"faster by more than {threshold:.0%} (whole CI below {lower:.3f})"
    if lower <= ci_low and ci_high <= upper:
        return Verdict.SAME, f"within ±{threshold:.0%} (whole CI inside [{lower:.3f}, {upper:.3f}])"
    return Verdict.UNKNOWN, f"CI straddles the ±{threshold:.0%} band; more runs or a quieter machine needed"


def compare_samples(
    base_ms: Sequence[float] | np.ndarray,
    candidate_ms: Sequence[float] | np.ndarray,
    *,
    paired: bool = False,
    threshold: float = DEFAULT_THRESHOLD,
    confidence: float = DEFAULT_CONFIDENCE,
    resamples: int = DEFAULT_RESAMPLES,
    min_runs: int = DEFAULT_MIN_RUNS,
    seed: int = DEFAULT_SEED,
    quantile: float = UNPAIRED_QUANTILE,
) -> Comparison:
    """Compare two latency samples (ms). `paired` means base_ms[i] and candidate_ms[i] were
    measured back to back (interleaved): the statistic is the median of their per-pair ratios.
    Unpaired, it is the ratio of the `quantile` of each side."""
    b = np.asarray(base_ms, dtype=np.float64)
    c = np.asarray(candidate_ms, dtype=np.float64)
    if paired and len(b) != len(c):
        raise ValueError(f"paired comparison needs equal lengths, got {len(b)} and {len(c)}")
    if np.any(b <= 0) or np.any(c <= 0) or not (np.all(np.isfinite(b)) and np.all(np.isfinite(c))):
        raise ValueError("latencies must be positive finite numbers")
    n_b, n_c = len(b), len(c)
    if min(n_b, n_c) == 0:
        return Comparison(Verdict.UNKNOWN, None, None, None, n_b, n_c, paired, "no runs on one side")
    if paired:
        log_ratios = np.log(c / b)
        ratio = math.exp(float(np.median(log_ratios)))
    else:
        ratio = float(np.quantile(c, quantile) / np.quantile(b, quantile))
    if min(n_b, n_c) < min_runs:
        return Comparison(
            Verdict.UNKNOWN,
            ratio,
            None,
            None,
            n_b,
            n_c,
            paired,
            f"too few runs ({min(n_b, n_c)} < {min_runs}) to decide",
        )
    rng = np.random.default_rng(seed)
    if paired:
        boot = np.exp(_bootstrap_quantiles(log_ratios, 0.5, resamples, rng))
    else:
        boot = _bootstrap_quantiles(c, quantile, resamples, rng) / _bootstrap_quantiles(b, quantile, resamples, rng)
    alpha = (1.0 - confidence) / 2.0
    lo, hi = (float(v) for v in np.quantile(boot, [alpha, 1.0 - alpha]))
    verdict, reason = decide(ratio, lo, hi, threshold)
    return Comparison(verdict, ratio, lo, hi, n_b, n_c, paired, reason)
