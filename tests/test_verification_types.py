"""The typed checks and verification results serialise to the report's JSON: the same keys, in the
same order, whatever shape the verification took."""

from __future__ import annotations

import json

from verification_utils import runner_verification

from mvit.exporters.checks import Check, check, describe_failure, failures
from mvit.exporters.quantize import MIN_JUDGED_SAMPLES, judge_quantised
from mvit.exporters.verification import NotVerified

RUNNER_KEYS = ["warnings", "verified_by", "precision", "tolerances", "samples", "outputs", "task_metrics", "checks", "verdict", "failed"]


def test_a_check_is_its_report_entry_with_detail_only_when_said():
    plain = check("max_tensor_rank", 6, 5, at_least=False)
    assert json.dumps(plain.as_dict()) == '{"check": "max_tensor_rank", "value": 6.0, "limit": 5.0, "kind": "max", "passed": false}'
    detailed = check("coreml-structure:names", 1, 0, at_least=False, detail="op x: bad name")
    assert list(detailed.as_dict()) == ["check", "value", "limit", "kind", "passed", "detail"]
    assert describe_failure(detailed) == "coreml-structure:names = 1 > limit 0 (op x: bad name)"


def test_a_limit_reached_exactly_passes_either_way():
    assert check("cosine[x]", 0.99, 0.99, at_least=True) == Check("cosine[x]", 0.99, 0.99, "min", True)
    assert check("relative_error[x]", 1e-4, 1e-4, at_least=False).passed
    assert failures([check("a", 0.5, 0.99, at_least=True), check("b", 1.0, 0.99, at_least=True)]) == ["a = 0.5 < limit 0.99"]


def test_a_runner_verification_says_its_failures_from_its_checks():
    bad = runner_verification(cosine=0.5).as_dict()
    assert list(bad) == RUNNER_KEYS
    assert bad["verdict"] == "fail" and bad["failed"] == ["cosine[x] = 0.5 < limit 0.99"]
    assert bad["checks"][0] == {"check": "cosine[x]", "value": 0.5, "limit": 0.99, "kind": "min", "passed": False}
    assert bad["tolerances"]["cosine"] > 0.99


def test_random_weights_keep_a_quantised_artefacts_checks_apart_unjudged():
    judged = judge_quantised(runner_verification(cosine=0.5), "int8", "random (seed 0)")
    out = judged.as_dict()
    assert list(out) == [*RUNNER_KEYS, "reason", "unjudged_checks"]
    assert out["verdict"] == "not-verified" and out["checks"] == [] and out["failed"] == []
    assert [c["check"] for c in out["unjudged_checks"]] == ["cosine[x]", "top1_agreement"]
    assert out["warnings"] == ["a warning", out["reason"]] and "random weights" in out["reason"]


def test_few_decisive_samples_fail_on_a_failure_and_are_not_verified_otherwise():
    few = MIN_JUDGED_SAMPLES - 1
    failing = judge_quantised(runner_verification(top1=0.5, judged=few), "int8-weights", "ckpt.safetensors")
    assert failing.verdict == "fail" and failing.failed == ["top1_agreement = 0.5 < limit 0.99"]
    assert list(failing.as_dict()) == [*RUNNER_KEYS, "reason"]
    agreeing = judge_quantised(runner_verification(judged=few), "int8-weights", "ckpt.safetensors")
    assert agreeing.verdict == "not-verified" and f"only {few} sample(s)" in str(agreeing.reason)
    enough = runner_verification(judged=MIN_JUDGED_SAMPLES)
    assert judge_quantised(enough, "int8-weights", "ckpt.safetensors") == enough


def test_no_runtime_says_why_and_the_exports_warnings_only_when_it_has_them():
    missing = NotVerified("onnxruntime is not installed")
    assert missing.as_dict() == {"verdict": "not-verified", "reason": "onnxruntime is not installed", "checks": []}
    assert missing.verified_by is None and missing.failed == []
    said = missing.with_warnings_first(["calibrated on the verification photos"]).as_dict()
    assert list(said) == ["verdict", "reason", "checks", "warnings"] and said["warnings"] == ["calibrated on the verification photos"]


def test_an_exports_warnings_come_before_the_runners():
    first = runner_verification().with_warnings_first(["calibration"])
    assert first.warnings == ["calibration", "a warning"]
