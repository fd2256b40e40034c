"""User networks to every target: a tutorial-style einops MobileViT (rank-6 unfold/fold, several
outputs) exports and verifies through the CLI, and the rank-lowering rewrite is exact."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from cli_utils import run_main
from model_utils import MaxRank
from torch import nn

from mvit.exporters import cli
from mvit.exporters.lower_rank import LowerRankError, lower_rank, lowered_steps, simplify
from mvit.exporters.targets import SUFFIXES, get_target
from mvit.exporters.wrappers import build_export_module
from mvit.models import create_model, fuse_batchnorm

USER_NETS = Path(__file__).parent / "user_nets"
MVIT_EXPORT = Path(sys.executable).with_name("mvit-export")


@pytest.fixture
def user_nets(monkeypatch):
    monkeypatch.syspath_prepend(str(USER_NETS))
    import einops_mobilevit

    return einops_mobilevit


def _apply(x: torch.Tensor, steps: list[tuple[str, list[int]]]) -> torch.Tensor:
    for kind, arg in steps:
        x = x.reshape(arg) if kind == "reshape" else x.permute(arg)
    return x


@pytest.mark.parametrize("rank", [6, 7])
def test_lowered_steps_equal_torch_permute(rank):
    rng = random.Random(rank)
    irreducible = 0
    for _ in range(40):
        view = [rng.choice([1, 2, 3, 2]) for _ in range(rank)]
        perm = list(range(rank))
        rng.shuffle(perm)
        x = torch.arange(int(torch.tensor(view).prod())).float()
        want = x.reshape(view).permute(perm).reshape(-1)
        steps = lowered_steps(view, perm, max_rank=5)
        with MaxRank() as mode:
            got = _apply(x, steps).reshape(-1)
        assert torch.equal(got, want), (view, perm, steps)
        assert mode.max_rank <= 5, (view, perm, steps)
        if len(simplify(view, perm)[0]) > 5:
            irreducible += 1
            assert all(len(arg) == 4 for _, arg in steps)  # block swaps only
    assert irreducible > 0  # the block-swap path was exercised, not only drop/merge


class _Shuffle(nn.Module):
    """Rank 7 and back through two permutes, a transpose and a reshape between rank-6 views."""

    def __init__(self, perm7: list[int], perm6: list[int]) -> None:
        super().__init__()
        self.perm7, self.perm6 = perm7, perm6

    def forward(self, x):
        y = x.reshape(2, 3, 2, 2, 3, 2, 2).permute(self.perm7).transpose(1, 5).contiguous()
        y = y.reshape(6, 2, 2, 3, 2, 2).permute(self.perm6)
        return y.reshape(12, 24) * 1.0, x + 1


def test_rewrite_of_random_chains_equals_torch():
    rng = random.Random(0)
    for _ in range(5):
        perm7, perm6 = rng.sample(range(7), 7), rng.sample(range(6), 6)
        net = _Shuffle(perm7, perm6)
        example = torch.randn(4, 72)
        lowered, info = lower_rank(net, example)
        assert info.rewrites and info.max_rank_after <= 5
        x = torch.randn(4, 72)
        with MaxRank() as mode:
            got = lowered(x)
        assert mode.max_rank <= 5, mode.op
        assert all(torch.equal(g, w) for g, w in zip(got, net(x)))


def test_simplify_drops_unit_axes_and_merges_neighbours():
    # The einops unfold at batch 1: dropping b leaves a rank-5 permute.
    assert simplify([1, 24, 8, 2, 8, 2], [0, 3, 5, 2, 4, 1]) == ([24, 8, 2, 8, 2], [2, 4, 1, 3, 0])
    assert simplify([2, 3, 4, 5, 6, 7], [0, 1, 4, 5, 2, 3]) == ([6, 20, 42], [0, 2, 1])


def test_lowered_network_is_exact_and_traceable(user_nets):
    net = fuse_batchnorm(user_nets.factory_patch8_4())
    # Batch 2 keeps the batch axis, so the unfold stays rank 6 after simplify: block swaps.
    example = torch.randn(2, 3, 64, 64)
    lowered, info = lower_rank(net, example)
    assert lowered is not net
    assert info.max_rank_before == 6 and info.max_rank_after <= 5
    assert len(info.rewrites) == 4 and all(r["max_rank"] <= 4 for r in info.rewrites)
    assert list(info.as_dict()) == ["max_rank_before", "max_rank_after", "rewrites", "max_abs_difference"] and info.max_abs_difference == 0.0
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        want = net(x)
        with MaxRank() as mode:
            got = lowered(x)
        traced = torch.jit.trace(lowered, x)(x)
    exported = torch.export.export(lowered, (x,)).module()(x)
    assert mode.max_rank <= 5, mode.op
    for w, g, t, e in zip(want, got, traced, exported):
        assert torch.equal(w, g) and torch.equal(w, t) and torch.equal(w, e)


def test_registry_model_is_returned_untouched():
    """Rank lowering leaves registry models as they are (nothing in them exceeds rank 5)."""
    net = fuse_batchnorm(create_model("mobilevit_xxs"))
    lowered, info = lower_rank(net, torch.randn(1, 3, 64, 64))
    assert lowered is net and info.rewrites == [] and info.max_rank_before <= 4
    assert list(info.as_dict()) == ["max_rank_before", "max_rank_after", "rewrites"]
    before = {k: v.clone() for k, v in net.state_dict().items()}
    built = build_export_module(net, "classification", 64, target="onnx", preprocess=None)
    assert built.rank_lowering is not None and built.rank_lowering.rewrites == []
    # The target's own layout rewrites (exporters/rewrites/) work on a copy: the user's network is left as it was.
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())


class _RankSixMath(nn.Module):
    def forward(self, x):
        return (x.reshape(1, 3, 4, 8, 4, 8) * 2).reshape(1, 3, 32, 32)


def test_arithmetic_at_rank_six_is_refused_by_name():
    with pytest.raises(LowerRankError, match=r"rank-6 .*aten\.mul"):
        lower_rank(_RankSixMath(), torch.randn(1, 3, 32, 32))


def _assert_report_pass(artefact: Path) -> dict:
    report = json.loads(artefact.with_name(artefact.name + ".report.json").read_text())
    assert report["verdict"] == "pass", report["failed"]
    assert report["max_tensor_rank"] <= 5
    assert report["output_names"] == ["output_0", "output_1", "output_2"]
    compared = report["verification"]["outputs"]
    assert sorted(compared) == ["output_0", "output_1", "output_2"]
    assert all(m["cosine"] > 0.999 for m in compared.values())
    return report


@pytest.mark.slow
@pytest.mark.parametrize("target", ["coreml", "onnx", "tflite"])
@pytest.mark.parametrize("factory", ["factory", "factory_patch8_4"])
def test_einops_network_exports_and_verifies(tmp_path, capsys, user_nets, target, factory):
    model = f"einops_mobilevit:{factory}"
    code, out, err = run_main(capsys, cli.main, "--model", model, "--image-size", "64", "--target", target, "--out", str(tmp_path))
    assert code == 0, err
    artefact = tmp_path / f"einops_mobilevit.{factory}_custom_64_fp16{SUFFIXES[target]}"
    assert out.startswith(str(artefact)) and " pass " in out
    _assert_report_pass(artefact)
    if get_target(target).harness_ready:  # the CoreML package: which Xcode preview it declares
        from mvit.exporters.targets.coreml.target import NO_PREVIEW, TARGET

        meta = TARGET.read_metadata(artefact)
        assert "com.apple.coreml.model.preview.type" not in meta and meta["xcode_preview"] == NO_PREVIEW
        assert json.loads(meta["model_outputs"]) == ["output_0", "output_1", "output_2"]

    code, out, err = run_main(capsys, cli.verify_main, str(artefact), "--model", model)
    assert code == 0, err
    assert " pass " in out
    assert json.loads(artefact.with_name(artefact.name + ".verify.json").read_text())["verdict"] == "pass"


@pytest.mark.slow
def test_console_script_with_user_network_on_pythonpath(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(USER_NETS)}
    done = subprocess.run(
        [str(MVIT_EXPORT), "--model", "einops_mobilevit:factory", "--image-size", "64", "--target", "onnx", "--precision", "fp32", "--out", str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    report = _assert_report_pass(tmp_path / "einops_mobilevit.factory_custom_64_fp32.onnx")
    assert max(m["relative_error"] for m in report["verification"]["outputs"].values()) < 1e-4


def test_dynamic_batch_with_rank_six_network_is_one_error_line(tmp_path, capsys, user_nets):
    code, _, err = run_main(
        capsys, cli.main, "--model", "einops_mobilevit:factory", "--image-size", "64", "--target", "onnx", "--dynamic-batch", "--out", str(tmp_path)
    )
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: ") and "--dynamic-batch" in lines[0], err
    assert list(tmp_path.iterdir()) == []
