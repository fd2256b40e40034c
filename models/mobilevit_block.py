"""The MobileViT block: local 3x3 conv, transformer across patches, fold back, fuse.

Unfold and fold keep every tensor at rank 4 or less and attention never builds a rank-5/6
tensor: CoreML rejects rank > 5 and converters handle rank-4 reshapes best
(the rank-4 unfold is equivalent to F.unfold with kernel = stride = patch).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .layers import ConvBnAct

NUM_HEADS = 4  # MobileViT v1 uses 4 heads in every block (ml-cvnets, HF, timm agree).


def unfold_patches(x: torch.Tensor, patch_h: int, patch_w: int) -> torch.Tensor:
    """[B, C, H, W] -> [B*P, N, C]: attention runs across the N patches for each of P pixels."""
    b, c, h, w = x.shape
    nh, nw = h // patch_h, w // patch_w
    p = patch_h * patch_w
    x = x.reshape(b * c * nh, patch_h, nw, patch_w).transpose(1, 2)
    x = x.reshape(b, c, nh * nw, p).transpose(1, 3)
    return x.reshape(b * p, nh * nw, c)


def fold_patches(x: torch.Tensor, batch: int, height: int, width: int, patch_h: int, patch_w: int) -> torch.Tensor:
    """Exact inverse of `unfold_patches`."""
    c = x.shape[-1]
    nh, nw = height // patch_h, width // patch_w
    p = patch_h * patch_w
    x = x.reshape(batch, p, nh * nw, c).transpose(1, 3)
    x = x.reshape(batch * c * nh, nw, patch_h, patch_w).transpose(1, 2)
    return x.reshape(batch, c, height, width)


class Attention(nn.Module):
    """Multi-head self-attention with a fused qkv projection (rows ordered q, k, v)."""

    def __init__(self, dim: int, num_heads: int = NUM_HEADS) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.scale = self.head_dim**-0.5
        self.qkv = nn.Linear(dim, dim * 3, bias=True)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        # [b, n, 3*heads, hd] -> [b, 3*heads, n, hd]: rank 4, split into q/k/v along dim 1.
        qkv = self.qkv(x).reshape(b, n, 3 * self.num_heads, self.head_dim).transpose(1, 2)
        q, k, v = qkv.split(self.num_heads, dim=1)
        attn = torch.matmul(q * self.scale, k.transpose(-2, -1)).softmax(dim=-1)
        out = torch.matmul(attn, v).transpose(1, 2).reshape(b, n, c)
        return self.proj(out)


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.SiLU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class TransformerBlock(nn.Module):
    """Pre-norm transformer layer; FFN width 2x (mlp_ratio 2.0 in the paper)."""

    def __init__(self, dim: int, mlp_ratio: float = 2.0) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-5)
        self.attn = Attention(dim)
        self.norm2 = nn.LayerNorm(dim, eps=1e-5)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class MobileVitBlock(nn.Module):
    def __init__(self, channels: int, dim: int, depth: int, patch_size: int = 2) -> None:
        super().__init__()
        self.patch_size = patch_size
        self.conv_kxk = ConvBnAct(channels, channels, 3)
        self.conv_1x1 = nn.Conv2d(channels, dim, 1, bias=False)
        self.transformer = nn.Sequential(*[TransformerBlock(dim) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim, eps=1e-5)
        self.conv_proj = ConvBnAct(dim, channels, 1)
        self.conv_fusion = ConvBnAct(2 * channels, channels, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x
        y = self.conv_1x1(self.conv_kxk(x))
        b, _, h, w = y.shape
        p = self.patch_size
        # Feature maps that are not a multiple of the patch are resized up and back, as
        # ml-cvnets, HF and timm do; under torch.export / tracing the sizes are static ints.
        new_h, new_w = int(math.ceil(h / p) * p), int(math.ceil(w / p) * p)
        resized = (new_h, new_w) != (h, w)
        if resized:
            y = F.interpolate(y, size=(new_h, new_w), mode="bilinear", align_corners=False)
        y = self.norm(self.transformer(self.unfold(y, p)))
        y = self.fold(y, b, new_h, new_w, p)
        if resized:
            y = F.interpolate(y, size=(h, w), mode="bilinear", align_corners=False)
        y = self.conv_proj(y)
        return self.conv_fusion(torch.cat([shortcut, y], dim=1))

    def attention_bytes(self, feature_size: int) -> int:
        """fp32 bytes of the attention scores of one image whose feature map here is
        `feature_size` square: every head holds an N x N matrix for each of the P patch pixels."""
        p = self.patch_size
        tokens = math.ceil(feature_size / p) ** 2
        heads = max((m.num_heads for m in self.transformer.modules() if isinstance(m, Attention)), default=NUM_HEADS)
        return 4 * p * p * heads * tokens * tokens

    # How pixels become tokens and back. Any layout whose fold inverts its unfold gives the same
    # outputs; a subclass may pick the one a runtime runs fastest.
    def unfold(self, y: torch.Tensor, p: int) -> torch.Tensor:
        return unfold_patches(y, p, p)

    def fold(self, y: torch.Tensor, batch: int, height: int, width: int, p: int) -> torch.Tensor:
        return fold_patches(y, batch, height, width, p, p)
