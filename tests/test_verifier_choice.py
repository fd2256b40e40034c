"""Choosing who verifies a CoreML export: Apple's runtime, the MIL reference evaluator, or both."""

import sys

import pytest
from verification_utils import runner_verification

from mvit.exporters import api
from mvit.exporters.base import ExportError
from mvit.exporters.verification_run import merge_verifications


def test_mil_reference_verifier_is_named_in_the_report(tmp_path):
    result = api.export_model("mobilevit_xxs", "coreml", tmp_path, precision="fp32", image_size=64, verifier="mil-reference")
    assert result.report["verified_by"] == "mil-reference"
    assert result.verdict == "pass"


@pytest.mark.skipif(sys.platform == "darwin", reason="checks the refusal off macOS; macOS runs the test below")
@pytest.mark.parametrize("verifier", ["both", "coreml-runtime"])
def test_runtime_verifiers_are_refused_off_macos_before_exporting(verifier, tmp_path):
    with pytest.raises(ExportError, match="runs only on macOS"):
        api.export_model("mobilevit_xxs", "coreml", tmp_path / "out", image_size=64, verifier=verifier)
    assert not (tmp_path / "out").exists(), "nothing may be written when the verifier cannot run"


@pytest.mark.skipif(sys.platform != "darwin", reason="Apple's CoreML runtime exists only on macOS")
def test_both_verifiers_judge_the_same_export_on_macos(tmp_path):
    result = api.export_model("mobilevit_xxs", "coreml", tmp_path, precision="fp32", image_size=64, verifier="both")
    assert result.report["verified_by"] == "coreml-runtime+mil-reference"
    assert set(result.report["verification"]["by_runner"]) == {"coreml-runtime", "mil-reference"}


def test_verifier_choice_is_for_coreml_only_and_names_are_checked():
    with pytest.raises(ExportError, match="CoreML exports only"):
        api.check_verifier("onnx", "mil-reference")
    with pytest.raises(ExportError, match="unknown --verifier"):
        api.check_verifier("coreml", "xcode")


def test_merged_verdict_fails_when_either_runner_fails():
    ok, bad = runner_verification("coreml-runtime", cosine=1.0), runner_verification("mil-reference", cosine=0.5)
    merged = merge_verifications([ok, bad])
    assert merged.verdict == "fail"
    assert merged.verified_by == "coreml-runtime+mil-reference"
    assert [c.name for c in merged.checks] == [f"{r}:{c}" for r in ("coreml-runtime", "mil-reference") for c in ("cosine[x]", "top1_agreement")]
    assert merged.failed == ["mil-reference:cosine[x] = 0.5 < limit 0.99"]
    assert list(merged.as_dict()["by_runner"]) == ["coreml-runtime", "mil-reference"]
    assert merge_verifications([ok, ok]).verdict == "pass"
