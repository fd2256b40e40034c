import math

import numpy as np
import pytest

from mvit.benchmarks.stats import LatencyStats, percentile


def test_hand_computed_example():
    s = LatencyStats.from_times([4.0, 1.0, 3.0, 2.0])
    assert s.mean_ms == 2.5 and s.median_ms == 2.5 and s.min_ms == 1.0 and s.max_ms == 4.0
    # h = (n-1) p/100: p90 -> h = 2.7 -> 3 + 0.7 * (4 - 3); p99 -> h = 2.97
    assert s.p90_ms == pytest.approx(3.7) and s.p99_ms == pytest.approx(3.97)
    assert s.std_ms == pytest.approx(math.sqrt(1.25))  # population std


@pytest.mark.parametrize("n", [1, 2, 7, 100, 101])
def test_matches_numpy_linear_percentiles_and_population_std(n):
    x = np.random.default_rng(n).lognormal(2.0, 0.3, n)
    s = LatencyStats.from_times(list(x))
    assert s.median_ms == pytest.approx(np.percentile(x, 50, method="linear"), rel=1e-12)
    assert s.p90_ms == pytest.approx(np.percentile(x, 90, method="linear"), rel=1e-12)
    assert s.p99_ms == pytest.approx(np.percentile(x, 99, method="linear"), rel=1e-12)
    assert s.std_ms == pytest.approx(np.std(x), rel=1e-9, abs=1e-12)
    assert s.mean_ms == pytest.approx(np.mean(x), rel=1e-12)


def test_single_run_and_empty():
    s = LatencyStats.from_times([5.0])
    assert s.std_ms == 0.0 and s.p99_ms == 5.0
    with pytest.raises(ValueError):
        LatencyStats.from_times([])
    with pytest.raises(ValueError):
        percentile([1.0], 101)


def test_dict_keys_are_the_schema_stats():
    from mvit.benchmarks.schema import stats_fields

    assert tuple(LatencyStats.from_times([1.0, 2.0]).as_dict()) == stats_fields()
