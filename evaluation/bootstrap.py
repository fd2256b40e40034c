"""95% intervals by resampling images, and paired differences on the same resampled images.

Percentile bootstrap over images: each resample draws N images with replacement (a fixed seed,
so a rerun gives the same intervals), every metric is recomputed from the per-image records
with the draw counts as weights, and the 2.5th and 97.5th percentiles bound the interval. For a
difference between two models, both are scored on the same draw and the difference is taken per
draw: whatever makes an image easy or hard cancels inside each pair, so the paired interval is
much narrower than the two separate intervals suggest.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Protocol

import numpy as np

SEED = 20261130
CONFIDENCE = 0.95
_CHUNK = 2_000_000  # image weights held at once: resamples x images


class Records(Protocol):
    def __len__(self) -> int: ...

    def metrics(self, weights: np.ndarray | None = None) -> dict[str, np.ndarray]: ...


def draws(n: int, resamples: int, seed: int = SEED) -> Iterator[np.ndarray]:
    """[b, n] counts of each image in each resample, in chunks, the same for every model."""
    rng = np.random.default_rng(seed)
    rows = max(1, _CHUNK // max(n, 1))
    for start in range(0, resamples, rows):
        picks = rng.integers(0, n, size=(min(rows, resamples - start), n))
        yield np.stack([np.bincount(p, minlength=n) for p in picks])


def _interval(values: np.ndarray) -> list[float] | None:
    values = values[np.isfinite(values)]
    if len(values) == 0:
        return None
    tail = (1 - CONFIDENCE) / 2 * 100
    lo, hi = np.percentile(values, [tail, 100 - tail])
    return [float(lo), float(hi)]


def _finite(value: float) -> float | None:
    """NaN (a metric with nothing to score, e.g. no ground-truth box) is reported as null."""
    return float(value) if np.isfinite(value) else None


def bootstrap(records: dict[str, Records], resamples: int, reference: str | None = None, seed: int = SEED) -> dict[str, dict[str, Any]]:
    """Per model: each metric's value and interval; against `reference`, the paired difference.

    Returns {model: {metric: {"value", "ci", "difference": {"value", "ci"}}}}."""
    names = list(records)
    n = len(records[names[0]])
    if any(len(r) != n for r in records.values()):
        raise ValueError("every model must be scored on the same images")
    plain = {m: {k: _finite(v[0]) for k, v in records[m].metrics().items()} for m in names}
    drawn: dict[str, dict[str, list[np.ndarray]]] = {m: {} for m in names}
    if resamples > 0 and n > 0:
        for weights in draws(n, resamples, seed):
            for m in names:
                for key, values in records[m].metrics(weights).items():
                    drawn[m].setdefault(key, []).append(values)
    out: dict[str, dict[str, Any]] = {}
    for m in names:
        out[m] = {}
        for key, value in plain[m].items():
            samples = np.concatenate(drawn[m][key]) if drawn[m].get(key) else np.empty(0)
            entry: dict[str, Any] = {"value": value, "ci": _interval(samples)}
            if reference is not None and m != reference:
                ref_samples = np.concatenate(drawn[reference][key]) if drawn[reference].get(key) else np.empty(0)
                ref_value = plain[reference][key]
                entry["difference"] = {
                    "value": None if value is None or ref_value is None else value - ref_value,
                    "ci": _interval(samples - ref_samples) if len(samples) else None,
                }
            out[m][key] = entry
    return out


def paired_difference(records: dict[str, Records], first: str, second: str, resamples: int, seed: int = SEED) -> dict[str, dict[str, Any]]:
    """first - second for every metric, with its paired interval."""
    result = bootstrap({first: records[first], second: records[second]}, resamples, reference=second, seed=seed)
    return {key: entry["difference"] for key, entry in result[first].items()}
