"""The MobileViT v2 block: depthwise 3x3, 1x1, separable self-attention across patches, fold, 1x1.

Mehta & Rastegari 2022, "Separable Self-attention for Mobile Vision Transformers". Patches stay
channel-first ([B, C, P, N]), so every projection is a 1x1 conv and the "LayerNorm" is
GroupNorm(1, C), as in ml-cvnets, timm and HF. Unfold/fold are reshapes and permutes of rank
<= 4, not F.unfold/F.fold: fold lowers to col2im, which CoreML lacks and ONNX has only from
opset 18, and a rank-6 reshape (timm's way) is what CoreML rejected in timm#1407.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .layers import ConvBnAct

PATCH_SIZE = 2  # every v2 block of every released model (ml-cvnets configs, HF, timm)


def unfold_patches(x: torch.Tensor, patch: int) -> torch.Tensor:
    """[B, C, H, W] -> [B, C, P, N]; P pixels per patch (row-major), N patches (row-major).

    The same layout as F.unfold(x, patch, stride=patch).reshape(B, C, P, N).
    """
    b, c, h, w = x.shape
    nh, nw = h // patch, w // patch
    x = x.reshape(b * c * nh, patch, nw, patch).permute(0, 1, 3, 2)  # [bc*nh, ph, pw, nw]
    x = x.reshape(b * c, nh, patch * patch, nw).transpose(1, 2)  # [bc, P, nh, nw]
    return x.reshape(b, c, patch * patch, nh * nw)


def fold_patches(x: torch.Tensor, height: int, width: int, patch: int) -> torch.Tensor:
    """Exact inverse of `unfold_patches`."""
    b, c = x.shape[:2]
    nh, nw = height // patch, width // patch
    x = x.reshape(b * c, patch * patch, nh, nw).transpose(1, 2)  # [bc, nh, P, nw]
    x = x.reshape(b * c * nh, patch, patch, nw).permute(0, 1, 3, 2)  # [bc*nh, ph, nw, pw]
    return x.reshape(b, c, height, width)


class GroupNorm1(nn.GroupNorm):
    """GroupNorm(1, C), the "LayerNorm" of v2, spelled out in rank-4 elementwise ops.

    The same function and parameters as nn.GroupNorm(1, C), but converters see no group_norm:
    coremltools lowers that through a rank-5 reshape and fuses its per-channel affine into a
    `batch_norm` op, which an export of a BN-fused network must not contain. Folding the
    weight into the per-sample scale leaves no const-scale-then-shift pattern to fuse.
    """

    def __init__(self, channels: int, eps: float = 1e-5) -> None:
        super().__init__(1, channels, eps=eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        centered = x - x.mean(dim=(1, 2, 3), keepdim=True)
        var = (centered * centered).mean(dim=(1, 2, 3), keepdim=True)
        scale = self.weight.reshape(1, -1, 1, 1) * torch.rsqrt(var + self.eps)
        return centered * scale + self.bias.reshape(1, -1, 1, 1)


class LinearSelfAttention(nn.Module):
    """Separable self-attention: one context score per patch instead of an N x N matrix.

    qkv_proj rows are ordered query (1), key (dim), value (dim).
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dim = dim
        self.qkv_proj = nn.Conv2d(dim, 1 + 2 * dim, 1, bias=True)
        self.out_proj = nn.Conv2d(dim, dim, 1, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        query, key, value = self.qkv_proj(x).split([1, self.dim, self.dim], dim=1)
        scores = query.softmax(dim=-1)  # over the N patches
        context = (key * scores).sum(dim=-1, keepdim=True)  # [B, dim, P, 1]
        return self.out_proj(F.relu(value) * context)


class ConvMlp(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Conv2d(dim, hidden, 1, bias=True)
        self.act = nn.SiLU()
        self.fc2 = nn.Conv2d(hidden, dim, 1, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class LinearTransformerBlock(nn.Module):
    """Pre-norm layer: separable attention, then a 1x1-conv FFN of width 2x (rounded down to 16)."""

    def __init__(self, dim: int, ffn_multiplier: float = 2.0) -> None:
        super().__init__()
        self.norm1 = GroupNorm1(dim)
        self.attn = LinearSelfAttention(dim)
        self.norm2 = GroupNorm1(dim)
        # ml-cvnets and HF round the FFN width down to a multiple of 16.
        self.mlp = ConvMlp(dim, int(dim * ffn_multiplier) // 16 * 16)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class MobileVitV2Block(nn.Module):
    """No fusion conv and no shortcut, unlike v1: the block's output is conv_proj's."""

    def __init__(self, channels: int, dim: int, depth: int, patch_size: int = PATCH_SIZE) -> None:
        super().__init__()
        self.patch_size = patch_size
        self.conv_kxk = ConvBnAct(channels, channels, 3, groups=channels)
        self.conv_1x1 = nn.Conv2d(channels, dim, 1, bias=False)
        self.transformer = nn.Sequential(*[LinearTransformerBlock(dim) for _ in range(depth)])
        self.norm = GroupNorm1(dim)
        self.conv_proj = ConvBnAct(dim, channels, 1, act=None)

    def attention_bytes(self, feature_size: int) -> int:
        """fp32 bytes of the largest attention tensor of one image whose feature map here is
        `feature_size` square. Separable attention keeps no N x N matrix: its largest tensor is
        the qkv projection, [1, 1 + 2 * dim, P, N], linear in the number of patches."""
        p = self.patch_size
        patches = math.ceil(feature_size / p) ** 2
        return 4 * self.qkv_channels() * p * p * patches

    def qkv_channels(self) -> int:
        return max((m.qkv_proj.out_channels for m in self.transformer.modules() if isinstance(m, LinearSelfAttention)), default=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = self.patch_size
        h, w = x.shape[-2:]
        new_h, new_w = int(math.ceil(h / p) * p), int(math.ceil(w / p) * p)
        if (new_h, new_w) != (h, w):
            # ml-cvnets and timm resize the block's input up to a multiple of the patch and keep
            # that size (align_corners=True); HF's F.unfold silently drops the edge instead.
            x = F.interpolate(x, size=(new_h, new_w), mode="bilinear", align_corners=True)
        y = unfold_patches(self.conv_1x1(self.conv_kxk(x)), p)
        y = self.norm(self.transformer(y))
        return self.conv_proj(fold_patches(y, new_h, new_w, p))
