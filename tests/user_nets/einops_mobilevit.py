"""A MobileViT written the way tutorials and YOLO add-ons write it (einops rearrange everywhere).

This is deliberately *not* mvit's own block: the unfold `b d (h ph) (w pw) -> b (ph pw) (h w) d`
goes through a rank-6 tensor (b, d, h, ph, w, pw), which no export target takes, so exporting it
exercises exporters/lower_rank.py. Layout follows the widely copied chinhsuanwu/mobilevit-pytorch.
The network returns several outputs, as a detector backbone does: class logits and two feature maps.

Factories: `factory` (patch 2 in both MobileViT blocks, config-A style), `factory_patch8_4`
(patches 8 then 4, config-B style) and `factory_patch4` (patch 4 in both).
"""

from __future__ import annotations

import torch
from einops import rearrange
from torch import nn


def conv_1x1_bn(inp, oup):
    return nn.Sequential(nn.Conv2d(inp, oup, 1, 1, 0, bias=False), nn.BatchNorm2d(oup), nn.SiLU())


def conv_nxn_bn(inp, oup, kernel_size=3, stride=1):
    return nn.Sequential(nn.Conv2d(inp, oup, kernel_size, stride, 1, bias=False), nn.BatchNorm2d(oup), nn.SiLU())


class PreNorm(nn.Module):
    def __init__(self, dim, fn):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.fn = fn

    def forward(self, x, **kwargs):
        return self.fn(self.norm(x), **kwargs)


class FeedForward(nn.Module):
    def __init__(self, dim, hidden_dim, dropout=0.0):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(dim, hidden_dim), nn.SiLU(), nn.Dropout(dropout), nn.Linear(hidden_dim, dim), nn.Dropout(dropout))

    def forward(self, x):
        return self.net(x)


class Attention(nn.Module):
    def __init__(self, dim, heads=4, dim_head=8, dropout=0.0):
        super().__init__()
        inner_dim = dim_head * heads
        self.heads = heads
        self.scale = dim_head**-0.5
        self.attend = nn.Softmax(dim=-1)
        self.to_qkv = nn.Linear(dim, inner_dim * 3, bias=False)
        self.to_out = nn.Sequential(nn.Linear(inner_dim, dim), nn.Dropout(dropout))

    def forward(self, x):
        qkv = self.to_qkv(x).chunk(3, dim=-1)
        q, k, v = map(lambda t: rearrange(t, "b p n (h d) -> b p h n d", h=self.heads), qkv)
        dots = torch.matmul(q, k.transpose(-1, -2)) * self.scale
        attn = self.attend(dots)
        out = torch.matmul(attn, v)
        out = rearrange(out, "b p h n d -> b p n (h d)")
        return self.to_out(out)


class Transformer(nn.Module):
    def __init__(self, dim, depth, heads, dim_head, mlp_dim, dropout=0.0):
        super().__init__()
        self.layers = nn.ModuleList([])
        for _ in range(depth):
            self.layers.append(
                nn.ModuleList(
                    [
                        PreNorm(dim, Attention(dim, heads, dim_head, dropout)),
                        PreNorm(dim, FeedForward(dim, mlp_dim, dropout)),
                    ]
                )
            )

    def forward(self, x):
        for attn, ff in self.layers:
            x = attn(x) + x
            x = ff(x) + x
        return x


class MV2Block(nn.Module):
    def __init__(self, inp, oup, stride=1, expansion=4):
        super().__init__()
        self.stride = stride
        hidden_dim = int(inp * expansion)
        self.use_res_connect = self.stride == 1 and inp == oup
        self.conv = nn.Sequential(
            nn.Conv2d(inp, hidden_dim, 1, 1, 0, bias=False),
            nn.BatchNorm2d(hidden_dim),
            nn.SiLU(),
            nn.Conv2d(hidden_dim, hidden_dim, 3, stride, 1, groups=hidden_dim, bias=False),
            nn.BatchNorm2d(hidden_dim),
            nn.SiLU(),
            nn.Conv2d(hidden_dim, oup, 1, 1, 0, bias=False),
            nn.BatchNorm2d(oup),
        )

    def forward(self, x):
        if self.use_res_connect:
            return x + self.conv(x)
        return self.conv(x)


class MobileViTBlock(nn.Module):
    def __init__(self, dim, depth, channel, kernel_size, patch_size, mlp_dim, dropout=0.0):
        super().__init__()
        self.ph, self.pw = patch_size
        self.conv1 = conv_nxn_bn(channel, channel, kernel_size)
        self.conv2 = conv_1x1_bn(channel, dim)
        self.transformer = Transformer(dim, depth, 4, 8, mlp_dim, dropout)
        self.conv3 = conv_1x1_bn(dim, channel)
        self.conv4 = conv_nxn_bn(2 * channel, channel, kernel_size)

    def forward(self, x):
        y = x.clone()
        x = self.conv1(x)
        x = self.conv2(x)
        _, _, h, w = x.shape
        x = rearrange(x, "b d (h ph) (w pw) -> b (ph pw) (h w) d", ph=self.ph, pw=self.pw)
        x = self.transformer(x)
        x = rearrange(x, "b (ph pw) (h w) d -> b d (h ph) (w pw)", h=h // self.ph, w=w // self.pw, ph=self.ph, pw=self.pw)
        x = self.conv3(x)
        x = torch.cat((x, y), 1)
        x = self.conv4(x)
        return x


class MobileViT(nn.Module):
    """64 px in: stem /2, MV2 /2 -> MobileViT block at /4, MV2 /2 -> MobileViT block at /8, head."""

    def __init__(self, patches=(2, 2), num_classes=10, channels=(8, 16, 24), dims=(24, 32)):
        super().__init__()
        c0, c1, c2 = channels
        self.stem = conv_nxn_bn(3, c0, stride=2)
        self.down1 = MV2Block(c0, c1, stride=2)
        self.vit1 = MobileViTBlock(dims[0], 1, c1, 3, (patches[0], patches[0]), dims[0] * 2)
        self.down2 = MV2Block(c1, c2, stride=2)
        self.vit2 = MobileViTBlock(dims[1], 2, c2, 3, (patches[1], patches[1]), dims[1] * 2)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(c2, num_classes)

    def forward(self, x):
        p4 = self.vit1(self.down1(self.stem(x)))
        p8 = self.vit2(self.down2(p4))
        logits = self.fc(self.pool(p8).flatten(1))
        return logits, p4, p8


@torch.no_grad()
def _trained_looking(net: nn.Module, seed: int = 0) -> nn.Module:
    """Seeded non-trivial weights: BN statistics away from identity and a decisive head.

    Default init leaves every BN as identity (fusion would go untested) and gives logits so
    close together that a numeric check would compare noise.
    """
    g = torch.Generator().manual_seed(seed)
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.weight.copy_(torch.rand(m.weight.shape, generator=g) * 0.5 + 0.75)
            m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.1)
            m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
        elif isinstance(m, nn.LayerNorm):
            m.weight.copy_(torch.rand(m.weight.shape, generator=g) * 0.5 + 0.75)
            m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.1)
    net.fc.weight.mul_(8.0)
    return net.eval()


def build(patches: tuple[int, int], seed: int = 0) -> MobileViT:
    torch.manual_seed(seed)
    return _trained_looking(MobileViT(patches=patches), seed)


def factory() -> MobileViT:
    return build((2, 2))


def factory_patch8_4() -> MobileViT:
    return build((8, 4))


def factory_patch4() -> MobileViT:
    return build((4, 4))
