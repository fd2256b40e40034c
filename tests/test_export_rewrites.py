"""Export rewrites (exporters/rewrites/): each one leaves the outputs as the network as written
gives them, on the trained fixtures; the preprocessing fold is refused where it would not be exact;
rewritten exports stay byte-deterministic."""

from __future__ import annotations

import copy
import dataclasses
import functools
import json

import numpy as np
import pytest
import torch
from torch import nn
from trained_fixtures import CLASSIFIER, FIXTURES, heldout, to_network_input

from mvit.exporters import api
from mvit.exporters.cli import main as export_main
from mvit.exporters.preprocessing import PixelPreprocess
from mvit.exporters.rewrites import REWRITES, SIZE_BAKING_REWRITES, rewrite_for_export
from mvit.exporters.rewrites.attention_layout import HeadMajorAttention
from mvit.exporters.rewrites.channels_last_patches import ChannelsLastPatchBlock
from mvit.exporters.rewrites.fold_preprocessing import fold_preprocessing
from mvit.exporters.rewrites.patch_layout import SpaceToDepthMobileVitBlock
from mvit.exporters.rewrites.separate_qkv import SeparateQkvAttention
from mvit.exporters.rewrites.short_concats import GroupedConcatSSDLite
from mvit.models import PreprocessSpec
from mvit.models.fusion import fuse_batchnorm
from mvit.models.mobilevit_block import Attention, MobileVitBlock

FOLD_PREPROCESSING, PATCH_LAYOUT, ATTENTION_LAYOUT = "fold_preprocessing", "patch_layout", "attention_layout"
SHORT_CONCATS, CHANNELS_LAST_PATCHES, SEPARATE_QKV = "short_concats", "channels_last_patches", "separate_qkv"
ALL = frozenset({FOLD_PREPROCESSING, PATCH_LAYOUT, ATTENTION_LAYOUT, SHORT_CONCATS})
# The two block layouts exclude each other; TFLite's set. (At the fixtures' small size attention_layout
# would take every attention and leave separate_qkv none: the two together are tested below.)
ALL_CHANNELS_LAST = ALL - {PATCH_LAYOUT, ATTENTION_LAYOUT} | {CHANNELS_LAST_PATCHES, SEPARATE_QKV}
# fp32 rounding: the rewrites reorder sums and fold constants into weights, nothing more.
RELATIVE = 2e-5


@functools.cache
def _prepared(fixture):
    # Shared by the parametrised cases: each one also asserts the fused network stays untouched.
    return api.prepare_export(fixture.name, ["onnx"], checkpoint=fixture.checkpoint)


def _pixels(task: str, count: int = 4) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(heldout(task, count)[0], dtype=np.float32))


