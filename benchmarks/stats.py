"""Latency summary statistics, defined so the Swift harness computes the same numbers.

Definitions (mirrored in ios_harness and written out in docs/benchmarks.md):
- mean: sum(x) / n (the paper's figure: mean of 100 runs).
- std: population standard deviation, sqrt(sum(d * d) / n) with d = x - mean (numpy's default
  ddof=0); 0 for a single run. The square is the product d * d, a correctly rounded multiply, and
  not d ** 2: `**` calls the C library's pow(), which may land one ULP away on some inputs.
- both sums are exactly rounded (math.fsum; the Swift side ports its algorithm).
- percentile p (0..100), linear interpolation between closest ranks (numpy's default "linear",
  Hyndman & Fan type 7): sort ascending to s[0..n-1], h = (n - 1) * p / 100, lo = floor(h),
  hi = min(lo + 1, n - 1), value = s[lo] + (h - lo) * (s[hi] - s[lo]).
- median = percentile 50; p90 = percentile 90; p99 = percentile 99; min = s[0]; max = s[n-1].
Pure Python on purpose: the arithmetic is the spec, not a library call.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass


def percentile(sorted_times: Sequence[float], p: float) -> float:
    """Linear-interpolation percentile of an ascending sequence (numpy's default method)."""
    n = len(sorted_times)
    if n == 0:
        raise ValueError("percentile of no values")
    if not 0.0 <= p <= 100.0:
        raise ValueError(f"percentile {p} outside 0..100")
    h = (n - 1) * p / 100.0
    lo = math.floor(h)
    hi = min(lo + 1, n - 1)
    return sorted_times[lo] + (h - lo) * (sorted_times[hi] - sorted_times[lo])


@dataclass(frozen=True)
class LatencyStats:
    mean_ms: float
    median_ms: float
    p90_ms: float
    p99_ms: float
    min_ms: float
    max_ms: float
    std_ms: float

    @classmethod
    def from_times(cls, times_ms: Sequence[float]) -> LatencyStats:
        if len(times_ms) == 0:
            raise ValueError("no timed runs to summarise")
        s = sorted(float(t) for t in times_ms)
        n = len(s)
        mean = math.fsum(s) / n
        std = math.sqrt(math.fsum((t - mean) * (t - mean) for t in s) / n)
        return cls(
            mean_ms=mean,
            median_ms=percentile(s, 50),
            p90_ms=percentile(s, 90),
            p99_ms=percentile(s, 99),
            min_ms=s[0],
            max_ms=s[-1],
            std_ms=std,
        )

    def as_dict(self) -> dict[str, float]:
        return asdict(self)
