"""Helpers for export tests: checkpoints whose outputs are decisive, so agreement checks bite.

Random default weights give near-uniform probabilities (every class ~1/C), which makes top-1,
mask and box agreement vacuous; these checkpoints have random BN statistics (so fusion matters)
and sharpened class scores (so decisions have margins).
"""

from __future__ import annotations

from pathlib import Path

import torch
from model_utils import randomize_

from mvit.models import create_model
from mvit.models.checkpoints import save_checkpoint


@torch.no_grad()
def decisive_checkpoint(path: Path, model_name: str, config: str = "A", seed: int = 0, class_gain: float = 8.0) -> Path:
    model = randomize_(create_model(model_name, config=config), seed)
    if model_name.startswith("mobilevit_"):
        model.head.fc.weight.mul_(class_gain)
    elif model_name.startswith("deeplabv3_"):
        model.classifier.weight.mul_(class_gain)
    elif model_name.startswith("ssdlite_"):
        for head in model.heads:
            conv = head.loc_cls.pw if hasattr(head.loc_cls, "pw") else head.loc_cls
            per_anchor = 4 + head.num_classes
            cls_channels = torch.arange(conv.out_channels) % per_anchor >= 4
            conv.weight[cls_channels] *= class_gain
            conv.bias[cls_channels] *= class_gain
    return save_checkpoint(model, path, model_name, config=config)


def assert_coreml_structure_ok(report: dict) -> None:
    """A CoreML export's report: Apple's structural rules ran (exporters/targets/coreml/validate.py) and none broke."""
    structure = report["structure"]
    assert structure["rules"] and not structure["violations"], structure["violations"]
    ran = [c for c in report["graph_checks"] if c["check"].startswith("coreml-structure:")]
    assert len(ran) == len(structure["rules"]) and all(c["passed"] for c in ran), ran
