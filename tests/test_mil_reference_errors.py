"""A damaged package is one clear error from the reference evaluator, never a traceback."""

import shutil

import pytest

from mvit.exporters.targets.coreml.reference import MilReferenceError, MilReferenceRunner


def test_truncated_weights_are_a_clear_error(tmp_path, shared_export):
    good = shared_export("mobilevit_xxs", "coreml", precision="fp32", image_size=64).path
    bad = tmp_path / "bad.mlpackage"
    shutil.copytree(good, bad)
    weights = bad / "Data" / "com.apple.CoreML" / "weights" / "weight.bin"
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(MilReferenceError, match="cannot read the program or its weights"):
        MilReferenceRunner(bad)
    MilReferenceRunner(good)  # the intact package still loads
