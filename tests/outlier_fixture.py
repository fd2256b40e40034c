"""The trained digit classifier with the activation statistics of a real pretrained MobileViT.

Real ImageNet checkpoints fold BatchNorm into convolutions whose outputs, before SiLU, hold a few
outlier channels: a large negative shift (a channel SiLU switches off) and a channel scaled far
above its neighbours. Per-tensor int8 activation ranges then spend their 256 levels on those
channels and round the others to a handful of values, which is what breaks plain int8 on real
weights while the from-scratch digit fixture quantises cleanly. The float network barely changes:
the shifted channels are the ones the next layer uses least, and the scaled channel is divided back
in the depthwise convolution after SiLU (SiLU(12x) / 12 = SiLU(x) for x > 0).
"""

from __future__ import annotations

from pathlib import Path

import torch
import trained_fixtures as tf
from safetensors.torch import load_file, save_file

# Expansion 1x1 (before SiLU) of the first inverted-residual block of stages 0-2, where real
# checkpoints put their outlier channels (per-layer sensitivity of a fine-tuned MobileViT-XXS).
BLOCKS = ("stages.0.0", "stages.1.0", "stages.2.0")
SHIFT = -300.0  # pre-SiLU shift of the two switched-off channels, as seen in fused real BatchNorms
SCALE = 12.0  # one channel's pre-SiLU scale relative to the rest


def outlier_state_dict() -> dict[str, torch.Tensor]:
    sd = {k: v.clone() for k, v in load_file(str(tf.CLASSIFIER.checkpoint)).items()}
    for block in BLOCKS:
        bn, depthwise = f"{block}.conv1_1x1.bn", f"{block}.conv2_kxk.conv.weight"
        use = sd[depthwise].abs().sum(dim=(1, 2, 3)) * sd[f"{bn}.weight"].abs()
        quiet = torch.argsort(use)[:2]  # the channels the next layer uses least
        loud = int(torch.argsort(use)[-1])
        # BN: y = (x - mean) / sqrt(var + eps) * weight + bias; the shift goes into bias.
        sd[f"{bn}.bias"][quiet] += SHIFT
        sd[f"{bn}.weight"][loud] *= SCALE
        sd[f"{bn}.bias"][loud] *= SCALE
        sd[depthwise][loud] /= SCALE
    return sd


def write_checkpoint(folder: Path) -> Path:
    """The outlier classifier as a .safetensors file, as a user passes it to --checkpoint."""
    path = Path(folder) / f"{tf.CLASSIFIER.name}_outliers.safetensors"
    save_file(outlier_state_dict(), str(path))
    return path
