"""Per-layer quantisation sensitivity and the mixed precision chosen from it, for any target.

Real checkpoints break int8 in a few layers only: fused BatchNorms leave outlier channels before
SiLU, and a per-tensor activation range stretched over them rounds every other channel to a
handful of levels. So each quantisable layer is quantised alone and the network's output compared
with fp32 on the user's calibration images (`measure`, one task per layer on `mvit.work.run_tasks`);
then the most sensitive layers are kept float, the fewest that let the whole int8 network agree
with fp32 as the task judge demands and, where the target asks for it, bring the output's cosine
with fp32 to a level (`choose`). A target supplies two functions: quantise-with
these layers float (or only this one quantised), and run on the images.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from mvit.work import Workers, run_tasks

from .base import ExportRequest
from .tasks.base import margin
from .tolerances import QUANTISED_TOLERANCES

# The judge the search reproduces on the calibration images (top-1 agreement with fp32).
JUDGE = QUANTISED_TOLERANCES["int8"]

# The search aims above the judge's own limit: it is scored on the calibration images, the judge
# also on photos and noise it never saw.
SEARCH_HEADROOM = 0.05
# Fewer calibration images than this and one disagreement moves the search's agreement by > 6%.
MIN_SEARCH_IMAGES = 16
# fp32 undecided (top two within the judge's margin) on more than this share of the calibration
# images: they are probably unlike what the model was trained for and will see.
MAX_UNDECIDED_SHARE = 0.5
# Top-1 agreement on the calibration images moves in steps of 1/N and stops moving once they all
# agree, while images the search never saw may still disagree; the output's cosine with fp32 keeps
# measuring. On the outlier fixture (docs/quantization.md) every float mix below 0.98 but one failed
# verification, and every mix above it that also agreed on all calibration scenes passed.
COSINE_TARGET = 0.98
# Keeping more than this share of the quantisable layers float is no longer an int8 model.
MAX_FLOAT_SHARE = 0.5


@dataclass(frozen=True)
class LayerSensitivity:
    """One layer quantised alone: its output's cosine with fp32, and whether it stays float."""

    layer: str
    op: str
    metric: float  # mean cosine of the network output with fp32 over the calibration images
    kept_float: bool = False
    why: str = ""


@dataclass
class MixedPrecision:
    """What the search chose: the layers kept float, the agreement reached, and the whole table."""

    float_layers: list[str]
    agreement: float  # top-1 agreement with fp32 on the calibration images' decisive samples
    all_int8_agreement: float  # the same with every layer quantised
    target: float
    passed: bool
    sensitivity: list[LayerSensitivity] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    cosine: float = 0.0  # mean cosine of the output with fp32 on the calibration images, this mix
    cosine_target: float | None = None  # None: the search asked for agreement only

    def as_dict(self) -> dict[str, Any]:
        cosine = {} if self.cosine_target is None else {"output_cosine": round(self.cosine, 5), "output_cosine_target": self.cosine_target}
        return {
            **cosine,
            "metric": "cosine of the output with fp32, this layer alone quantised",
            "float_layers": self.float_layers,
            "agreement": round(self.agreement, 4),
            "all_int8_agreement": round(self.all_int8_agreement, 4),
            "agreement_target": self.target,
            "passed": self.passed,
            "sensitivity": [asdict(s) for s in self.sensitivity],
            "notes": self.notes,
        }


@dataclass(frozen=True)
class MixScore:
    """One mix on the calibration images: top-1 agreement with fp32 (decisive samples) and the output's mean cosine."""

    agreement: float
    cosine: float
    # False when fp32 decides none of the calibration images (random weights, images unlike the
    # task's): agreement then says nothing, and keeping layers float for it would only cost speed.
    judged: bool = True

    @classmethod
    def between(cls, reference: np.ndarray, candidate: np.ndarray) -> MixScore:
        ref, cand = reference.reshape(len(reference), -1), candidate.reshape(len(candidate), -1)
        decisive = decisive_samples(ref, JUDGE.decision_margin)
        return cls(_agreement_on(ref, cand, decisive), mean_cosine(reference, candidate), bool(decisive.any()))


def mean_cosine(reference: np.ndarray, candidate: np.ndarray) -> float:
    a = reference.reshape(len(reference), -1).astype(np.float64)
    b = candidate.reshape(len(candidate), -1).astype(np.float64)
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    return float(np.mean((a * b).sum(axis=1) / np.maximum(norms, 1e-30)))


def top1_agreement(reference: np.ndarray, candidate: np.ndarray, decision_margin: float) -> float:
    """As the classification judge counts it: on samples whose fp32 top two are `decision_margin` apart."""
    ref, cand = reference.reshape(len(reference), -1), candidate.reshape(len(candidate), -1)
    return _agreement_on(ref, cand, decisive_samples(ref, decision_margin))


def _agreement_on(ref: np.ndarray, cand: np.ndarray, decisive: np.ndarray) -> float:
    if not decisive.any():
        return 0.0
    return float(np.mean(ref[decisive].argmax(1) == cand[decisive].argmax(1)))


def decisive_samples(scores: np.ndarray, decision_margin: float) -> np.ndarray:
    """Rows whose top two are `decision_margin` apart relative to that row's own scale, as the judge measures one sample."""
    return np.array([margin(row, 0) >= decision_margin for row in scores], dtype=bool)


