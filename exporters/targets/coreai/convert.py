"""torch module -> `.aimodel`: torch.export, coreai-torch's decompositions and converter, one asset.

Every function of an asset is one `add_exported_program` call with its own `entrypoint_name`; the
converter stores weights the functions share once. Saved byte-identically on every run: coreai's
authoring layer names deferred functions with `secrets.choice` (replaced here by a seeded generator
while converting), `save_asset` stamps `time.time()` as the creation date (reset to 0 after saving),
and metadata keys are written in the order given (sorted here).
"""

from __future__ import annotations

import contextlib
import io
import json
import random
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from .asset_files import METADATA

INPUT_NAME = "image"
NAME_SEED = 0


@dataclass
class Function:
    """One entrypoint of an asset: the module traced at `input_shape`, its output names."""

    name: str
    module: nn.Module
    input_shape: tuple[int, ...]
    output_names: list[str]


class HalfPrecision(nn.Module):
    """fp16 weights and compute inside, fp32 input and outputs: what an app feeds and reads stays fp32."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module.half()

    def forward(self, image: torch.Tensor):
        out = self.module(image.half())
        if isinstance(out, torch.Tensor):
            return out.float()
        return tuple(o.float() if o.is_floating_point() else o for o in out)


def write_asset(functions: list[Function], path: Path, metadata: Mapping[str, str]) -> None:
    from coreai.runtime import AIModelAssetMetadata
    from coreai_torch import TorchConverter, get_decomp_table

    converter = TorchConverter(mode=TorchConverter.Mode.RELEASE)
    with _seeded_names(), torch.no_grad(), contextlib.redirect_stdout(io.StringIO()):  # stdout: the converter's progress bar
        for f in functions:
            program = torch.export.export(f.module.eval(), (torch.zeros(f.input_shape),))
            program = program.run_decompositions(get_decomp_table())
            converter.add_exported_program(program, input_names=[INPUT_NAME], output_names=f.output_names, entrypoint_name=f.name)
        asset_program = converter.to_coreai()
    stored = AIModelAssetMetadata()
    for key in sorted(metadata):
        # set_custom reads "0" and "1" as booleans: every value is stored as a JSON string literal.
        stored.set_custom(key, json.dumps(str(metadata[key])))
    asset = asset_program.save_asset(Path(path), metadata=stored)
    asset.update_metadata(lambda m: setattr(m, "creation_date", 0.0))
    _sort_keys(Path(path) / METADATA)


def _sort_keys(metadata_file: Path) -> None:
    """coreai-core writes metadata.json's keys in a different order on every save (an unordered map):
    rewritten with sorted keys so one export gives one set of bytes. main.hash covers the bytecode only."""
    content = json.loads(metadata_file.read_text(encoding="utf-8"))
    metadata_file.write_text(json.dumps(content, indent=2, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")


def decode_metadata(stored: Mapping[str, str]) -> dict[str, str]:
    """Values as mvit wrote them (see write_asset); a value that is no JSON string is kept as it is."""
    out = {}
    for key, value in stored.items():
        try:
            decoded = json.loads(value)
        except ValueError:
            decoded = value
        out[key] = decoded if isinstance(decoded, str) else value
    return out


@contextlib.contextmanager
def _seeded_names() -> Iterator[None]:
    from coreai.authoring import func, graph_builder

    rng = random.Random(NAME_SEED)
    saved = func.choice, graph_builder.choice
    func.choice = graph_builder.choice = rng.choice  # type: ignore[assignment]
    try:
        yield
    finally:
        func.choice, graph_builder.choice = saved
