"""benchmarks/stats.py and the Swift harness's LatencyStats give the same bits.

No Swift toolchain runs here, so `SwiftLatencyStats` below is LatencyStats.swift transcribed line
by line (ExactSum and its rounding step included); the source checks keep the transcription
honest about the lines that decide the bits. tests/data/harness_golden_stats.json holds rows on
which squaring with `** 2` (pow) and with a multiply give a different std_ms, so a formula that
drifts back to pow on either side fails here; the Swift XCTest recomputes the same rows.
"""

from __future__ import annotations

import json
import math
import random
import re
from pathlib import Path

import pytest

from mvit.benchmarks.stats import LatencyStats

REPO = Path(__file__).resolve().parents[1]
GOLDEN_STATS = REPO / "tests" / "data" / "harness_golden_stats.json"
SWIFT_STATS = REPO / "ios_harness" / "Sources" / "MVitBenchCore" / "LatencyStats.swift"


def swift_exact_sum(values: list[float]) -> float:
    """ExactSum.of in LatencyStats.swift."""
    partials: list[float] = []
    for value in values:
        x = value
        kept = 0
        for index in range(len(partials)):
            y = partials[index]
            if abs(x) < abs(y):
                x, y = y, x
            high = x + y
            low = y - (high - x)
            if low != 0:
                partials[kept] = low
                kept += 1
            x = high
        del partials[kept:]
        if x != 0:
            partials.append(x)
    return _swift_round_partials(partials)


def _swift_round_partials(partials: list[float]) -> float:
    """ExactSum.roundPartials in LatencyStats.swift."""
    if not partials:
        return 0.0
    n = len(partials) - 1
    high = partials[n]
    low = 0.0
    while n > 0:
        x = high
        n -= 1
        y = partials[n]
        high = x + y
        low = y - (high - x)
        if low != 0:
            break
    if n > 0 and ((low < 0 and partials[n - 1] < 0) or (low > 0 and partials[n - 1] > 0)):
        y = low * 2
        x = high + y
        if y == x - high:
            high = x
    return high


def swift_percentile(s: list[float], p: float) -> float:
    """LatencyStats.percentile(sorted:_:) in LatencyStats.swift."""
    h = float(len(s) - 1) * p / 100.0
    lo = int(math.floor(h))
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (h - float(lo)) * (s[hi] - s[lo])


def swift_latency_stats(times_ms: list[float]) -> dict[str, float]:
    """LatencyStats.init(timesMs:) in LatencyStats.swift, as the results JSON's `stats`."""
    s = sorted(times_ms)
    count = float(len(s))
    mean = swift_exact_sum(s) / count
    squares = []
    for time in s:
        deviation = time - mean
        squares.append(deviation * deviation)
    variance = swift_exact_sum(squares) / count
    return {
        "mean_ms": mean,
        "median_ms": swift_percentile(s, 50.0),
        "p90_ms": swift_percentile(s, 90.0),
        "p99_ms": swift_percentile(s, 99.0),
        "min_ms": s[0],
        "max_ms": s[-1],
        "std_ms": math.sqrt(variance),
    }


def bits(stats: dict[str, float]) -> dict[str, str]:
    return {k: float(v).hex() for k, v in stats.items()}


def golden_rows() -> list[dict]:
    return json.loads(GOLDEN_STATS.read_text())["rows"]


def test_the_rows_are_ones_where_pow_and_multiply_differ():
    rows = golden_rows()
    assert len(rows) >= 4
    for row in rows:
        # Recorded where the file was made: pow's std is one ULP off the multiply's.
        assert row["std_ms_with_pow"] != row["stats"]["std_ms"]
        assert abs(row["std_ms_with_pow"] - row["stats"]["std_ms"]) == math.ulp(row["stats"]["std_ms"])


@pytest.mark.parametrize("index", range(4))
def test_python_and_swift_statistics_are_bit_identical_on_the_golden_rows(index):
    row = golden_rows()[index]
    python = LatencyStats.from_times(row["times_ms"]).as_dict()
    assert bits(python) == bits(row["stats"])
    assert bits(swift_latency_stats(row["times_ms"])) == bits(python)


def test_python_and_swift_statistics_agree_on_random_rows():
    rng = random.Random(7)
    for n in (1, 2, 3, 10, 100, 257):
        times = [round(rng.lognormvariate(0.5, 0.4), 4) for _ in range(n)]
        assert bits(swift_latency_stats(times)) == bits(LatencyStats.from_times(times).as_dict()), n
    # The exactly rounded sum is what keeps the mean equal: plain addition loses the 1.0.
    assert swift_exact_sum([1e100, 1.0, -1e100]) == math.fsum([1e100, 1.0, -1e100]) == 1.0


def test_the_transcription_matches_the_swift_source():
    """The lines that decide the bits are the ones transcribed above."""
    source = SWIFT_STATS.read_text()
    code = "\n".join(line.split("//")[0] for line in source.splitlines())  # comments may mention pow
    assert "pow(" not in code and "**" not in code
    assert re.search(r"let deviation = time - mean\s+return deviation \* deviation", code)
    assert "let mean = ExactSum.of(sorted) / count" in code
    assert "stdMs: variance.squareRoot()" in code
    assert "let h = Double(sorted.count - 1) * p / 100.0" in code
    assert "return sorted[lo] + (h - Double(lo)) * (sorted[hi] - sorted[lo])" in code


def test_a_pow_square_is_caught_by_the_golden_rows():
    """What the golden rows are for: the `** 2` formula gives other bits on them."""
    row = golden_rows()[0]
    s = sorted(row["times_ms"])
    mean = math.fsum(s) / len(s)
    with_pow = math.sqrt(math.fsum((t - mean) ** 2 for t in s) / len(s))
    # On a C library whose pow() squares exactly this equals the multiply; the recorded value
    # from the machine that made the file then still differs.
    assert with_pow == row["std_ms_with_pow"] or with_pow == row["stats"]["std_ms"]
    assert float(row["std_ms_with_pow"]).hex() != float(LatencyStats.from_times(s).std_ms).hex()
