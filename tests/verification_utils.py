"""A runner's verification built by hand, for tests of what is made of it (merging, quantised verdicts, JSON)."""

from __future__ import annotations

from mvit.exporters.checks import check
from mvit.exporters.tolerances import tolerance_for
from mvit.exporters.verification import RunnerVerification


def runner_verification(verified_by: str = "onnxruntime", *, cosine: float = 1.0, top1: float = 1.0, judged: int = 3) -> RunnerVerification:
    """One output compared (cosine against 0.99) and top-1 agreement (against 0.99) over `judged` samples."""
    checks = [check("cosine[x]", cosine, 0.99, at_least=True), check("top1_agreement", top1, 0.99, at_least=True)]
    return RunnerVerification(
        warnings=["a warning"],
        verified_by=verified_by,
        precision="fp32",
        tolerances=tolerance_for("fp32"),
        samples=[f"sample{i}" for i in range(judged)],
        outputs={"x": {"max_abs_error": 0.0, "relative_error": 0.0, "cosine": cosine}},
        task_metrics={"top1_agreement": top1, "top1_judged_samples": judged},
        checks=checks,
        verdict="pass" if all(c.passed for c in checks) else "fail",
    )
