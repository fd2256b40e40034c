"""The models mvit-eval scores: the PyTorch reference and artefacts, each predicting in one form per task.

- classification: class probabilities [C];
- segmentation: a class mask at the crop size (logits are upsampled bilinearly first, as the
  in-graph `--mask` does);
- detection: boxes [K, 4] xyxy normalised to the crop, scores [K], class ids [K] (model indices).

An artefact is run as shipped: its recipe (resize, crop; for `--raw-input` exports, the
normalisation too) is read from its own metadata, and its outputs are read in its target's form.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from mvit.exporters.base import ExportError, ExportOptions
from mvit.exporters.preprocessing import normalise
from mvit.models import PreprocessSpec
from mvit.models.detection_postprocess import NmsSettings

from .datasets import DatasetError
from .tasks import SCORING, MissingOutput, Prediction, scored_list


class Skipped(Exception):
    """This artefact cannot be scored here; the message says why in one line."""


@dataclass
class ModelUnderTest:
    name: str  # what reports call it: "pytorch" or the artefact's file name
    kind: str  # "pytorch" or the target name
    path: Path | None
    task: str
    labels: list[str]
    recipe: PreprocessSpec  # resize/crop (and the normalisation PyTorch applies itself)
    # float32 [1, 3, crop, crop] RGB 0..255 per image -> one prediction per image, in order
    predict_batch: Callable[[list[np.ndarray]], list[Prediction]]
    precision: str = "fp32"
    nms: NmsSettings | None = None


def pytorch_model(
    model: str | None, checkpoint: Path | None, *, config: str | None, image_size: int | None, labels: Path | None, nms: NmsSettings | None, num_threads: int
) -> ModelUnderTest:
    """The fused network the artefacts were exported from, with the checkpoint's own preprocessing."""
    from mvit.exporters.resolve import resolve_model
    from mvit.models import fuse_batchnorm

    torch.set_num_threads(num_threads)
    resolved = resolve_model(model, config=config, image_size=image_size, checkpoint=checkpoint, labels=labels)
    if resolved.task not in SCORING:
        raise DatasetError(f"{resolved.name} is a {resolved.task!r} network; mvit-eval scores {scored_list()} models")
    scoring = SCORING[resolved.task]
    fused = fuse_batchnorm(resolved.net).eval()
    built = scoring.task.head(fused, resolved.net, resolved.image_size, ExportOptions(), False)
    head, names = built.module.eval(), built.output_names
    spec, size, settings = resolved.preprocess, resolved.image_size, nms or NmsSettings()

    def predict(pixels: np.ndarray) -> Prediction:
        with torch.no_grad():
            out = head(torch.from_numpy(normalise(pixels, spec)))
        outputs = out if isinstance(out, tuple) else (out,)
        return scoring.predict({n: t.numpy() for n, t in zip(names, outputs)}, size, settings)

    def predict_batch(batch: list[np.ndarray]) -> list[Prediction]:
        return [predict(pixels) for pixels in batch]

    return ModelUnderTest("pytorch", "pytorch", None, resolved.task, list(resolved.labels), spec, predict_batch, nms=settings)


def _labels_of(path: Path, raw: dict[str, str]) -> list[str]:
    try:
        labels = json.loads(raw.get("labels", "null"))
    except ValueError:
        labels = None
    if not isinstance(labels, list) or not all(isinstance(v, str) for v in labels) or not labels:
        raise ExportError(f"{path} records no labels in its mvit metadata; re-export it with mvit-export")
    return labels


def artefact_model(path: Path, num_threads: int, runner_name: str = "auto") -> ModelUnderTest:
    """An artefact through its target's own runner, or through one of the target's verifiers
    (`runner_name`, e.g. CoreML's "mil-reference" off macOS). Raises Skipped where this machine
    cannot run it."""
    from mvit.exporters.api import artefact_metadata
    from mvit.exporters.targets import get_target

    path = Path(path)
    if not path.exists():
        raise ExportError(f"artefact {path} does not exist")
    meta = artefact_metadata(path)
    target = get_target(meta.target)
    task, pre, opts = meta.raw.get("task", ""), meta.preprocess, meta.options
    if task not in SCORING:
        raise ExportError(f"{path} is a {task or 'generic'!r} export; mvit-eval scores {scored_list()} models")
    scoring = SCORING[task]
    if runner_name != "auto" and runner_name not in target.verifiers:
        raise ExportError(f"--runner {runner_name} does not run {meta.target} artefacts; use auto{''.join(', ' + v for v in target.verifiers)}")
    why = target.benchmark_unavailable_reason()
    if why is not None and runner_name == "auto":
        reason = re.sub(r"^\w+ skipped: ", "", why.split(";")[0])  # the benchmarks' wording, minus its prefix
        hint = f" (--runner {target.verifiers[0]} scores it here, slowly)" if target.verifiers else ""
        raise Skipped(f"cannot run on this machine: {reason}{hint}")
    if opts.get("raw_detection"):
        raise Skipped("a --raw-detection export outputs box offsets and logits before decoding; export it with NMS to score it")
    spec = PreprocessSpec(
        resize_shortest=int(pre["resize_shortest"]),
        crop=int(pre["crop"]),
        scale=float(pre["scale"]),
        mean=tuple(pre["mean"]),
        std=tuple(pre["std"]),
        channel_order=pre["channel_order"],
    )
    raw_input = bool(pre.get("raw_input"))
    # A runtime whose threads keep spinning after a call (ONNX Runtime) starves the next model
    # scored on the same image; the target declares the load options that stop it.
    if runner_name != "auto":
        runner = target.load_verifier(path, runner_name, num_threads=num_threads)
    else:
        runner = target.load(path, num_threads=num_threads, **target.quiet_load_options)
    nms = NmsSettings.from_dict(opts["nms"]) if isinstance(opts.get("nms"), dict) else None

    def predict_batch(batch: list[np.ndarray]) -> list[Prediction]:
        outputs = runner.run_many([{"image": normalise(pixels, spec) if raw_input else pixels} for pixels in batch])
        try:
            # --no-nms: decoded boxes and scores; the default NMS settings select, as the reference does
            return [scoring.predict(out, spec.crop, NmsSettings()) for out in outputs]
        except MissingOutput as exc:
            raise ExportError(f"{path} has {exc.args[0]}") from None

    return ModelUnderTest(path.name, meta.target, path, task, _labels_of(path, meta.raw), spec, predict_batch, precision=meta.precision, nms=nms)
