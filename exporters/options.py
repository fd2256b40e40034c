"""Export options: which apply to which task and target, checked once before anything is built."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mvit.models.detection_postprocess import NmsSettings

from .base import ExportError, ExportOptions, ExportTarget
from .resolve import ResolvedModel
from .tasks import TASKS, get_task, task_only_options

KNOWN_OPTIONS = {"mask", "raw_detection", "raw_input", "nhwc", "dynamic_batch", "nms", "channel_order", "num_threads", "mean", "std", "coreml_nms"}
# Options that only describe the input, consumed by resolve_model, not by a target.
_INPUT_OPTIONS = ("channel_order", "num_threads", "mean", "std")
# Layout options that exist in one format only (each target lists its own); other targets drop them.
LAYOUT_OPTIONS = frozenset({"nhwc", "dynamic_batch"})
_FLAGS = {"mask": "--mask", "raw_detection": "--raw-detection", "nms": "--no-nms"}


def normalise_options(task: str, options: Mapping[str, Any], target: ExportTarget) -> ExportOptions:
    """The user's options (CLI flags, library keywords, or an artefact's recorded `export_options`)
    checked for this task and target: the typed options every later layer takes."""
    unknown = set(options) - KNOWN_OPTIONS
    if unknown:
        raise ExportError(f"unknown export option(s) {sorted(unknown)}; known: {sorted(KNOWN_OPTIONS)}")
    opts = {k: v for k, v in options.items() if v not in (None, False) and k not in _INPUT_OPTIONS and (k not in LAYOUT_OPTIONS or k in target.own_options)}
    # Options that belong to one task are refused for another, never ignored.
    owner = get_task(task)
    for key in task_only_options() - owner.options:
        if opts.get(key) or (key == "nms" and options.get("nms") is False):
            only = next(t.name for t in TASKS.values() if key in t.options)
            raise ExportError(f"{_FLAGS.get(key, key)} applies to {only} models only (this model does {task})")
    if "nms" in owner.options and not opts.get("raw_detection") and options.get("nms", True) is not False:
        opts["nms"] = _nms_settings(opts.get("nms"))
        if opts.get("dynamic_batch"):
            # ONNX NonMaxSuppression's top-k would then be shared by every image in the batch.
            raise ExportError("--dynamic-batch with NMS inside would cap detections across the whole batch; add --no-nms or --raw-detection, or export batch 1")
    else:
        opts.pop("nms", None)
    _nms_form(opts, options.get("coreml_nms"), target)
    return ExportOptions.from_dict(opts)


def _nms_form(opts: dict[str, Any], form: Any, target: ExportTarget) -> None:
    """--coreml-nms: the form a target with several NMS forms writes (recorded; default the first).
    Targets with one form drop it, as they drop another format's layout options."""
    opts.pop("coreml_nms", None)
    forms = target.nms_forms
    if not forms:
        return
    if form is not None:
        if form not in forms:
            raise ExportError(f"unknown --coreml-nms {form!r}: use {' or '.join(forms)}")
        if "nms" not in opts:
            raise ExportError("--coreml-nms applies to detection exports with NMS inside (not with --no-nms, --raw-detection or another task)")
    if "nms" in opts:
        opts["coreml_nms"] = form or forms[0]


def artefact_stem(resolved: ResolvedModel, precision: str, opts: ExportOptions) -> str:
    name = resolved.name.replace(":", ".")
    tags = [
        t
        for t, on in (
            ("mask", opts.mask),
            ("raw", opts.raw_detection),
            ("rawinput", opts.raw_input),
            ("nhwc", opts.nhwc),
            ("dynbatch", opts.dynamic_batch),
            ("nmsprogram", opts.coreml_nms == "program"),
            ("nonms", "nms" in get_task(resolved.task).options and not opts.raw_detection and opts.nms is None),
        )
        if on
    ]
    return "_".join([name, resolved.config, str(resolved.image_size), precision, *tags])


def _nms_settings(given: Any) -> NmsSettings:
    """Typed settings as they came, settings given as a dict over the defaults, else the defaults."""
    if isinstance(given, NmsSettings):
        return given
    try:
        return NmsSettings.from_dict(given) if isinstance(given, dict) else NmsSettings()
    except ValueError as exc:
        raise ExportError(str(exc)) from None
