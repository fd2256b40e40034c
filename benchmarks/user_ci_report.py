"""The reports of `mvit-bench ci` for a user's model: markdown short enough for a pull-request
comment (verdict table, placement changes, the command to reproduce), JSON for machines, and
the PNG of both sides' latencies."""

from __future__ import annotations

import json
import shlex
from dataclasses import asdict
from pathlib import Path

from .ab import BLOCKS
from .compare import RowComparison, comparison_markdown
from .files import atomic_write_text
from .user_ci import FLOOR, REPORT_KIND, UserCiOutcome, UserCiSettings


def reproduce_command(s: UserCiSettings) -> str:
    args = ["mvit-bench", "ci"]
    if s.model:
        args += ["--model", s.model]
    if s.checkpoint:
        args += ["--checkpoint", s.checkpoint]
    if s.model:
        for t in s.targets:
            args += ["--target", t]
    if s.export_args:
        args += ["--export-args", shlex.join(s.export_args)]
    if str(s.repo) != ".":
        args += ["--repo", str(s.repo)]
    if s.import_root != ".":
        args += ["--import-root", s.import_root]
    if s.baseline_ref:
        args += ["--baseline-ref", s.baseline_ref]
    if s.baseline_results:
        args += ["--baseline-results", str(s.baseline_results)]
    for b, c in zip(s.base_artefacts, s.candidate_artefacts):
        args += ["--base-artefact", str(b), "--candidate-artefact", str(c)]
    defaults = UserCiSettings()
    for flag, value, default in (
        ("--runs", s.runs, defaults.runs),
        ("--warmups", s.warmups, defaults.warmups),
        ("--threads", s.threads, defaults.threads),
        ("--threshold", s.threshold, defaults.threshold),
    ):
        if value != default:
            args += [flag, str(value)]
    return shlex.join(args)


def report_markdown(o: UserCiOutcome, s: UserCiSettings) -> str:
    table = [RowComparison(r.name, r.base_ms, r.candidate_ms, r.comparison) for r in o.rows]
    method = (
        f"interleaved ABBA blocks in one process ({BLOCKS.calls} calls, the first {BLOCKS.discard} untimed), "
        f"{s.runs} pairs after {s.warmups} warm-ups, {s.threads} thread(s), median of paired ratios"
    )
    if s.baseline_results:
        method = "this side timed now against the results file's row: unpaired, ratio of 10th percentiles"
    text = comparison_markdown(table, title=o.title, threshold=s.band, method=method, statistic="p10" if s.baseline_results else "median", notes=o.notes)
    lines = [text.rstrip("\n")]
    if any(r.history for r in o.rows):
        lines += ["", "History rule (PyTorch HUD):", ""] + [f"- {r.name}: {r.history}" for r in o.rows if r.history]
    lines += ["", "#### Placement changes", ""]
    changed = [(r.name, r.placement_changes) for r in o.rows if r.placement_changes]
    changed += [(name, c) for name, c in o.harness_changes.items() if not c[0].startswith("unchanged")]
    for name, changes in changed:
        lines.append(f"- **{name}**: " + "; ".join(changes))
    if not changed:
        compared = [r for r in o.rows if r.base_placement] or o.harness_changes
        lines.append(
            "- none: every op runs where it ran in the baseline" if compared else "- not compared (no baseline artefact or harness results to compare with)"
        )
    verdict = (
        "REGRESSION: this check fails (--gate)"
        if o.regression and s.gate
        else "REGRESSION found; informational (pass --gate to fail the check)"
        if o.regression
        else "no regression"
    )
    lines += ["", f"Result: {verdict}.", "", "Reproduce:", "", "```bash", reproduce_command(s), "```"]
    return "\n".join(lines) + "\n"


def report_json(o: UserCiOutcome, s: UserCiSettings) -> str:
    rows = []
    for r in o.rows:
        d = asdict(r)
        d["comparison"] = {**asdict(r.comparison), "verdict": r.comparison.verdict.value}
        d["gating"] = r.gating.value
        rows.append(d)
    doc = {
        "kind": REPORT_KIND,
        "version": 1,
        "title": o.title,
        "threshold": s.band,
        "floor": FLOOR,
        "gate": s.gate,
        "regression": o.regression,
        "notes": o.notes,
        "rows": rows,
        "coreml_compute_plan_changes": o.harness_changes,
        "reproduce": reproduce_command(s),
        "candidate_results": o.candidate_results,
    }
    return json.dumps(doc, indent=1) + "\n"


def write_reports(o: UserCiOutcome, s: UserCiSettings, out: Path) -> tuple[str, list[Path]]:
    from .report import plot

    md, js, png = out, out.with_suffix(".json"), out.with_suffix(".png")
    text = report_markdown(o, s)
    atomic_write_text(js, report_json(o, s))
    plot(o.plot_document, png)
    written = [md, js, png]
    if o.history is not None and s.history is not None:
        atomic_write_text(s.history, json.dumps(o.history, indent=1) + "\n")
        written.append(s.history)
    atomic_write_text(md, text)  # last: a finished markdown means the JSON and PNG beside it are finished too
    return text, written
