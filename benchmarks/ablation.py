"""Where a MobileViT's milliseconds go, found by taking one kind of part out: exports for timing only.

`python -m mvit.benchmarks.ablation --model mobilevit_xs --config A --target tflite --out abl/`
writes `abl/full/` (the export as `mvit-export` writes it) and one folder per ablation, each an
export of the same network with one kind of part removed:

- `no_transformer`: every transformer layer is the identity,
- `no_attention`: each attention is its output projection alone (qkv, scores, softmax gone),
- `no_mlp`: each layer's MLP gone (and the LayerNorm before it, which then feeds nothing),
- `no_layernorm`: each layer's two LayerNorms are identities,
- `no_softmax`: attention uses its scores unnormalised (in the network's own layout: the export
  rewrites of the attention, ONNX's `attention_layout` and TFLite's `separate_qkv`, do not apply
  to it, so its ratio also holds that layout's difference).

Then `mvit-bench ab abl/full/X abl/no_mlp/X`: one minus the ratio is that part's share of the run.
`mvit-bench profile` reads ONNX Runtime's per-op times; LiteRT runs the whole graph as one XNNPACK
delegate op, so this is the way to see inside it. The ablated artefacts compute wrong outputs:
they are not verified, and their folder names say what is missing.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
from collections.abc import Callable
from pathlib import Path

from mvit.cli_support import fail, quiet_third_party

quiet_third_party()  # before torch and the converters are imported: their C++ loggers read it once

import torch  # noqa: E402
from torch import nn  # noqa: E402

from mvit.errors import MvitError, one_line  # noqa: E402
from mvit.exporters import api  # noqa: E402
from mvit.exporters.rewrites.swap import swap_modules  # noqa: E402
from mvit.models.mobilevit_block import Attention, Mlp, TransformerBlock  # noqa: E402


class _ProjectionOnly(nn.Module):
    def __init__(self, attention: Attention) -> None:
        super().__init__()
        self.proj = attention.proj

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x)


class _Zero(nn.Module):
    """An MLP that is not there: the converters fold `x + 0` away, and with it the LayerNorm that fed the MLP."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(x)


class _UnnormalisedAttention(nn.Module):
    """The network's attention without its softmax. Holds the attention's parts, not the
    attention itself, which an export rewrite would otherwise swap for its own."""

    def __init__(self, attention: Attention) -> None:
        super().__init__()
        self.qkv, self.proj = attention.qkv, attention.proj
        self.num_heads, self.head_dim, self.scale = attention.num_heads, attention.head_dim, attention.scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        qkv = self.qkv(x).reshape(b, n, 3 * self.num_heads, self.head_dim).transpose(1, 2)
        q, k, v = qkv.split(self.num_heads, dim=1)
        out = torch.matmul(torch.matmul(q * self.scale, k.transpose(-2, -1)), v)
        return self.proj(out.transpose(1, 2).reshape(b, n, c))


def _without_layernorms(net: nn.Module) -> list[str]:
    names = []
    for name, layer in net.named_modules():
        if isinstance(layer, TransformerBlock):
            layer.norm1, layer.norm2 = nn.Identity(), nn.Identity()
            names.append(name)
    return names


ABLATIONS: dict[str, Callable[[nn.Module], list[str]]] = {
    "no_transformer": lambda net: swap_modules(net, TransformerBlock, lambda layer: nn.Identity()),
    "no_attention": lambda net: swap_modules(net, Attention, _ProjectionOnly),
    "no_mlp": lambda net: swap_modules(net, Mlp, lambda mlp: _Zero()),
    "no_layernorm": _without_layernorms,
    "no_softmax": lambda net: swap_modules(net, Attention, _UnnormalisedAttention),
}


def write_ablations(model: str, config: str, target: str, out: Path, image_size: int | None = None, ablations: list[str] | None = None) -> dict[str, Path]:
    """{"full" | ablation name: artefact}; MvitError for a model, size or ablation that cannot be written."""
    prepared = api.prepare_export(model, [target], config=config, image_size=image_size)
    ablated: dict[str, nn.Module] = {}
    for name in ablations or list(ABLATIONS):  # every ablation checked before anything is written
        ablated[name] = copy.deepcopy(prepared.fused)
        if not ABLATIONS[name](ablated[name]):
            raise MvitError(f"{model} has no MobileViT v1 transformer parts for {name}; ablate a MobileViT v1 model")
    written = {"full": api.export_model(None, target, out / "full", precision="fp32", verify=False, prepared=prepared).path}
    for name, net in ablated.items():
        variant = dataclasses.replace(prepared, fused=net)
        written[name] = api.export_model(None, target, out / name, precision="fp32", verify=False, prepared=variant).path
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mvit.benchmarks.ablation", description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="mobilevit_xs")
    parser.add_argument("--config", default="A")
    parser.add_argument("--target", default="tflite", choices=["onnx", "tflite"])
    parser.add_argument("--image-size", type=int)
    parser.add_argument("--ablation", action="append", choices=sorted(ABLATIONS), help="repeatable; default: all")
    parser.add_argument("--out", type=Path, default=Path("ablation"))
    args = parser.parse_args(argv)
    try:
        written = write_ablations(args.model, args.config, args.target, args.out, args.image_size, args.ablation)
    except MvitError as exc:  # one line and the documented exit code, as every mvit command
        return fail(one_line(exc), exc.exit_code)
    for name, path in written.items():
        print(f"{name}: {path}")
    full = written.pop("full")
    print("time each against the full export: " + "; ".join(f"mvit-bench ab {full} {p}" for p in written.values()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