def _outputs(module: nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    with torch.no_grad():
        out = module(x)
    return list(out) if isinstance(out, (tuple, list)) else [out]


def _assert_same(got: list[torch.Tensor], want: list[torch.Tensor]) -> None:
    assert len(got) == len(want)
    for g, w in zip(got, want):
        scale = float(w.abs().max())
        assert scale > 0 and float((g - w).abs().max()) <= RELATIVE * scale, (float((g - w).abs().max()), scale)


@pytest.mark.parametrize("task", sorted(FIXTURES))
@pytest.mark.parametrize(
    "rewrites",
    [
        frozenset({FOLD_PREPROCESSING}),
        frozenset({PATCH_LAYOUT}),
        frozenset({ATTENTION_LAYOUT}),
        frozenset({SHORT_CONCATS}),
        frozenset({CHANNELS_LAST_PATCHES}),
        frozenset({SEPARATE_QKV}),
        ALL,
        ALL_CHANNELS_LAST,
    ],
    ids=lambda r: "+".join(sorted(r)),
)
def test_each_rewrite_keeps_the_outputs_of_the_network_as_written(task, rewrites):
    fixture = FIXTURES[task]
    prepared = _prepared(fixture)
    fused, spec = prepared.fused, prepared.resolved.preprocess
    before = copy.deepcopy(fused.state_dict())
    net, folded, info = rewrite_for_export(fused, spec, fixture.image_size, rewrites)
    applies = rewrites if task == "detection" else rewrites - {SHORT_CONCATS}  # only SSDLite has six heads
    assert (net is not fused) == bool(applies) and folded == (FOLD_PREPROCESSING in rewrites)
    pixels = _pixels(task)
    traced_input = pixels if folded else PixelPreprocess(spec)(pixels)
    _assert_same(_outputs(net, traced_input), _outputs(fused, torch.from_numpy(to_network_input(pixels.numpy()))))
    # the network as written is untouched: verification compares against it
    assert all(torch.equal(before[k], v) for k, v in fused.state_dict().items())
    rewritten_kinds = (SpaceToDepthMobileVitBlock, ChannelsLastPatchBlock, HeadMajorAttention, SeparateQkvAttention)
    assert not any(isinstance(m, rewritten_kinds) for m in fused.modules())
    swapped = {type(m) for m in net.modules()}
    assert (SpaceToDepthMobileVitBlock in swapped) == (PATCH_LAYOUT in rewrites)
    assert (ChannelsLastPatchBlock in swapped) == (CHANNELS_LAST_PATCHES in rewrites)
    assert (MobileVitBlock in swapped) == (not rewrites & {PATCH_LAYOUT, CHANNELS_LAST_PATCHES})
    assert (HeadMajorAttention in swapped) == (ATTENTION_LAYOUT in rewrites)
    assert (SeparateQkvAttention in swapped) == (SEPARATE_QKV in rewrites)
    if SEPARATE_QKV in rewrites:
        assert Attention not in swapped  # attention_layout took some, separate_qkv the rest
    assert (GroupedConcatSSDLite in swapped) == (SHORT_CONCATS in applies)
    assert set(info) == set(applies)


@pytest.mark.parametrize("config, size, swapped", [("A", 256, 3), ("B", 256, 9), ("A", 512, 0)])
def test_head_major_attention_only_where_a_block_attends_over_few_patches(config, size, swapped):
    """XXS: 2 + 4 + 3 layers. At 256, A's last block attends over 16 patches and its first two over
    256 and 64; B's blocks all over 16. At 512 none qualifies, and nothing is rewritten."""
    from mvit.models import create_model

    torch.manual_seed(0)
    fused = fuse_batchnorm(create_model("mobilevit_xxs", config)).eval()
    state = torch.get_rng_state()
    net, _, info = rewrite_for_export(fused, None, size, frozenset({ATTENTION_LAYOUT}))
    assert torch.equal(torch.get_rng_state(), state)  # the rewrite draws no random numbers
    head_major = [m for m in net.modules() if isinstance(m, HeadMajorAttention)]
    assert len(head_major) == swapped and len(info.get(ATTENTION_LAYOUT, {}).get("attentions", [])) == swapped
    assert sum(isinstance(m, Attention) for m in net.modules()) == 9 - swapped
    x = torch.randn(1, 3, size, size)
    if not swapped:
        assert net is fused and ATTENTION_LAYOUT not in info
    else:
        _assert_same(_outputs(net, x), _outputs(fused, x))
    # with separate_qkv too, it takes the attentions left as written; neither draws random numbers
    state = torch.get_rng_state()
    both, _, info = rewrite_for_export(fused, None, size, frozenset({ATTENTION_LAYOUT, SEPARATE_QKV}))
    assert torch.equal(torch.get_rng_state(), state)
    kinds = [type(m) for m in both.modules()]
    assert (kinds.count(HeadMajorAttention), kinds.count(SeparateQkvAttention), kinds.count(Attention)) == (swapped, 9 - swapped, 0)
    assert len(info.get(SEPARATE_QKV, {}).get("attentions", [])) == 9 - swapped
    _assert_same(_outputs(both, x), _outputs(fused, x))


@pytest.mark.parametrize("p", [2, 4, 8])
def test_channels_last_unfold_gives_the_networks_tokens_in_the_networks_order(p):
    from mvit.exporters.rewrites.channels_last_patches import fold_channels_last, unfold_channels_last
    from mvit.models.mobilevit_block import unfold_patches

    x = torch.randn(2, 5, 16, 24)
    tokens = unfold_channels_last(x, p)
    assert torch.equal(tokens, unfold_patches(x, p, p))  # same values, same order: attention sees the same tensor
    assert torch.equal(fold_channels_last(tokens, 2, 16, 24, p), x)


def test_every_rewrite_is_registered_with_what_it_declares():
    assert set(REWRITES) == {FOLD_PREPROCESSING, PATCH_LAYOUT, ATTENTION_LAYOUT, SHORT_CONCATS, CHANNELS_LAST_PATCHES, SEPARATE_QKV}
    # The block swaps are traced at one size, so the multi-size graphs leave them out.
    assert SIZE_BAKING_REWRITES == {PATCH_LAYOUT, CHANNELS_LAST_PATCHES, ATTENTION_LAYOUT}
    # separate_qkv takes the attentions attention_layout left; both follow the block layouts they read.
    order = sorted(REWRITES, key=lambda name: REWRITES[name].order)
    assert order.index(ATTENTION_LAYOUT) < order.index(SEPARATE_QKV)
    assert order.index(FOLD_PREPROCESSING) == 0
    assert len({r.order for r in REWRITES.values()}) == len(REWRITES)  # no tie leaves the order to chance


def test_applies_to_says_exactly_which_targets_ask_for_each_rewrite():
    from mvit.exporters.targets import get_target, target_names

    asked = {name: {t for t in target_names() if name in get_target(t).export_rewrites} for name in REWRITES}
    assert asked == {name: set(rewrite.applies_to) for name, rewrite in REWRITES.items()}
    for t in target_names():  # a quantised export skips some of its target's rewrites, never names others
        for skipped in get_target(t).rewrites_skipped_for.values():
            assert skipped <= get_target(t).export_rewrites


def test_rewrites_run_in_registered_order_whatever_order_they_are_named_in(monkeypatch):
    from mvit.exporters.rewrites.registry import Rewritten

    ran = []
    for name in (SEPARATE_QKV, ATTENTION_LAYOUT, FOLD_PREPROCESSING):
        monkeypatch.setitem(REWRITES, name, dataclasses.replace(REWRITES[name], apply=lambda net, context, name=name: ran.append(name) or Rewritten(net)))
    net = nn.Linear(2, 2)
    kept, folded, info = rewrite_for_export(net, None, 64, frozenset({SEPARATE_QKV, FOLD_PREPROCESSING, ATTENTION_LAYOUT}))
    assert ran == [FOLD_PREPROCESSING, ATTENTION_LAYOUT, SEPARATE_QKV]
    assert kept is net and not folded and info == {}  # nothing changed: the network comes back as it came


def test_a_rewrite_name_is_registered_once():
    from mvit.exporters.rewrites.registry import register_rewrite

    with pytest.raises(ValueError, match="registered twice"):
        register_rewrite(PATCH_LAYOUT, order=99, applies_to=frozenset())(lambda net, context: None)  # type: ignore[arg-type,return-value]
    with pytest.raises(ValueError, match="unknown export rewrites"):
        rewrite_for_export(nn.Identity(), None, 64, frozenset({"no_such_rewrite"}))


def test_the_two_block_layouts_are_refused_together():
    with pytest.raises(ValueError, match="exclude each other"):
        rewrite_for_export(nn.Identity(), None, 64, frozenset({PATCH_LAYOUT, CHANNELS_LAST_PATCHES}))


def test_tflite_rewrites_remove_the_ops_they_are_for(tmp_path, monkeypatch):
    """channels_last_patches: the network as written unfolds with three TRANSPOSEs once converted
    (two of its own and the converter's NHWC -> NCHW) and folds with three; the rewrite leaves one
    each. separate_qkv: three FULLY_CONNECTEDs per attention instead of one and three SLICEs, and
    one more TRANSPOSE (q, k and v each have their own)."""
    from mvit.exporters.targets.tflite.target import TFLiteTarget

    assert {CHANNELS_LAST_PATCHES, SEPARATE_QKV} <= TFLiteTarget.export_rewrites
    reports = {}
    for run, rewrites in (
        ("rewritten", TFLiteTarget.export_rewrites),
        ("no_channels_last", TFLiteTarget.export_rewrites - {CHANNELS_LAST_PATCHES}),
        ("no_separate_qkv", TFLiteTarget.export_rewrites - {SEPARATE_QKV}),
    ):
        monkeypatch.setattr(TFLiteTarget, "export_rewrites", rewrites)
        result = api.export_model(None, "tflite", tmp_path / run, precision="fp32", checkpoint=CLASSIFIER.checkpoint)
        assert result.verdict == "pass", result.report["failed"]
        reports[run] = result.report
    rewritten = reports["rewritten"]["export_rewrites"]
    blocks, attentions = rewritten[CHANNELS_LAST_PATCHES]["blocks"], rewritten[SEPARATE_QKV]["attentions"]
    assert len(blocks) == 3 and len(attentions) == 9  # XXS: 3 blocks, 2 + 4 + 3 layers
    assert CHANNELS_LAST_PATCHES not in reports["no_channels_last"]["export_rewrites"]
    ops = {run: report["op_histogram"] for run, report in reports.items()}
    assert ops["no_channels_last"]["TRANSPOSE"] - ops["rewritten"]["TRANSPOSE"] == 4 * len(blocks), ops
    assert ops["no_separate_qkv"].get("SLICE", 0) == 3 * len(attentions) and "SLICE" not in ops["rewritten"], ops
    assert ops["rewritten"]["FULLY_CONNECTED"] - ops["no_separate_qkv"]["FULLY_CONNECTED"] == 2 * len(attentions)
    assert ops["rewritten"]["TRANSPOSE"] - ops["no_separate_qkv"]["TRANSPOSE"] == len(attentions)


def test_onnx_runtime_fuses_no_skip_layer_norm_in_a_rewritten_export(tmp_path, shared_export):
    """ORT fuses a residual Add feeding a LayerNormalization into SkipLayerNormalization, which was
    slower here; the patch layout reads the block's last norm through a reshape so it does not."""
    import onnx
    import onnxruntime as ort

    # 64 px, the fixture's own size: the fusion is a property of the graph, whatever the input size
    result = shared_export(None, "onnx", checkpoint=CLASSIFIER.checkpoint, precision="fp32", image_size=CLASSIFIER.image_size, verify=False)
    options = ort.SessionOptions()
    options.optimized_model_filepath = str(tmp_path / "optimised.onnx")
    ort.InferenceSession(str(result.path), options, providers=["CPUExecutionProvider"])
    ops = [n.op_type for n in onnx.load(options.optimized_model_filepath).graph.node]
    # MobileViT-XXS: 9 transformer layers x 2 norms + 3 block norms
    assert ops.count("LayerNormalization") == 21 and "SkipLayerNormalization" not in ops, sorted(set(ops))


def test_fold_moves_scale_std_and_bgr_into_the_stem_conv():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.SiLU(), nn.Conv2d(8, 4, 1)).eval()
    spec = PreprocessSpec(72, 64, scale=1 / 255, std=(0.229, 0.224, 0.225), channel_order="BGR")
    rewritten = copy.deepcopy(net)
    decision = fold_preprocessing(rewritten, spec, 64)
    assert decision.folded and decision.conv == "0"
    pixels = torch.rand(2, 3, 64, 64) * 255  # the padded border is where an offset would show
    _assert_same(_outputs(rewritten, pixels), _outputs(net, PixelPreprocess(spec)(pixels)))
    # BGR: the weight the network gave its first input channel (blue) now reads pixel channel 2
    expected = net[0].weight[:, 0] * (1 / 255) / 0.229
    assert torch.allclose(rewritten[0].weight[:, 2], expected, rtol=1e-6)


