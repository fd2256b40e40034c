"""Every registered target through the same checks: the contract a new target must meet."""

from __future__ import annotations

import json

import pytest

from mvit.exporters import api
from mvit.exporters.base import ExportTarget
from mvit.exporters.targets import RUNTIME_TARGETS, SUFFIXES, get_target, target_names


@pytest.mark.parametrize("name", target_names())
def test_target_answers_for_itself_and_agrees_with_its_registry_line(name):
    target: ExportTarget = get_target(name)
    assert target.name == name and target.suffix == SUFFIXES[name] and RUNTIME_TARGETS[target.runtime] == name
    for attribute in ("preprocess_in_graph", "own_options", "verifiers", "nms_output_names", "nms_best_class_only",
                      "class_id_output", "harness_ready", "install_hint", "nms_forms"):
        assert hasattr(target, attribute), attribute
    assert set(target.own_options) <= {"nhwc", "dynamic_batch"}
    assert target.nms_output_names[:3] == ["boxes", "scores", "class_ids"]
    for method in ("export", "read_metadata", "op_histogram", "max_tensor_rank", "load", "load_verifier",
                   "benchmark_unavailable_reason", "output_names_with_nms"):
        assert callable(getattr(target, method)), method


@pytest.mark.slow
@pytest.mark.parametrize("name", target_names())
def test_target_export_is_fused_low_rank_deterministic_and_described(tmp_path, name, shared_export):
    first = shared_export("mobilevit_xxs", name, precision="fp32", image_size=64)
    # Verification never changes the artefact's bytes, so the second export need not repeat it.
    again = api.export_model("mobilevit_xxs", name, tmp_path / "b", precision="fp32", image_size=64, verify=False)
    assert first.verdict == "pass", first.report["failed"]
    assert first.report["batchnorm_ops"] == [] and first.report["max_tensor_rank"] <= 5
    assert api.artefact_sha256(first.path) == api.artefact_sha256(again.path)  # byte-identical re-export
    meta = get_target(name).read_metadata(first.path)
    assert meta["model"] == "mobilevit_xxs" and meta["task"] == "classification" and meta["precision"] == "fp32"
    assert json.loads(meta["preprocess"])["in_graph"] == get_target(name).preprocess_in_graph
    assert len(json.loads(meta["labels"])) == 1000
