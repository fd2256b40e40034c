"""The routes users already have, with the same weights as an mvit export, so the two can be timed.

`python -m mvit.benchmarks.peer_routes --size xs --out peer/` writes, for MobileViT XXS/XS/S
(config A: transformers' MobileViT has one patch size for every block, so config B has no peer):

- `hf_mobilevit_<size>/`: a Hugging Face folder (config.json + model.safetensors) of
  transformers' `MobileViTForImageClassification`, seeded random weights with sensible scales
  (transformers' default init gives denormal activations, which ONNX Runtime runs 15x slower),
- `peer_mobilevit_<size>_A_256.onnx`: that model through `torch.onnx.export` (TorchScript exporter,
  opset 18, constant folding), the form optimum writes: logits out, the normalised tensor in,
- `peer_mobilevit_<size>_A_256.tflite`: the same model through `litert_torch.convert`,
- `mobilevit_<size>_A_256_fp32.onnx` / `.tflite`: mvit's exports of that folder (`--checkpoint`).

Time each pair with `mvit-bench ab PEER MVIT --image-size 256`. The peer's input is named `image`
like mvit's, so `ab` feeds both the same pixels; the peer has no in-graph preprocessing, which is
its advantage in the comparison. transformers is a test-time dependency: imported here only.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import torch
from torch import nn

from mvit.exporters.targets import SUFFIXES

if TYPE_CHECKING:
    from transformers import MobileViTForImageClassification

ModuleT = TypeVar("ModuleT", bound=nn.Module)

SIZES = ("xxs", "xs", "s")
OPSET = 18
IMAGE_SIZE = 256
SEED = 1


class _Logits(nn.Module):
    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.model(pixel_values=image).logits


def randomise_(model: ModuleT, seed: int = SEED) -> ModuleT:
    """Every parameter and BN statistic non-trivial, at scales that keep activations normal."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            fan_in = p[0].numel() if p.dim() > 1 else 1
            if name.endswith("weight") and p.dim() == 1:
                p.copy_(torch.rand(p.shape, generator=g) * 0.5 + 0.75)
            else:
                p.copy_(torch.randn(p.shape, generator=g) / fan_in**0.5 * (1.0 if p.dim() > 1 else 0.1))
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d) and m.running_mean is not None and m.running_var is not None:
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.2)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
    return model.eval()


def hf_model(size: str) -> MobileViTForImageClassification:
    try:
        import transformers
    except ImportError:
        raise SystemExit("error: the peer routes need transformers (pip install 'mvit[test]')") from None
    from mvit.models.mobilevit import SIZES as MVIT_SIZES

    s = MVIT_SIZES[size]
    config = transformers.MobileViTConfig(
        neck_hidden_sizes=s.hf_neck_hidden_sizes,
        hidden_sizes=list(s.dims),
        expand_ratio=s.expand_ratio,
        image_size=IMAGE_SIZE,
        id2label={i: f"class {i}" for i in range(1000)},
    )
    return randomise_(transformers.MobileViTForImageClassification(config))


def _torch_onnx(module: nn.Module, example: torch.Tensor, path: Path) -> None:
    with torch.no_grad():
        torch.onnx.export(
            module, (example,), str(path), input_names=["image"], output_names=["logits"], opset_version=OPSET, do_constant_folding=True, dynamo=False
        )


def _litert_torch(module: nn.Module, example: torch.Tensor, path: Path) -> None:
    import litert_torch

    os.environ.setdefault("LITERT_TORCH_SHOW_PROGRESS", "n")
    with contextlib.redirect_stdout(sys.stderr):
        edge = litert_torch.convert(module, sample_kwargs={"image": example})
    path.write_bytes(bytes(edge.model_content()))


# mvit target -> the route users already have to that format.
PEER_ROUTES = {"onnx": _torch_onnx, "tflite": _litert_torch}


def write_peer_routes(size: str, out: Path, targets: tuple[str, ...] = tuple(PEER_ROUTES)) -> dict[str, Path]:
    out.mkdir(parents=True, exist_ok=True)
    folder = out / f"hf_mobilevit_{size}"
    model = hf_model(size)
    model.save_pretrained(folder)
    module = _Logits(model).eval()
    example = torch.rand(1, 3, IMAGE_SIZE, IMAGE_SIZE, generator=torch.Generator().manual_seed(0))
    written = {"hf_folder": folder}
    stem = f"peer_mobilevit_{size}_A_{IMAGE_SIZE}"
    for target in targets:
        path = out / f"{stem}{SUFFIXES[target]}"
        PEER_ROUTES[target](module, example, path)
        written[f"peer_{target}"] = path
    from mvit.exporters.api import export_model

    for target in targets:
        result = export_model(None, target, out, config="A", precision="fp32", image_size=IMAGE_SIZE, checkpoint=folder, verify=False)
        written[f"mvit_{target}"] = result.path
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mvit.benchmarks.peer_routes", description=__doc__.splitlines()[0])
    parser.add_argument("--size", action="append", choices=SIZES, help="repeatable; default: all three")
    parser.add_argument("--target", action="append", choices=tuple(PEER_ROUTES), help="repeatable; default: all")
    parser.add_argument("--out", type=Path, default=Path("peer"))
    args = parser.parse_args(argv)
    for size in args.size or SIZES:
        for name, path in write_peer_routes(size, args.out, tuple(args.target or PEER_ROUTES)).items():
            print(f"{size} {name}: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
