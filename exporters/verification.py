"""What verification found, typed: one runner's judgement of an artefact against PyTorch, the
verdict of several runners of the same artefact, or no runtime to run it here. `as_dict()` is the
report's "verification" section."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Self

from .checks import Check, checks_as_dicts, failures
from .tolerances import Tolerance


class _JudgedByChecks:
    """What a verification that ran checks answers alike (its dataclass holds `checks` and `warnings`)."""

    checks: list[Check]
    warnings: list[str]

    @property
    def failed(self) -> list[str]:
        return failures(self.checks)

    def with_warnings_first(self, warnings: list[str]) -> Self:
        return replace(self, warnings=[*warnings, *self.warnings])  # type: ignore[type-var]  # only dataclasses subclass this mixin


@dataclass(frozen=True)
class RunnerVerification(_JudgedByChecks):
    """One runner's outputs on every sample, compared with the fused PyTorch model (verify.verify_runner)."""

    warnings: list[str]
    verified_by: str
    precision: str
    tolerances: Tolerance
    samples: list[str]  # sample names, in the order they ran
    outputs: dict[str, dict[str, float]]  # output -> worst max_abs_error, relative_error, cosine over samples
    task_metrics: dict[str, float]
    checks: list[Check]
    verdict: str
    reason: str | None = None  # why a quantised artefact's verdict says less than its checks
    unjudged_checks: list[Check] | None = None  # random weights: measured, kept for the record, not judged

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "warnings": self.warnings,
            "verified_by": self.verified_by,
            "precision": self.precision,
            "tolerances": self.tolerances.as_dict(),
            "samples": self.samples,
            "outputs": self.outputs,
            "task_metrics": self.task_metrics,
            "checks": checks_as_dicts(self.checks),
            "verdict": self.verdict,
            "failed": self.failed,
        }
        if self.reason is not None:
            out["reason"] = self.reason
        if self.unjudged_checks is not None:
            out["unjudged_checks"] = checks_as_dicts(self.unjudged_checks)
        return out


@dataclass(frozen=True)
class MergedVerification(_JudgedByChecks):
    """Several runners of one artefact: every check kept, prefixed with who ran it."""

    verdict: str
    verified_by: str
    checks: list[Check]
    warnings: list[str]
    by_runner: dict[str, RunnerVerification]

    def as_dict(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict,
            "verified_by": self.verified_by,
            "checks": checks_as_dicts(self.checks),
            "warnings": self.warnings,
            "by_runner": {name: r.as_dict() for name, r in self.by_runner.items()},
        }


@dataclass(frozen=True)
class NotVerified:
    """No runtime here can run the artefact (its extra is not installed)."""

    reason: str
    warnings: list[str] | None = None  # an export's own warnings; None: it has none to say (mvit-verify)
    verdict = "not-verified"

    @property
    def verified_by(self) -> None:
        return None

    @property
    def checks(self) -> list[Check]:
        return []

    @property
    def failed(self) -> list[str]:
        return []

    def with_warnings_first(self, warnings: list[str]) -> NotVerified:
        return replace(self, warnings=[*warnings, *(self.warnings or [])])

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"verdict": self.verdict, "reason": self.reason, "checks": []}
        if self.warnings is not None:
            out["warnings"] = self.warnings
        return out


Verification = RunnerVerification | MergedVerification | NotVerified