def measure(layer_score: Callable[[Any, str], float], shared: Any, layers: Sequence[str], ops: Sequence[str], workers: Workers) -> list[LayerSensitivity]:
    """Each layer quantised alone (`layer_score(shared, layer)`, one task per layer), most sensitive first."""
    metrics = dict(run_tasks(layer_score, shared, list(layers), workers))
    table = [LayerSensitivity(layer, op, round(metrics[i], 5)) for i, (layer, op) in enumerate(zip(layers, ops))]
    return sorted(table, key=lambda s: (s.metric, s.layer))


def choose(
    table: list[LayerSensitivity],
    score_with: Callable[[list[str]], MixScore],
    judge_limit: float = JUDGE.top1_agreement,
    cosine_target: float | None = None,
) -> MixedPrecision:
    """The fewest most-sensitive layers kept float for which `score_with(float_layers)` meets the
    agreement target (and `cosine_target`, if given).

    Doubling then bisection over the ranking: assumes that keeping more of the worst layers float
    never lowers the scores, which holds while they are the outlier layers the ranking found.
    """
    target = min(1.0, judge_limit + SEARCH_HEADROOM)
    ranked = [s.layer for s in table]
    limit = max(1, int(len(ranked) * MAX_FLOAT_SHARE))
    tried: dict[int, MixScore] = {}

    def passes(k: int) -> bool:
        if k not in tried:
            tried[k] = score_with(ranked[:k])
        agrees = tried[k].agreement >= target or not tried[k].judged
        return agrees and (cosine_target is None or tried[k].cosine >= cosine_target)

    low, high = 0, None  # `low` fails (or is the start), `high` passes
    for k in _doubling(limit):
        if passes(k):
            high = k
            break
        low = k
    if high is None:
        best = max(tried, key=lambda n: (tried[n].agreement, tried[n].cosine if cosine_target is not None else 0.0, -n))
        failed = _result(table, ranked[:best], tried, best, target, cosine_target, False)
        reached = f"best top-1 agreement with fp32 {tried[best].agreement:.2f}"
        if cosine_target is not None:
            reached += f" and output cosine {tried[best].cosine:.3f} (aimed at {target:.2f} and {cosine_target:.2f})"
        else:
            reached += f" < {target:.2f}"
        failed.notes.append(
            f"int8 cannot meet the judge at any mix ({reached} with up to {limit} of {len(ranked)} layers float); "
            f"the layers that break it: {breaking_layers(table)}"
        )
        return failed
    while high - low > 1:
        mid = (low + high) // 2
        low, high = (low, mid) if passes(mid) else (mid, high)
    return _result(table, ranked[:high], tried, high, target, cosine_target, True)


def _doubling(limit: int) -> list[int]:
    """0, 1, 2, 4, ... and `limit` itself."""
    steps = [0]
    while steps[-1] < limit:
        steps.append(min(limit, max(1, 2 * steps[-1])))
    return steps


def _result(
    table: list[LayerSensitivity], chosen: list[str], tried: dict[int, MixScore], k: int, target: float, cosine_target: float | None, passed: bool
) -> MixedPrecision:
    position = {s.layer: i for i, s in enumerate(table)}
    goal = "until" if passed else "as the best mix found, though it never"
    aim = f"agreed with fp32 on >= {target:.2f} of the calibration images"
    if cosine_target is not None:
        aim += f" with a mean output cosine >= {cosine_target:.2f}"
    rows = []
    for s in table:
        if s.layer in chosen:
            why = f"rank {position[s.layer] + 1} of {len(table)}: alone it drops the output cosine to {s.metric:.3f}; kept float {goal} {aim}"
            rows.append(LayerSensitivity(s.layer, s.op, s.metric, True, why))
        else:
            rows.append(s)
    return MixedPrecision(list(chosen), tried[k].agreement, tried[0].agreement, target, passed, rows, cosine=tried[k].cosine, cosine_target=cosine_target)


def calibration_notes(reference: np.ndarray, decision_margin: float = JUDGE.decision_margin) -> list[str]:
    """What makes the search's figures weak: too few images, or images fp32 itself cannot decide."""
    notes = []
    count = len(reference)
    if count < MIN_SEARCH_IMAGES:
        notes.append(
            f"only {count} calibration image(s): the mixed-precision search judged agreement on them, and one "
            f"disagreement moves it by {100 / count:.0f}%; give {MIN_SEARCH_IMAGES} or more with --calibration DIR"
        )
    flat = reference.reshape(count, -1)
    undecided = int((~decisive_samples(flat, decision_margin)).sum())
    if undecided > MAX_UNDECIDED_SHARE * count:
        notes.append(
            f"the fp32 model cannot decide between its top two classes on {undecided} of {count} calibration "
            "images: are they like the images it will see? Int8 ranges and the search are set on them"
        )
    return notes


def breaking_layers(table: list[LayerSensitivity], count: int = 5) -> str:
    """The worst layers by sensitivity, for the one-line verdict of a precision no mix can save."""
    worst = table[:count]
    return ", ".join(f"{s.layer} ({s.metric:.3f})" for s in worst)


def record_mixed_precision(request: ExportRequest, result: MixedPrecision) -> MixedPrecision:
    """The search's table into the artefact's `quantization` metadata (the report's `quantisation`)."""
    settings = json.loads(request.metadata.get("quantization", "{}"))
    request.metadata["quantization"] = json.dumps({**settings, **result.as_dict()}, sort_keys=True)
    return result
