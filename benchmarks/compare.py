"""`mvit-bench compare BASE CANDIDATE`: row-by-row verdicts between two results files.

Rows match on what was measured (model, config, task, runtime, compute units, precision, input
size, batch). Two files are two separate runs, so the samples are unpaired (statistic: the 10th
percentile of each side, see verdict.py); a difference in the
machine between them (another CPU, another thread count, or a GEMM probe that moved by more than
the threshold) turns any REGRESSION/IMPROVEMENT into UNKNOWN rather than blaming the model.
Interleaved measurements (`mvit-bench ab`) are the robust way to compare on a shared machine.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from .report import runtime_label
from .verdict import DEFAULT_MIN_RUNS, DEFAULT_SEED, DEFAULT_THRESHOLD, UNPAIRED_QUANTILE, Comparison, Verdict, compare_samples

DECISIVE = (Verdict.REGRESSION, Verdict.IMPROVEMENT)


def row_key(r: dict) -> tuple:
    return (r["model"], r["config"], r["task"], r["runtime"], r.get("compute_units"), r["precision"], tuple(r["input_size"]), r["batch"])


def row_name(r: dict) -> str:
    return f"{r['model']} {r['config']} {runtime_label(r)} {r['precision']} {r['input_size'][0]}x{r['input_size'][1]}"


@dataclass(frozen=True)
class RowComparison:
    name: str
    base_ms: float | None  # the statistic the verdict uses (p10 unpaired, median for ab)
    candidate_ms: float | None
    comparison: Comparison


def _machine_differences(base: dict, candidate: dict, threshold: float) -> list[str]:
    notes = []
    mb, mc = base["machine"], candidate["machine"]
    for key in ("device_model", "cpu", "cores"):
        if mb[key] != mc[key]:
            notes.append(f"different machines ({key}: {mb[key]} vs {mc[key]})")
    gb, gc = base.get("gemm_gflops"), candidate.get("gemm_gflops")
    if gb and gc and abs(gc / gb - 1.0) > threshold:
        notes.append(f"the machine's GEMM speed moved between runs ({gb:.0f} vs {gc:.0f} GFLOP/s)")
    return notes


def _undecided(c: Comparison, why: str) -> Comparison:
    return replace(c, verdict=Verdict.UNKNOWN, reason=why) if c.verdict in DECISIVE else c


def compare_documents(
    base: dict, candidate: dict, *, threshold: float = DEFAULT_THRESHOLD, min_runs: int = DEFAULT_MIN_RUNS, seed: int = DEFAULT_SEED
) -> tuple[list[RowComparison], list[str]]:
    """Compare matching rows; returns (rows, notes about the whole comparison)."""
    notes = _machine_differences(base, candidate, threshold)
    base_rows = {row_key(r): r for r in base["results"]}
    cand_rows = {row_key(r): r for r in candidate["results"]}
    out = []
    for key in list(dict.fromkeys([*base_rows, *cand_rows])):
        b, c = base_rows.get(key), cand_rows.get(key)
        if b is None or c is None:
            present = base_rows[key] if b is not None else cand_rows[key]
            side = "base" if b is None else "candidate"
            comparison = Comparison(
                Verdict.UNKNOWN, None, None, None, len(b["times_ms"]) if b else 0, len(c["times_ms"]) if c else 0, False, f"row missing from {side}"
            )
            out.append(RowComparison(row_name(present), b and _p10(b), c and _p10(c), comparison))
            continue
        unusable = _unusable(b, "base") or _unusable(c, "candidate")
        if unusable:
            comparison = Comparison(Verdict.UNKNOWN, None, None, None, len(b["times_ms"]), len(c["times_ms"]), False, unusable)
            out.append(RowComparison(row_name(b), _p10(b), _p10(c), comparison))
            continue
        comparison = compare_samples(b["times_ms"], c["times_ms"], paired=False, threshold=threshold, min_runs=min_runs, seed=seed)
        if b.get("threads") != c.get("threads"):
            comparison = _undecided(comparison, f"thread counts differ ({b.get('threads')} vs {c.get('threads')})")
        elif notes:
            comparison = _undecided(comparison, notes[0])
        out.append(RowComparison(row_name(b), _p10(b), _p10(c), comparison))
    return out, notes


def _unusable(r: dict, side: str) -> str | None:
    """Why this row's times cannot give a ratio, or None. A 0 ms run is schema-valid (a clock too
    coarse for the model) but no ratio can be formed with it; NaN/inf never get past load_results."""
    times = np.asarray(r["times_ms"], dtype=np.float64)
    if not np.all(np.isfinite(times)):
        return f"{side} has non-finite timings; no ratio"
    if np.any(times <= 0):
        return f"{side} has {int(np.sum(times <= 0))} timing(s) of 0 ms (clock too coarse?); no ratio"
    return None


def _p10(r: dict) -> float:
    return float(np.quantile(r["times_ms"], UNPAIRED_QUANTILE))


def has_regression(rows: list[RowComparison]) -> bool:
    return any(r.comparison.verdict is Verdict.REGRESSION for r in rows)


def comparison_markdown(rows: list[RowComparison], *, title: str, threshold: float, method: str, statistic: str, notes: Sequence[str] = ()) -> str:
    lines = [f"### {title}", ""]
    lines += [f"- note: {n}" for n in notes]
    lines += [
        f"- method: {method}; 95% bootstrap CI; threshold ±{threshold:.0%}; ratio = candidate / base (> 1 is slower)",
        "",
        f"| row | base {statistic} ms | candidate {statistic} ms | ratio [95% CI] | verdict | why |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        c = r.comparison
        fmt = lambda v: "-" if v is None else f"{v:.2f}"  # noqa: E731
        lines.append(f"| {r.name} | {fmt(r.base_ms)} | {fmt(r.candidate_ms)} | {c.ratio_text()} | **{c.verdict.value}** | {c.reason} |")
    counts = {v: sum(r.comparison.verdict is v for r in rows) for v in Verdict}
    lines += ["", "Summary: " + ", ".join(f"{n} {v.value}" for v, n in counts.items() if n) + "."]
    return "\n".join(lines) + "\n"
