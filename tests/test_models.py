import pytest
import torch
from model_utils import MaxRank

from mvit.models import create_model, get_spec, list_models
from mvit.models.detection_postprocess import DetectionDecoder, generate_anchors, select_detections
from mvit.models.mobilevit_block import fold_patches, unfold_patches
from mvit.models.ssdlite import ASPECT_RATIOS

# Apple's ml-cvnets (cvnets-v0.1) backbone and heads; MobileNetV2 1.0 as torchvision counts it.
PARAMS = {
    "mobilevit_xxs": 1_272_024,
    "mobilevit_xs": 2_317_848,
    "mobilevit_s": 5_578_632,
    "deeplabv3_mobilevit_xxs": 1_854_853,
    "deeplabv3_mobilevit_xs": 2_944_069,
    "deeplabv3_mobilevit_s": 6_357_941,
    "ssdlite_mobilevit_xxs": 1_755_050,
    "ssdlite_mobilevit_xs": 2_742_042,
    "ssdlite_mobilevit_s": 5_738_826,
    "mobilenet_v2": 3_504_872,
    # MobileViT v2, as transformers' MobileViTV2ForImageClassification / ForSemanticSegmentation count them.
    "mobilevitv2_050": 1_370_593,
    "mobilevitv2_075": 2_866_009,
    "mobilevitv2_100": 4_901_841,
    "deeplabv3_mobilevitv2_050": 6_242_318,
    "deeplabv3_mobilevitv2_075": 9_510_278,
    "deeplabv3_mobilevitv2_100": 13_318_654,
}


@pytest.mark.parametrize("name", sorted(PARAMS))
def test_parameter_count_matches_reference(name):
    model = create_model(name)
    assert sum(p.numel() for p in model.parameters()) == PARAMS[name]


def test_registry_names_every_model_with_task_size_and_preprocessing():
    assert set(list_models()) == set(PARAMS)
    tasks = {get_spec(n).task for n in list_models()}
    assert tasks == {"classification", "segmentation", "detection"}
    assert get_spec("mobilevit_xs").input_size == 256
    assert get_spec("deeplabv3_mobilevit_s").input_size == 512
    assert get_spec("ssdlite_mobilevit_xxs").input_size == 320
    pre = get_spec("mobilevit_xxs").preprocess
    assert (pre.channel_order, pre.scale, pre.resize_shortest, pre.crop) == ("BGR", 1 / 255, 288, 256)
    assert get_spec("deeplabv3_mobilevit_xxs").default_labels()[15] == "person"
    assert len(get_spec("ssdlite_mobilevit_xxs").default_labels()) == 81


def test_unknown_model_and_config_are_clear_errors():
    with pytest.raises(KeyError, match="unknown model 'mobilevit_xxl'"):
        create_model("mobilevit_xxl")
    with pytest.raises(ValueError, match="use 'A'"):
        create_model("mobilevit_xxs", config="C")
    with pytest.raises(ValueError, match="no MobileViT blocks"):
        create_model("mobilenet_v2", config="B")


@pytest.mark.parametrize("patch", [(2, 2), (4, 4), (8, 8), (2, 4)])
def test_fold_inverts_unfold_and_groups_patch_pixels(patch):
    x = torch.randn(2, 5, 16, 24)
    ph, pw = patch
    u = unfold_patches(x, ph, pw)
    assert u.shape == (2 * ph * pw, (16 // ph) * (24 // pw), 5)
    assert torch.equal(fold_patches(u, 2, 16, 24, ph, pw), x)
    # Sequence j of batch 0 at pixel (0, 0) of each patch is the top-left pixel of patch j.
    assert torch.equal(u[0, :, 0], x[0, 0, ::ph, ::pw].reshape(-1))


@pytest.mark.parametrize(
    "name,config,size,shape",
    [
        ("mobilevit_xxs", "A", 256, (1, 1000)),
        ("mobilevit_xxs", "B", 256, (1, 1000)),
        ("deeplabv3_mobilevit_xxs", "B", 512, (1, 21, 32, 32)),
        ("ssdlite_mobilevit_xxs", "B", 320, None),
    ],
)
def test_every_tensor_stays_rank_4_or_less(name, config, size, shape):
    model = create_model(name, config)
    with torch.no_grad(), MaxRank() as ranks:
        out = model(torch.randn(1, 3, size, size))
    assert ranks.max_rank <= 4, f"rank {ranks.max_rank} from {ranks.op}"
    if shape:
        assert tuple(out.shape) == shape


def test_config_b_is_a_parameter():
    a, b = create_model("mobilevit_xxs", "A"), create_model("mobilevit_xxs", "B")
    assert [s[1].patch_size for s in a.stages[2:]] == [2, 2, 2]
    assert [s[1].patch_size for s in b.stages[2:]] == [8, 4, 2]
    assert sum(p.numel() for p in a.parameters()) == sum(p.numel() for p in b.parameters())


def test_non_multiple_input_is_resized_like_the_reference():
    # 250 -> feature maps 32/16/8 -> 31.25..: every MobileViT block resizes up and back.
    model = create_model("mobilevit_xxs", "B")
    with torch.no_grad():
        assert model(torch.randn(1, 3, 250, 250)).shape == (1, 1000)


def test_ssdlite_has_3232_anchors_at_320_and_postprocess_is_separate():
    model = create_model("ssdlite_mobilevit_xxs")
    sizes = model.feature_map_sizes(320)
    assert sizes == [(20, 20), (10, 10), (5, 5), (3, 3), (2, 2), (1, 1)]
    anchors = generate_anchors(sizes, ASPECT_RATIOS)
    assert anchors.shape == (3232, 4)
    assert anchors.min() >= 0 and anchors.max() <= 1
    with torch.no_grad():
        offsets, logits = model(torch.randn(1, 3, 320, 320))
    assert offsets.shape == (1, 3232, 4) and logits.shape == (1, 3232, 81)
    boxes, probs = DetectionDecoder(anchors)(offsets, logits)
    assert torch.allclose(probs.sum(-1), torch.ones(1, 3232), atol=1e-5)
    assert (boxes[..., 2:] >= boxes[..., :2]).all()


def test_zero_offsets_decode_to_the_anchor_boxes_and_nms_suppresses_overlaps():
    anchors = torch.tensor([[0.5, 0.5, 0.2, 0.2], [0.51, 0.5, 0.2, 0.2], [0.1, 0.1, 0.1, 0.1]])
    boxes, _ = DetectionDecoder(anchors)(torch.zeros(1, 3, 4), torch.zeros(1, 3, 2))
    assert torch.allclose(boxes[0, 0], torch.tensor([0.4, 0.4, 0.6, 0.6]))
    probs = torch.tensor([[0.1, 0.9], [0.2, 0.8], [0.3, 0.7]])
    kept_boxes, scores, labels = select_detections(boxes[0], probs)
    assert scores.tolist() == pytest.approx([0.9, 0.7])  # the 0.8 box overlaps the 0.9 one
    assert labels.tolist() == [1, 1]


def test_best_class_only_keeps_each_anchor_once_like_coreml():
    boxes = torch.tensor([[0.1, 0.1, 0.3, 0.3], [0.6, 0.6, 0.9, 0.9]])
    probs = torch.tensor([[0.1, 0.5, 0.4], [0.2, 0.3, 0.5]])
    _, scores, labels = select_detections(boxes, probs)
    assert sorted(labels.tolist()) == [1, 1, 2, 2]  # both anchors under both classes
    _, scores, labels = select_detections(boxes, probs, best_class_only=True)
    assert labels.tolist() == [1, 2] and scores.tolist() == pytest.approx([0.5, 0.5])