@pytest.mark.parametrize(
    "why, net, spec",
    [
        ("mean", nn.Conv2d(3, 8, 3, padding=1), PreprocessSpec(64, 64, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))),
        ("input read twice", None, PreprocessSpec(64, 64)),
        ("reflect padding", nn.Conv2d(3, 8, 3, padding=1, padding_mode="reflect"), PreprocessSpec(64, 64)),
    ],
)
def test_fold_is_refused_where_it_would_not_be_exact(why, net, spec):
    class InputTwice(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 3, 3, padding=1)

        def forward(self, x):
            return self.conv(x) + x

    net = (net or InputTwice()).eval()
    weights = copy.deepcopy(net.state_dict())
    decision = fold_preprocessing(net, spec, 64)
    assert not decision.folded and decision.reason
    assert all(torch.equal(weights[k], v) for k, v in net.state_dict().items())
    kept, folded, info = rewrite_for_export(net, spec, 64, frozenset({FOLD_PREPROCESSING}))
    assert kept is net and not folded and info[FOLD_PREPROCESSING]["folded"] is False


def test_export_with_a_mean_keeps_preprocessing_in_graph_and_verifies(cli_run, tmp_path):
    code, out, err = cli_run(
        export_main,
        "--target",
        "onnx",
        "--checkpoint",
        str(CLASSIFIER.checkpoint),
        "--precision",
        "fp32",
        "--mean",
        "0.5,0.4,0.3",
        "--std",
        "0.2,0.25,0.3",
        "--out",
        str(tmp_path),
    )
    assert code == 0, err
    report = json.loads(next(tmp_path.glob("*.onnx.report.json")).read_text())
    assert report["verdict"] == "pass"
    assert report["export_rewrites"][FOLD_PREPROCESSING]["folded"] is False
    assert "mean" in report["export_rewrites"][FOLD_PREPROCESSING]["why"]
    assert report["preprocess"]["mean"] == [0.3, 0.4, 0.5]  # recorded in the network's (BGR) channel order


