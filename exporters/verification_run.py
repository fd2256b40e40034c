"""Who runs an artefact for verification, and one verdict from one or several runners."""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

from .base import ExportError, ExportOptions, ExportTarget, TargetNotInstalled
from .quantize import judge_quantised
from .resolve import ResolvedModel
from .samples import Sample, verification_samples
from .targets import get_target
from .verification import MergedVerification, NotVerified, RunnerVerification, Verification
from .verify import verify_runner
from .wrappers import BuiltModule

VERIFIERS = ("auto", "mil-reference", "coreml-runtime", "both")


def check_verifier(target: ExportTarget | str, verifier: str) -> None:
    """Refuse a verifier that cannot run here before anything is exported."""
    target = get_target(target) if isinstance(target, str) else target
    if verifier not in VERIFIERS:
        raise ExportError(f"unknown --verifier {verifier!r}: use {', '.join(VERIFIERS)}")
    if verifier != "auto" and verifier not in target.verifiers:
        raise ExportError(f"--verifier {verifier} applies to CoreML exports only (got --target {target.name})")
    if verifier in ("coreml-runtime", "both") and sys.platform != "darwin":
        raise ExportError(f"--verifier {verifier} needs Apple's CoreML runtime, which runs only on macOS; use --verifier mil-reference or auto here")


def merge_verifications(results: list[RunnerVerification]) -> MergedVerification:
    """One verdict from several runners: every check is kept, prefixed with who ran it."""
    return MergedVerification(
        verdict="pass" if all(r.verdict == "pass" for r in results) else "fail",
        verified_by="+".join(r.verified_by for r in results),
        checks=[replace(c, name=f"{r.verified_by}:{c.name}") for r in results for c in r.checks],
        warnings=[w for r in results for w in r.warnings],
        by_runner={r.verified_by: r for r in results},
    )


def verification_samples_for(resolved: ResolvedModel) -> list[Sample]:
    return verification_samples(resolved.preprocess.resize_shortest, resolved.preprocess.crop)


def run_verification(
    export_target: ExportTarget,
    path: Path,
    resolved: ResolvedModel,
    reference: BuiltModule,
    precision: str,
    opts: ExportOptions,
    num_threads: int | None = None,
    verifier: str = "auto",
    samples: list[Sample] | None = None,
) -> Verification:
    """Verify with the target's own runner, or for CoreML with a chosen one or both.

    "both" (on macOS) judges Apple's runtime and the MIL reference evaluator against PyTorch in
    the same run, so the evaluator that guards Linux CI is itself checked wherever a Mac runs it.
    Only a runtime that is not installed gives "not-verified"; an artefact the runtime cannot
    read is an error, never a pass.
    The caller has checked `verifier` (check_verifier) before anything was built.
    """
    choices: dict[str, list[str | None]] = {"auto": [None], "both": ["coreml-runtime", "mil-reference"]}
    names = choices.get(verifier, [verifier])
    results = []
    for name in names:
        try:
            if name is None:
                runner = export_target.load(path, num_threads=num_threads or 1)
            else:
                runner = export_target.load_verifier(path, name, num_threads=num_threads or 1)
        except TargetNotInstalled as exc:
            if verifier != "auto":
                raise
            return NotVerified(str(exc))
        results.append(
            verify_runner(
                runner,
                reference,
                task=resolved.task,
                preprocess=resolved.preprocess,
                precision=precision,
                raw_input=opts.raw_input,
                nms=opts.nms,
                nms_best_class_only=export_target.nms_best_class_only,
                samples=None if samples is None else verification_samples_for(resolved) + samples,
            )
        )
    # Quantised precisions: random weights or too few decisive samples are no evidence (quantize.py).
    results = [judge_quantised(r, precision, resolved.weights) for r in results]
    return results[0] if len(results) == 1 else merge_verifications(results)
