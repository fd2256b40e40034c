"""Export options: which apply to which task and target, checked once before anything is built."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mvit.models.detection_postprocess import NmsSettings

from .base import ExportError, ExportOptions, ExportTarget, TargetOption
from .resolve import ResolvedModel
from .targets import declared_options
from .tasks import TASKS, get_task, task_only_options

# Options every target takes (the task's and the input's); a target's own options are its `options`.
_SHARED_OPTIONS = ("mask", "raw_detection", "raw_input", "nms")
# Options that only describe the input, consumed by resolve_model, not by a target.
_INPUT_OPTIONS = ("channel_order", "num_threads", "mean", "std")
_FLAGS = {"mask": "--mask", "raw_detection": "--raw-detection", "nms": "--no-nms"}


def export_options_of(target: ExportTarget) -> dict[str, TargetOption]:
    """The target's own options that describe one artefact (how several sizes share one is not one of them)."""
    return {option.name: option for option in target.options if option.means != "multisize_form"}


def known_options() -> set[str]:
    """Every export option a library call or an artefact's recorded `export_options` may carry."""
    declared = {name for name, (option, _) in declared_options().items() if option.means != "multisize_form"}
    return {*_SHARED_OPTIONS, *_INPUT_OPTIONS, *declared}


def normalise_options(task: str, options: Mapping[str, Any], target: ExportTarget) -> ExportOptions:
    """The user's options (CLI flags, library keywords, or an artefact's recorded `export_options`)
    checked for this task and target: the typed options every later layer takes."""
    known = known_options()
    unknown = set(options) - known
    if unknown:
        raise ExportError(f"unknown export option(s) {sorted(unknown)}; known: {sorted(known)}")
    own = export_options_of(target)
    # Another target's options are dropped: `--target all` passes every flag to every target.
    opts = {k: v for k, v in options.items() if v not in (None, False) and (k in _SHARED_OPTIONS or k in own)}
    # Options that belong to one task are refused for another, never ignored.
    owner = get_task(task)
    for key in task_only_options() - owner.options:
        if opts.get(key) or (key == "nms" and options.get("nms") is False):
            only = next(t.name for t in TASKS.values() if key in t.options)
            raise ExportError(f"{_FLAGS.get(key, key)} applies to {only} models only (this model does {task})")
    if "nms" in owner.options and not opts.get("raw_detection") and options.get("nms", True) is not False:
        opts["nms"] = _nms_settings(opts.get("nms"))
        dynamic = next((o for o in own.values() if o.means == "dynamic_batch" and opts.get(o.name)), None)
        if dynamic is not None:
            # ONNX NonMaxSuppression's top-k would then be shared by every image in the batch.
            raise ExportError(f"{dynamic.flag} with NMS inside would cap detections across the whole batch; add --no-nms or --raw-detection, or export batch 1")
    else:
        opts.pop("nms", None)
    for option in own.values():
        if option.means == "nms_form":
            _nms_form(opts, option)
        elif option.choices and opts.get(option.name) is not None and opts[option.name] not in option.choices:
            raise ExportError(f"unknown {option.flag} {opts[option.name]!r}: use {' or '.join(option.choices)}")
    return ExportOptions.from_dict(opts, own.values())


def _nms_form(opts: dict[str, Any], option: TargetOption) -> None:
    """The form a target with several NMS forms writes (recorded; default the first)."""
    form = opts.pop(option.name, None)
    if form is not None:
        if form not in option.choices:
            raise ExportError(f"unknown {option.flag} {form!r}: use {' or '.join(option.choices)}")
        if "nms" not in opts:
            raise ExportError(f"{option.flag} applies to detection exports with NMS inside (not with --no-nms, --raw-detection or another task)")
    if "nms" in opts:
        opts[option.name] = form or option.choices[0]


def artefact_stem(resolved: ResolvedModel, precision: str, opts: ExportOptions) -> str:
    name = resolved.name.replace(":", ".")
    tags = [
        t
        for t, on in (
            ("mask", opts.mask),
            ("raw", opts.raw_detection),
            ("rawinput", opts.raw_input),
            *((declared.tag, declared.tag_for(value) is not None) for declared, value in opts.target_options),
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
