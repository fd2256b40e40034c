"""Every registered target through the same checks: the contract a new target must meet."""

from __future__ import annotations

import inspect
import json
from dataclasses import fields

import pytest

from mvit.exporters import api
from mvit.exporters.base import ExportOptions, ExportTarget, TargetOption
from mvit.exporters.targets import RUNTIME_TARGETS, SUFFIXES, get_target, target_names, target_options

# The contract is the interface itself: every member ExportTarget declares, read from the Protocol,
# so a member added there is checked on every target without editing this file.
ATTRIBUTES = sorted(name for name in ExportTarget.__annotations__ if not name.startswith("_"))
METHODS = sorted(name for name, value in vars(ExportTarget).items() if callable(value) and not name.startswith("_"))


def test_the_contract_is_read_from_the_interface():
    assert {"name", "suffix", "runtime", "multisize_forms", "quiet_load_options"} <= set(ATTRIBUTES)
    assert {"export", "load", "read_metadata", "report_fields", "structure_checks"} <= set(METHODS)


@pytest.mark.parametrize("name", target_names())
def test_target_answers_for_itself_and_agrees_with_its_registry_line(name):
    target: ExportTarget = get_target(name)
    assert target.name == name and target.suffix == SUFFIXES[name] and RUNTIME_TARGETS[target.runtime] == name
    missing = [attribute for attribute in ATTRIBUTES if not hasattr(target, attribute)]
    assert not missing, f"{name} lacks {missing}"
    not_callable = [method for method in METHODS if not callable(getattr(target, method, None))]
    assert not not_callable, f"{name} lacks methods {not_callable}"
    assert target.options == target_options(name)  # what the CLI offers without importing the target
    shared = {f.name for f in fields(ExportOptions)}
    for option in target.options:  # a target's own option is declared as data, never a shared field
        assert isinstance(option, TargetOption) and option.name not in shared and option.flag.startswith("--")
        assert (
            not option.choices
            or option.means not in ("nms_form", "multisize_form")
            or option.choices == (target.nms_forms if option.means == "nms_form" else target.multisize_forms)
        )
    assert target.nms_output_names[:3] == ["boxes", "scores", "class_ids"]
    assert target.multisize is None or target.multisize_forms, "a multi-size writer needs the forms it writes"
    assert set(target.quiet_load_options) <= set(inspect.signature(target.load).parameters)


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
