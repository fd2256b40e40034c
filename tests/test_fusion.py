import pytest
import torch
from model_utils import randomize_

from mvit.models import create_model, fuse_batchnorm


@pytest.mark.parametrize("name,size", [("mobilevit_xxs", 128), ("deeplabv3_mobilevit_xxs", 128), ("ssdlite_mobilevit_xxs", 192), ("mobilenet_v2", 96)])
def test_fusion_leaves_no_batchnorm_and_keeps_outputs(name, size):
    model = randomize_(create_model(name))
    fused = fuse_batchnorm(model)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fused.modules())
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules()), "fusion must not touch the original"
    x = torch.rand(2, 3, size, size)
    with torch.no_grad():
        ref, out = model(x), fused(x)
    for r, o in zip(torch.atleast_1d(ref) if isinstance(ref, tuple) else (ref,), out if isinstance(out, tuple) else (out,)):
        rel = ((r - o).abs().max() / r.abs().max()).item()
        assert rel < 1e-5, rel


def test_fusion_detects_a_wrong_fold():
    # The check above could fail: perturbing one BN statistic after fusion changes outputs.
    model = randomize_(create_model("mobilevit_xxs"))
    x = torch.rand(1, 3, 64, 64)
    fused = fuse_batchnorm(model)
    model.stem.bn.running_mean += 2.0
    with torch.no_grad():
        ref = model(x)
        rel = ((ref - fused(x)).abs().max() / ref.abs().max()).item()
    assert rel > 1e-4  # well above the 1e-5 the fusion test allows
