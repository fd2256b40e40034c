"""`mvit-bench ci --model ...`: a latency report for the user's own model, in the user's own CI.

Both sides are exported from the user's repository, each by `mvit-export` in a subprocess whose
working folder is that side's tree (so `pkg.module:factory`, a relative `--checkpoint` and the
export options resolve there, the way the user runs mvit-export), with mvit itself from this
install. This side is the checkout as it is; the baseline is `git archive REF` of the same
repository in a temp folder. Or the baseline is a results JSON of an earlier run (unpaired, as
`compare`), or the user gives artefact pairs and nothing is exported.

Each pair is timed interleaved in one process (`run_ab`: ABBA blocks, paired ratios, bootstrap CI).
The decision rule (docs/benchmarks.md, "Latency reports for your own model"):
- a threshold never below FLOOR (Perfherder ignores changes under 2%);
- per row REGRESSION / IMPROVEMENT / SAME / UNKNOWN from the paired CI (verdict.py); two
  byte-identical artefacts are SAME whatever the clock says (they cannot differ in speed);
- with a history file, PyTorch HUD's rule decides instead: REGRESSION only when the last
  CONSECUTIVE points (this run included) all violate the band around the median of the
  WINDOW points before them; fewer points is "insufficient data" (UNKNOWN).
Exit 1 only on a REGRESSION and only with --gate. Placement (benchmarks/placement.py) is
compared per pair and reported whenever it changed, whatever the latency did.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

from mvit.errors import EXIT_BAD_INPUT, MvitError

from .ab import run_ab
from .ci import ArchiveFailed, unpack_commit
from .compare import compare_documents, row_key
from .placement import artefact_placement, harness_placements, placement_changes, placement_summary
from .runner import new_document
from .runtimes import TARGET_RUNTIMES, RuntimeUnavailable, artefact_runtime, runtime_available
from .verdict import Comparison, Verdict

FLOOR = 0.02
# (row name, baseline artefact or None when the baseline is a results file, candidate artefact)
ArtefactPair = tuple[str, Path | None, Path]
WINDOW, CONSECUTIVE = 5, 2
EXPORT_TIMEOUT_S = 900
# mvit-bench ci owns these mvit-export options: it sets them per side and per target.
OWNED_EXPORT_OPTIONS = ("--out", "--target", "--model", "--checkpoint", "--into-harness", "--no-verify")
HISTORY_KIND = "mvit-bench-ci-history"
REPORT_KIND = "mvit-bench-ci"


class UserCiError(MvitError):
    """Bad input to `mvit-bench ci` (one line, exit 2 unless said)."""

    def __init__(self, message: str, exit_code: int = EXIT_BAD_INPUT):
        super().__init__(message)
        self.exit_code = exit_code


@dataclass
class UserCiSettings:
    model: str | None = None
    checkpoint: str | None = None
    targets: tuple[str, ...] = ("onnx", "tflite")
    export_args: tuple[str, ...] = ()
    repo: Path = Path(".")
    import_root: str = "."
    baseline_ref: str | None = None
    baseline_results: Path | None = None
    base_artefacts: tuple[Path, ...] = ()
    candidate_artefacts: tuple[Path, ...] = ()
    base_harness: Path | None = None
    candidate_harness: Path | None = None
    history: Path | None = None
    history_label: str | None = None
    artefact_dir: Path | None = None  # keep both sides' exports here (default: a temp folder)
    runs: int = 60
    warmups: int = 5
    threads: int = 1
    threshold: float = 0.10
    gate: bool = False

    @property
    def band(self) -> float:
        return max(self.threshold, FLOOR)


@dataclass
class RowOutcome:
    name: str
    runtime: str
    base_ms: float | None
    candidate_ms: float | None
    comparison: Comparison
    identical_artefacts: bool = False
    history: str | None = None  # the HUD rule's verdict and why, with --history
    gating: Verdict = Verdict.UNKNOWN  # what --gate acts on
    placement_changes: list[str] = field(default_factory=list)
    base_placement: dict | None = None
    candidate_placement: dict | None = None


@dataclass
class UserCiOutcome:
    title: str
    rows: list[RowOutcome]
    notes: list[str]
    harness_changes: dict[str, list[str]]
    history: dict | None  # the --history file with this run appended, written with the reports
    candidate_results: dict  # results schema v1: this side's rows, a later run's --baseline-results
    plot_document: dict  # both sides' rows, for the PNG

    @property
    def regression(self) -> bool:
        return any(r.gating is Verdict.REGRESSION for r in self.rows)


def check_settings(s: UserCiSettings) -> None:
    """Every bad input refused before anything is exported or timed."""
    kinds = [k for k, given in (("--baseline-ref", s.baseline_ref), ("--baseline-results", s.baseline_results), ("--base-artefact", s.base_artefacts)) if given]
    if (s.base_harness is None) != (s.candidate_harness is None):
        raise UserCiError("give --base-harness and --candidate-harness together (one iOS harness JSON per side)")
    harness_only = not kinds and s.base_harness is not None and not s.model
    if len(kinds) != 1 and not harness_only:
        raise UserCiError(
            f"give exactly one baseline ({' or '.join(kinds)} given together)"
            if kinds
            else "give a baseline: --baseline-ref REF, --baseline-results FILE, --base-artefact/--candidate-artefact or --base-harness/--candidate-harness"
        )
    for path in (s.baseline_results, s.base_harness, s.candidate_harness):
        if path is not None and not path.is_file():
            raise UserCiError(f"{path}: no such file")
    if harness_only:
        return  # the iOS harness's two results files alone: their timings and compute plans
    if s.base_artefacts or s.candidate_artefacts:
        if len(s.base_artefacts) != len(s.candidate_artefacts):
            raise UserCiError(f"{len(s.base_artefacts)} --base-artefact for {len(s.candidate_artefacts)} --candidate-artefact; give them in pairs")
        for path in (*s.base_artefacts, *s.candidate_artefacts):
            if not path.exists():
                raise UserCiError(f"{path}: no such artefact; pass an exported .onnx or .tflite file")
            artefact_runtime(path)
        if s.model:
            raise UserCiError("--model exports both sides; with --base-artefact/--candidate-artefact nothing is exported, so leave --model out")
    elif not s.model:
        raise UserCiError("--model NAME|pkg.module:factory is needed to export this side; or give artefact pairs")
    check_export_settings(s)
    if s.baseline_ref:
        if s.baseline_ref.startswith("-"):  # git would read it as an option
            raise UserCiError(f"--baseline-ref {s.baseline_ref!r} is not a git ref; pass a branch, tag or commit")
        _git(
            s.repo,
            "rev-parse",
            "--verify",
            "--quiet",
            f"{s.baseline_ref}^{{commit}}",
            fail=f"--baseline-ref {s.baseline_ref!r} is not a commit in {s.repo}; fetch it first (actions/checkout: fetch-depth: 0)",
        )


def check_export_settings(s: UserCiSettings) -> None:
    """The options that decide how a side is exported."""
    if not s.repo.is_dir():
        raise UserCiError(f"--repo {s.repo}: no such folder; pass the checkout your model is exported from")
    bad = [t for t in s.targets if t not in TARGET_RUNTIMES]
    if bad:
        raise UserCiError(f"unknown --target {bad[0]!r}; choose from {', '.join(TARGET_RUNTIMES)}")
    for arg in s.export_args:
        if arg.split("=")[0] in OWNED_EXPORT_OPTIONS:
            raise UserCiError(f"--export-args may not contain {arg.split('=')[0]}; mvit-bench ci sets it (use --model, --checkpoint, --target)")


def _git(repo: Path, *args: str, fail: str) -> str:
    try:
        done = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError) as exc:
        raise UserCiError(f"{fail} (git: {exc.__class__.__name__})") from None
    if done.returncode != 0:
        raise UserCiError(fail)
    return done.stdout.strip()


def load_baseline_results(path: Path) -> dict:
    """A results file (schema v1), or the JSON of an earlier `mvit-bench ci` (its candidate rows)."""
    from .schema import load_results, validate_document

    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        doc = None
    if isinstance(doc, dict) and doc.get("kind") == REPORT_KIND:
        return validate_document(doc.get("candidate_results"), str(path))
    return load_results(path)


def _export_command(s: UserCiSettings, target: str, out: Path) -> list[str]:
    # `-m`: the working folder (the side's tree) is first on sys.path, so the user's package imports
    # from it; mvit is this install's.
    cmd = [sys.executable, "-m", "mvit.exporters.cli", "--target", target, "--model", str(s.model), "--out", str(out), "--no-verify"]
    if s.checkpoint:
        cmd += ["--checkpoint", s.checkpoint]
    return cmd + list(s.export_args)


def export_side(tree: Path, out: Path, s: UserCiSettings, targets: list[str]) -> dict[str, Path]:
    """Export `s.model` from `tree` for each target; raises UserCiError with mvit-export's own error."""
    env = dict(os.environ)
    roots = [str((tree / s.import_root).resolve())]
    env["PYTHONPATH"] = os.pathsep.join(roots + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    from mvit.exporters.targets import get_target

    paths = {}
    for target in targets:
        folder = out / target
        try:
            done = subprocess.run(_export_command(s, target, folder), cwd=tree, env=env, capture_output=True, text=True, timeout=EXPORT_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            raise UserCiError(f"exporting {s.model} for {target} took over {EXPORT_TIMEOUT_S} s") from None
        if done.returncode != 0:
            errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
            why = errors[-1].removeprefix("error:").strip() if errors else (done.stderr.strip().splitlines() or ["?"])[-1]
            raise UserCiError(f"mvit-export {target}: {why}", done.returncode if done.returncode in (1, 2, 3) else 1)
        suffix = get_target(target).suffix
        # mvit-export's result line starts with the artefact's path; a kept --artefact-dir may
        # also hold an earlier run's artefact of another name
        named = [Path(line.split()[0]) for line in done.stdout.splitlines() if line.split()]
        found = [p for p in named if p.suffix == suffix and p.parent == folder and p.exists()]
        found = found or sorted(p for p in folder.glob(f"*{suffix}") if not p.name.startswith("."))
        if len(found) != 1:
            raise UserCiError(f"mvit-export {target} wrote {len(found)} {suffix} artefacts in {folder}; expected one", 3)
        paths[target] = found[0]
    return paths


def archive_tree(repo: Path, ref: str, dest: Path) -> None:
    try:
        unpack_commit(repo, ref, dest, timeout=300)
    except ArchiveFailed as exc:
        raise UserCiError(str(exc)) from None


def hud_verdict(series: list[float], threshold: float) -> tuple[Verdict, str]:
    """PyTorch HUD's rule on one row's medians, oldest first, this run last."""
    if len(series) < WINDOW + CONSECUTIVE:
        return Verdict.UNKNOWN, (f"insufficient data ({len(series)} points; the rule needs {WINDOW} baseline points and {CONSECUTIVE} to judge)")
    reference = statistics.median(series[-(WINDOW + CONSECUTIVE) : -CONSECUTIVE])
    last = series[-CONSECUTIVE:]
    upper, lower = reference * (1 + threshold), reference / (1 + threshold)
    shown = ", ".join(f"{v:.3f}" for v in last)
    if all(v > upper for v in last):
        return Verdict.REGRESSION, f"last {CONSECUTIVE} points ({shown} ms) above {upper:.3f} (window median {reference:.3f})"
    if all(v < lower for v in last):
        return Verdict.IMPROVEMENT, f"last {CONSECUTIVE} points ({shown} ms) below {lower:.3f} (window median {reference:.3f})"
    return Verdict.SAME, f"not {CONSECUTIVE} consecutive points outside ±{threshold:.0%} of the window median {reference:.3f}"


def load_history(path: Path) -> list[dict]:
    if not path.exists():
        return []
    try:
        doc = json.loads(path.read_text())
        if doc.get("kind") != HISTORY_KIND:
            raise ValueError("kind")
        points = doc["points"]
        for p in points:
            str(p["label"])
            [float(v) for v in p["rows"].values()]
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        raise UserCiError(f"{path}: not a mvit-bench ci history file; pass one --history wrote, or a path that does not exist yet") from None
    return points


def _paired_row(name: str, base: Path, candidate: Path, s: UserCiSettings) -> tuple[RowOutcome, list[dict]]:
    from mvit.exporters.api import artefact_sha256

    outcome = run_ab(base, candidate, threads=s.threads, warmups=s.warmups, runs=s.runs, threshold=s.band, measure_gemm=False)
    b, c = outcome.document["results"]
    comparison = outcome.comparison
    identical = artefact_sha256(base) == artefact_sha256(candidate)
    if identical:
        comparison = replace(comparison, verdict=Verdict.SAME, reason="artefacts byte-identical: they cannot differ in speed (timed anyway: the noise floor)")
    row = RowOutcome(name, artefact_runtime(candidate), b["stats"]["median_ms"], c["stats"]["median_ms"], comparison, identical)
    return row, [b, c]


def _placements(row: RowOutcome, base: Path | None, candidate: Path, notes: list[str]) -> None:
    try:
        cand = artefact_placement(candidate)
        row.candidate_placement = cand.as_dict()
        if base is not None:
            before = artefact_placement(base)
            row.base_placement = before.as_dict()
            row.placement_changes = placement_changes(before, cand)
    except RuntimeUnavailable as exc:
        notes.append(f"{row.name}: no placement ({exc})")


def run_user_ci(s: UserCiSettings, log: Callable[[str], None] = print) -> UserCiOutcome:
    check_settings(s)
    notes: list[str] = []
    if s.threshold < FLOOR:
        notes.append(f"--threshold {s.threshold:.1%} raised to the floor of {FLOOR:.0%}: smaller changes are not told apart from noise")
    baseline_doc = load_baseline_results(s.baseline_results) if s.baseline_results else None
    history = load_history(s.history) if s.history else None
    with tempfile.TemporaryDirectory(prefix="mvit-bench-ci-") as tmp:
        work = Path(tmp)
        if _harness_only(s):
            pairs: list[ArtefactPair] = []
            base_name, cand_name = str(s.base_harness), str(s.candidate_harness)
        else:
            pairs, base_name, cand_name = _artefact_pairs(s, work, notes, log)
        rows, timed = [], []
        for name, base, candidate in pairs:
            log(f"timing {name}: {s.runs} interleaved pairs")
            if base is not None:
                row, docs = _paired_row(name, base, candidate, s)
            else:  # results baseline: this side timed against itself, compared unpaired with the file
                row, docs = _paired_row(name, candidate, candidate, s)
                docs = [docs[1]]
                row = _against_results(name, docs[0], baseline_doc or {}, s)
            timed.append(docs)
            _placements(row, base, candidate, notes)
            rows.append(row)
    if _harness_only(s):
        rows, timed = _harness_rows(s)
    candidate_rows = [d[-1] for d in timed]
    _decide(rows, history, s, notes)
    harness_changes = _harness_changes(s)
    plot_rows = []
    for docs in timed:
        for side, r in zip(("base", "candidate") if len(docs) == 2 else ("candidate",), docs):
            plot_rows.append({**r, "model": f"{side}: {r['model']}"})
    history_doc = None
    if s.history:
        label = s.history_label or _head_label(s.repo)
        point = {"label": label, "created_utc": datetime.now(UTC).isoformat(), "rows": {r.name: r.candidate_ms for r in rows if r.candidate_ms is not None}}
        history_doc = {"kind": HISTORY_KIND, "points": [*(history or []), point]}
    return UserCiOutcome(
        f"Latency: {cand_name} vs {base_name}", rows, notes, harness_changes, history_doc, new_document(candidate_rows, None), new_document(plot_rows, None)
    )


def _harness_only(s: UserCiSettings) -> bool:
    return not (s.model or s.base_artefacts or s.baseline_results or s.baseline_ref)


def _harness_rows(s: UserCiSettings) -> tuple[list[RowOutcome], list[list[dict]]]:
    """Two iOS harness runs: unpaired verdicts per matching row, as `compare` gives them."""
    from .schema import load_results

    base, cand = load_results(str(s.base_harness)), load_results(str(s.candidate_harness))
    compared, _ = compare_documents(base, cand, threshold=s.band)
    rows = [RowOutcome(c.name, "coreml", c.base_ms, c.candidate_ms, c.comparison) for c in compared]
    by_key = {row_key(r): r for r in base["results"]}
    timed = [[by_key[row_key(r)], r] if row_key(r) in by_key else [r] for r in cand["results"]]
    return rows, timed


def _artefact_pairs(s: UserCiSettings, work: Path, notes: list[str], log: Callable[[str], None]) -> tuple[list[ArtefactPair], str, str]:
    if s.base_artefacts:
        pairs: list[ArtefactPair] = [(f"{c.name} vs {b.name}", b, c) for b, c in zip(s.base_artefacts, s.candidate_artefacts)]
        return pairs, "base artefacts", "candidate artefacts"
    targets = []
    for target in s.targets:
        try:
            runtime_available(TARGET_RUNTIMES[target])
            targets.append(target)
        except RuntimeUnavailable as exc:
            notes.append(f"{target} not timed here: {exc}")
    if not targets:
        raise UserCiError("none of the targets can be timed on this machine: " + "; ".join(notes))
    log(f"exporting {s.model} for {', '.join(targets)} from {s.repo} (this side)")
    kept = s.artefact_dir.resolve() if s.artefact_dir else work
    current = export_side(s.repo.resolve(), kept / "candidate", s, targets)
    here = _head_label(s.repo)
    if s.baseline_results:
        return [(f"{s.model} {t}", None, p) for t, p in current.items()], str(s.baseline_results), here
    ref = str(s.baseline_ref)
    commit = _git(s.repo, "rev-parse", "--short", f"{ref}^{{commit}}", fail=f"cannot resolve {ref}")
    log(f"exporting the same from {ref} ({commit})")
    tree = work / "baseline-src"
    archive_tree(s.repo, commit, tree)
    try:
        base = export_side(tree / _repo_prefix(s.repo), kept / "baseline", s, targets)
    except UserCiError as exc:  # the baseline's code cannot export: no verdict, not a failure of this side
        notes.append(f"the baseline {ref} ({commit}) could not export: {exc}; timed this side against itself (A/A)")
        return [(f"{s.model} {t}", p, p) for t, p in current.items()], f"{ref} ({commit}, no export)", here
    return [(f"{s.model} {t}", base[t], p) for t, p in current.items()], f"{ref} ({commit})", here


def _repo_prefix(repo: Path) -> str:
    """`git archive` writes the whole repository; --repo may be a folder inside it."""
    return _git(repo, "rev-parse", "--show-prefix", fail=f"{repo} is not inside a git repository") or "."


def _head_label(repo: Path) -> str:
    try:
        return _git(repo, "rev-parse", "--short", "HEAD", fail="no git") + (
            " (with uncommitted changes)" if _git(repo, "status", "--porcelain", "--untracked-files=no", fail="") else ""
        )
    except UserCiError:
        return "this checkout"


def _against_results(name: str, row: dict, baseline_doc: dict, s: UserCiSettings) -> RowOutcome:
    matching = [r for r in baseline_doc.get("results", []) if row_key(r) == row_key(row)]
    if not matching:
        comparison = Comparison(
            Verdict.UNKNOWN, None, None, None, 0, row["runs"], False, "no row of the baseline results matches (model, config, runtime, precision, size)"
        )
        return RowOutcome(name, row["runtime"], None, row["stats"]["median_ms"], comparison)
    base_doc = {**baseline_doc, "results": matching[:1]}
    compared, _ = compare_documents(base_doc, new_document([row], None), threshold=s.band)
    c = compared[0]
    return RowOutcome(name, row["runtime"], c.base_ms, c.candidate_ms, c.comparison)


def _decide(rows: list[RowOutcome], history: list[dict] | None, s: UserCiSettings, notes: list[str]) -> None:
    for row in rows:
        row.gating = row.comparison.verdict
        if history is None or row.candidate_ms is None:
            continue
        series = [float(p["rows"][row.name]) for p in history if row.name in p["rows"]] + [row.candidate_ms]
        verdict, why = hud_verdict(series, s.band)
        row.history, row.gating = f"{verdict.value}: {why}", verdict
    if history is not None:
        notes.append(
            f"--history: the gate follows the history rule ({CONSECUTIVE} consecutive points against a window of {WINDOW}), not this run's paired verdict alone"
        )


def _harness_changes(s: UserCiSettings) -> dict[str, list[str]]:
    if s.base_harness is None or s.candidate_harness is None:
        return {}
    from .schema import load_results

    base, cand = (harness_placements(load_results(p)) for p in (s.base_harness, s.candidate_harness))
    out = {}
    for name in dict.fromkeys([*base, *cand]):
        if name not in base or name not in cand:
            out[name] = [f"compute plan only in the {'candidate' if name in cand else 'base'} harness results"]
            continue
        changes = placement_changes(base[name], cand[name])
        out[name] = changes or [f"unchanged ({placement_summary(cand[name])})"]
    return out
