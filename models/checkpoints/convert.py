"""Rename whole state dicts between our names and a foreign format, both ways."""

from __future__ import annotations

import torch

from .keymaps import KEY_MAPS


def to_format(state_dict: dict[str, torch.Tensor], fmt: str) -> dict[str, torch.Tensor]:
    """Our state dict -> `fmt` ("hf/classification", "cvnets/segmentation", ...)."""
    key_map = KEY_MAPS[fmt]
    out: dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        names = key_map(key)
        parts = value.chunk(len(names), dim=0) if len(names) > 1 else (value,)
        out.update({n: p.clone() for n, p in zip(names, parts)})
    return out


def from_format(foreign: dict[str, torch.Tensor], fmt: str, our_keys: list[str]) -> tuple[dict[str, torch.Tensor], list[str], list[str]]:
    """`fmt` state dict -> ours, for the keys a model of ours has.

    Returns (state_dict, missing foreign keys, unexpected foreign keys).
    """
    key_map = KEY_MAPS[fmt]
    out: dict[str, torch.Tensor] = {}
    used: set[str] = set()
    missing: list[str] = []
    for key in our_keys:
        names = key_map(key)
        absent = [n for n in names if n not in foreign]
        if absent:
            # BN counters carry no weights; formats that drop them lose nothing.
            if not key.endswith("num_batches_tracked"):
                missing += absent
            continue
        used.update(names)
        out[key] = torch.cat([foreign[n] for n in names], dim=0) if len(names) > 1 else foreign[names[0]]
    unexpected = [k for k in foreign if k not in used]
    return out, missing, unexpected
