"""python -m mvit.benchmarks.ablation: each ablated export lacks exactly the part it names."""

from __future__ import annotations

from collections import Counter

import onnx
import pytest

from mvit.benchmarks import ablation

LAYERS = 9  # MobileViT-XXS: 2 + 4 + 3 transformer layers, each with 2 LayerNorms; 3 block norms


@pytest.fixture(scope="module")
def op_counts(tmp_path_factory) -> dict[str, Counter]:
    out = tmp_path_factory.mktemp("ablation")
    assert ablation.main(["--model", "mobilevit_xxs", "--target", "onnx", "--image-size", "64", "--out", str(out)]) == 0
    return {folder.name: Counter(n.op_type for n in onnx.load(str(next(folder.glob("*.onnx")))).graph.node) for folder in out.iterdir()}


def test_every_ablation_and_the_full_export_are_written(op_counts):
    assert set(op_counts) == {"full", *ablation.ABLATIONS}


def test_each_ablation_removes_its_part_and_keeps_the_rest(op_counts):
    full = op_counts["full"]
    assert full["Softmax"] == LAYERS + 1 and full["LayerNormalization"] == 2 * LAYERS + 3  # + the classifier's softmax
    for name in ("no_attention", "no_softmax", "no_transformer"):
        assert op_counts[name]["Softmax"] == 1, name
    assert op_counts["no_attention"]["LayerNormalization"] == full["LayerNormalization"]
    assert op_counts["no_attention"]["MatMul"] < full["MatMul"] and op_counts["no_attention"]["Gemm"] == full["Gemm"]
    assert op_counts["no_layernorm"]["LayerNormalization"] == 3 and op_counts["no_layernorm"]["Softmax"] == full["Softmax"]
    assert op_counts["no_mlp"]["Gemm"] == full["Gemm"] - 2 * LAYERS and op_counts["no_mlp"]["Softmax"] == full["Softmax"]
    assert op_counts["no_transformer"]["LayerNormalization"] == 3
    assert all(sum(c.values()) < sum(full.values()) for name, c in op_counts.items() if name != "full")


@pytest.mark.parametrize("args, says", [(["--model", "no_such_model"], "no_such_model"), (["--model", "mobilenet_v2"], "no MobileViT v1 transformer parts")])
def test_a_model_it_cannot_ablate_is_one_error_line(capsys, tmp_path, args, says):
    assert ablation.main([*args, "--target", "onnx", "--image-size", "64", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and says in err, err
    assert not any(tmp_path.iterdir())  # checked before anything was written
