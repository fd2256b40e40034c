"""Writes tests/data/harness_golden_stats.json: timing rows on which the square's rounding shows.

Squaring a deviation as `d ** 2` calls the C library's pow(), which is not correctly rounded
everywhere; `d * d` is. On some rows the two differ by one ULP in an element, and on a few of
those the difference survives into std_ms. This script draws phone-like rows (100 log-normal
times around a median, rounded to 0.1 us as the harness's clock gives them) from a fixed seed,
keeps the first rows whose std_ms differs between the two formulas, and records for each the
times, the statistics of benchmarks/stats.py and the std the `** 2` formula gave here. The search
depends on this machine's pow(), so the file is data, not something a test regenerates; the
Swift harness (Tests/MVitBenchCoreTests) and tests/test_harness_stats.py recompute every
statistic from the times and require the same bits.
Re-run: .venv/bin/python tests/data/make_harness_golden_stats.py
"""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

from mvit.benchmarks.stats import LatencyStats

OUT = Path(__file__).parent / "harness_golden_stats.json"
SEED = 20261206
ROWS = 4
MEDIANS_MS = (1.31, 2.2, 4.8, 6.9)


def std_with_pow(times: list[float]) -> float:
    s = sorted(times)
    mean = math.fsum(s) / len(s)
    return math.sqrt(math.fsum((t - mean) ** 2 for t in s) / len(s))


def main() -> None:
    rng = random.Random(SEED)
    rows, drawn = [], 0
    while len(rows) < ROWS:
        drawn += 1
        median = rng.choice(MEDIANS_MS)
        times = [round(median * rng.lognormvariate(0.0, 0.05), 4) for _ in range(100)]
        stats = LatencyStats.from_times(times).as_dict()
        if std_with_pow(times) != stats["std_ms"]:
            rows.append({"times_ms": times, "stats": stats, "std_ms_with_pow": std_with_pow(times)})
    doc = {"about": f"rows {ROWS} of {drawn} drawn (seed {SEED}) whose std_ms differs between d * d and d ** 2", "rows": rows}
    OUT.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