def test_rewritten_onnx_export_verifies_describes_its_input_and_is_byte_identical(cli_run, tmp_path):
    # Segmentation and detection exports take the same rewrites; their module-level exactness is
    # checked above, and their verified exports in test_trained_fixture.py.
    shas = []
    for run, extra in (("first", ()), ("second", ("--no-verify",))):
        code, out, err = cli_run(
            export_main, "--target", "onnx", "--checkpoint", str(CLASSIFIER.checkpoint), "--precision", "fp32", "--out", str(tmp_path / run), *extra
        )
        assert code == 0, err
        report = json.loads(next((tmp_path / run).glob("*.onnx.report.json")).read_text())
        shas.append(report["sha256"])
        if run == "first":
            assert report["verdict"] == "pass"
    assert shas[0] == shas[1]
    assert report["export_rewrites"][FOLD_PREPROCESSING]["folded"] is True
    assert report["export_rewrites"][PATCH_LAYOUT]["blocks"]
    hist = report["op_histogram"]
    assert hist.get("SpaceToDepth") == hist.get("DepthToSpace") == 3
    # the metadata still says what the input is: RGB pixels 0..255, BGR weights, x/255
    assert report["preprocess"]["channel_order"] == "BGR" and report["preprocess"]["in_graph"] is True
    assert abs(report["preprocess"]["scale"] - 1 / 255) < 1e-12
    assert report["export_rewrites"][ATTENTION_LAYOUT]["attentions"]  # 64 px: every block attends over <= 16 patches
