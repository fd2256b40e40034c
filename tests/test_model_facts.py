"""Model facts (models/facts.py) answered by MobileViT v1 and v2 blocks alike, and the export
checks that read them: the input multiple, whether a size resizes feature maps, attention memory."""

import pytest
import torch

from mvit.exporters.base import ExportError
from mvit.exporters.resolve import check_image_size, check_size_bounds
from mvit.models import create_model
from mvit.models.facts import attention_bytes, input_multiple, patch_block_inputs, resizes_at
from mvit.models.mobilevit_block import MobileVitBlock
from mvit.models.mobilevit_v2_block import MobileVitV2Block

V1, V2 = "mobilevit_xxs", "mobilevitv2_050"


def _net(name):
    torch.manual_seed(0)
    return create_model(name).eval()


@pytest.mark.parametrize("name, block", [(V1, MobileVitBlock), (V2, MobileVitV2Block)])
def test_patch_blocks_of_v1_and_v2_are_found_with_their_strides(name, block):
    blocks = patch_block_inputs(_net(name), 128)
    assert len(blocks) == 3 and all(type(b.block) is block for b in blocks)
    assert [b.stride for b in blocks] == [8, 16, 32]
    assert [b.feature_size for b in blocks] == [16, 8, 4]
    assert input_multiple(blocks) == 64  # stride 32 x patch 2


@pytest.mark.parametrize("name", [V1, V2])
def test_a_size_off_the_multiple_is_reported_resized_for_v1_and_v2(name):
    net = _net(name)
    assert check_image_size(net, 128, "A", name).as_dict() == {"feature_maps_resized": False, "size_multiple": 64}
    # 96 px: the last patch block sees a 3x3 map, which its 2x2 patches do not tile.
    assert check_image_size(net, 96, "A", name).as_dict() == {"feature_maps_resized": True, "size_multiple": 64}
    assert not resizes_at(net, [128, 192])
    assert resizes_at(net, [128, 96])


def test_a_network_without_patch_blocks_needs_no_multiple():
    net = _net("mobilenet_v2")
    assert patch_block_inputs(net, 96) == []
    assert check_image_size(net, 100, "A", "mobilenet_v2").as_dict() == {"feature_maps_resized": False, "size_multiple": 1}
    assert attention_bytes(net, 2048) == 0


def test_attention_memory_is_quadratic_in_tokens_for_v1_and_linear_for_v2():
    v1, v2 = _net(V1), _net(V2)
    # v1: 4 heads x P=4 pixels x N^2 scores at stride 8 (N = (512/8/2)^2 = 1024 patches), fp32.
    assert attention_bytes(v1, 512) == 4 * 4 * 4 * 1024**2
    # v2: its qkv projection, 1 + 2 * 64 channels (width 0.5: dim 64 at stride 8) x P=4 x N=1024, fp32.
    assert attention_bytes(v2, 512) == 4 * (1 + 2 * 64) * 4 * 1024
    # Doubling the size multiplies v1's by 16 and v2's by 4.
    assert attention_bytes(v1, 1024) == 16 * attention_bytes(v1, 512)
    assert attention_bytes(v2, 1024) == 4 * attention_bytes(v2, 512)


def test_too_large_a_size_names_the_memory_of_the_network_it_was_asked_for():
    with pytest.raises(ExportError, match=r"about 275 GB"):
        check_size_bounds(4096, net=_net(V1))
    with pytest.raises(ExportError, match="at most 1024") as v2:
        check_size_bounds(4096, net=_net(V2))
    assert "about 0.14 GB" in str(v2.value)  # separable attention: a few hundred times less
