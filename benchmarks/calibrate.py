"""Measure the verdict method's false-alarm rate and power on simulated timings.

    python -m mvit.benchmarks.calibrate --trials 400 --runs 100

Simulated latencies: true time t (1.0 for the base, `ratio` for the candidate) times
  - per-run jitter: lognormal(0, sigma)
  - load spikes: with probability p_spike a run is slowed by 1 + Exponential(mean spike)
  - machine state: a two-state Markov chain (quiet 1.0 / busy `busy_factor`), switching with
    probability p_switch per run; it multiplies every run measured in that state.
Paired (interleaved `ab`): pair i shares the machine state, the two runs get their own jitter
and spikes. Unpaired (`compare` of two files): the base's runs come first, then the
candidate's, each walking its own stretch of the chain, as two separate runs do.
A rate is the fraction of trials with that verdict; the table is what docs/benchmark-results.md quotes.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

import numpy as np

from .verdict import DEFAULT_THRESHOLD, Verdict, compare_samples


@dataclass(frozen=True)
class Machine:
    name: str
    sigma: float
    p_spike: float
    spike: float
    p_switch: float
    busy_factor: float


MACHINES = (
    Machine("quiet", sigma=0.02, p_spike=0.02, spike=0.3, p_switch=0.0, busy_factor=1.0),
    Machine("shared", sigma=0.08, p_spike=0.15, spike=0.5, p_switch=0.05, busy_factor=1.6),
)
RATIOS = (1.0, 1.05, 1.15, 1.2, 1.5)


def machine_states(m: Machine, n: int, rng: np.random.Generator) -> np.ndarray:
    state = rng.random() < 0.5 if m.p_switch else False
    out = np.empty(n)
    for i in range(n):
        if rng.random() < m.p_switch:
            state = not state
        out[i] = m.busy_factor if state else 1.0
    return out


def noisy(true_ms: float, states: np.ndarray, m: Machine, rng: np.random.Generator) -> np.ndarray:
    n = len(states)
    jitter = rng.lognormal(0.0, m.sigma, n)
    spikes = 1.0 + (rng.random(n) < m.p_spike) * rng.exponential(m.spike, n)
    return true_ms * states * jitter * spikes


# (label, paired, unpaired quantile): the two methods mvit-bench uses, and the unpaired ratio of
# medians as the yardstick the p10 statistic is judged against.
METHODS = (("ab: paired, median of ratios", True, 0.5), ("compare: unpaired, p10 ratio", False, 0.10), ("(not used) unpaired, median ratio", False, 0.5))


def simulate(m: Machine, ratio: float, runs: int, paired: bool, quantile: float, rng: np.random.Generator, threshold: float) -> Verdict:
    if paired:
        states = machine_states(m, runs, rng)
        base, cand = noisy(10.0, states, m, rng), noisy(10.0 * ratio, states, m, rng)
    else:
        states = machine_states(m, 2 * runs, rng)
        base, cand = noisy(10.0, states[:runs], m, rng), noisy(10.0 * ratio, states[runs:], m, rng)
    seed = int(rng.integers(1 << 31))
    return compare_samples(base, cand, paired=paired, threshold=threshold, seed=seed, quantile=quantile).verdict


def calibrate(trials: int, runs: int, seed: int, threshold: float) -> list[dict]:
    rng = np.random.default_rng(seed)
    rows = []
    for m in MACHINES:
        for label, paired, quantile in METHODS:
            for ratio in RATIOS:
                verdicts = [simulate(m, ratio, runs, paired, quantile, rng, threshold) for _ in range(trials)]
                rows.append({"machine": m.name, "method": label, "ratio": ratio, **{v.value: verdicts.count(v) / trials for v in Verdict}})
    return rows


def markdown(rows: list[dict], trials: int, runs: int, threshold: float) -> str:
    lines = [
        f"{trials} trials per row, {runs} runs per side, threshold ±{threshold:.0%}; columns: fraction of trials with each verdict",
        "",
        "| machine | method | true ratio | REGRESSION | SAME | UNKNOWN | IMPROVEMENT |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['machine']} | {r['method']} | {r['ratio']:.2f} | {r['REGRESSION']:.3f} | {r['SAME']:.3f} | {r['UNKNOWN']:.3f} | {r['IMPROVEMENT']:.3f} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=400)
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD)
    args = parser.parse_args(argv)
    print(markdown(calibrate(args.trials, args.runs, args.seed, args.threshold), args.trials, args.runs, args.threshold), end="")


if __name__ == "__main__":
    main()
