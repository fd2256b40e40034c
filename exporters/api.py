"""export_model: registered model (or a user's factory) -> one verified artefact + JSON report.

The CLI is a thin layer over this; tests call it directly.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import math
import os
import shutil
import sys
import tempfile
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from mvit import __version__
from mvit.models import PATCH_CONFIGS, PreprocessSpec, create_model, fuse_batchnorm, get_spec
from mvit.models.detection_postprocess import NmsSettings

from .base import ExportError, ExportRequest, ExportTarget
from .labels import read_labels_file, resolve_labels
from .preprocessing import preprocess_dict
from .report import report_path_for, write_json_atomic, write_report
from .targets import get_target
from .verify import describe_failure
from .wrappers import NMS_OUTPUT_NAMES, BuiltModule, build_export_module

RANDOM_WEIGHTS_SEED = 0  # random-weight exports are reproducible, so re-exports are byte-identical
MAX_RANK = 5  # CoreML rejects rank > 5
KNOWN_OPTIONS = {"mask", "raw_detection", "raw_input", "nhwc", "dynamic_batch", "nms", "channel_order", "num_threads"}
MIN_IMAGE_SIZE = 32


@dataclass
class ExportResult:
    path: Path
    target: str
    report: dict[str, Any] | None
    report_path: Path | None

    @property
    def verdict(self) -> str:
        return (self.report or {}).get("verdict", "not-verified")

    @property
    def size_bytes(self) -> int:
        return _size_bytes(self.path)


@dataclass
class ResolvedModel:
    name: str
    task: str  # classification | segmentation | detection | generic
    net: nn.Module  # eval mode, not yet fused
    config: str
    image_size: int
    preprocess: PreprocessSpec
    labels: list[str]
    weights: str  # "random (seed 0)" or the checkpoint path


def _size_bytes(path: Path) -> int:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size


def artefact_sha256(path: Path) -> str:
    """sha256 of a file, or of a folder artefact (.mlpackage) file by file in path order."""
    h = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for f in files:
        if path.is_dir():
            h.update(str(f.relative_to(path)).encode())
        h.update(f.read_bytes())
    return h.hexdigest()


def _load_factory(ref: str) -> nn.Module:
    module_name, _, attr = ref.partition(":")
    try:
        factory = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ExportError(f"cannot load model factory {ref!r} ({exc}); give an importable 'pkg.module:function'") from None
    try:
        net = factory()
    except Exception as exc:
        raise ExportError(f"model factory {ref!r} failed: {exc.__class__.__name__}: {exc}") from None
    if not isinstance(net, nn.Module):
        raise ExportError(f"model factory {ref!r} returned {type(net).__name__}, not a torch nn.Module")
    return net.eval()


def check_image_size(net: nn.Module, image_size: int, config: str, model_name: str) -> dict[str, Any]:
    """Probe the network once and record each MobileViT block's feature-map size vs its patch.

    Config B (patches 8/4/2) must tile its feature maps exactly: resizing an 8x8-patch stage
    changes the function a lot, so such sizes are rejected with the nearest size that works.
    Config A (and custom networks) keep the reference behaviour (ml-cvnets/HF/timm): maps that
    are not a multiple of the patch are resized up and back inside the block.
    """
    from mvit.models.mobilevit_block import MobileVitBlock

    if image_size < MIN_IMAGE_SIZE:
        raise ExportError(f"--image-size {image_size} is too small; use at least {MIN_IMAGE_SIZE}")
    seen: list[tuple[int, int, int]] = []  # (feature size, patch, stride)
    hooks = [
        m.register_forward_pre_hook(lambda mod, args: seen.append((args[0].shape[-1], mod.patch_size, 0)))
        for m in net.modules() if isinstance(m, MobileVitBlock)
    ]
    try:
        with torch.no_grad():
            net(torch.zeros(1, 3, image_size, image_size))
    except Exception as exc:
        raise ExportError(f"{model_name} cannot run at --image-size {image_size} ({exc.__class__.__name__}); try a larger size such as 256") from None
    finally:
        for h in hooks:
            h.remove()
    need = 1
    for feat, patch, _ in seen:
        stride = 2 ** round(math.log2(image_size / feat))
        need = math.lcm(need, stride * patch)
    misfit = [(f, p) for f, p, _ in seen if f % p]
    if misfit and config == "B":
        lower = max(need, image_size // need * need)
        upper = lower + need if lower < image_size else lower
        f, p = misfit[0]
        raise ExportError(
            f"config B cannot take --image-size {image_size}: a {f}x{f} feature map does not split into {p}x{p} patches; "
            f"use a multiple of {need}, e.g. {lower} or {upper}"
        )
    return {"feature_maps_resized": bool(misfit), "size_multiple": need}


def resolve_model(
    model_name: str | None,
    *,
    config: str = "A",
    image_size: int | None = None,
    checkpoint: Path | None = None,
    labels: Path | None = None,
    channel_order: str | None = None,
) -> ResolvedModel:
    config = str(config).upper()
    if channel_order is not None and channel_order.upper() not in ("RGB", "BGR"):
        raise ExportError(f"unknown --channel-order {channel_order!r}: use RGB or BGR")
    if config not in ("A", "B") and not (model_name and ":" in model_name and config == "CUSTOM"):
        raise ExportError(f"unknown --config {config!r}: use A (patches 2,2,2) or B (patches 8,4,2)")
    if model_name and ":" in model_name:
        if image_size is None:
            raise ExportError(f"--image-size is required for a custom model ({model_name})")
        if checkpoint is not None:
            raise ExportError("--checkpoint applies to registered models only; load weights inside your factory")
        torch.manual_seed(RANDOM_WEIGHTS_SEED)
        net = _load_factory(model_name)
        spec = PreprocessSpec(resize_shortest=image_size, crop=image_size, channel_order=(channel_order or "RGB").upper())
        lbls = read_labels_file(labels) if labels else []
        return ResolvedModel(model_name, "generic", net, "custom", image_size, spec, lbls, f"from factory {model_name}")

    info = None
    if checkpoint is not None:
        checkpoint = Path(checkpoint)
        if not checkpoint.is_file():
            raise ExportError(f"checkpoint {checkpoint} does not exist or is not a file")
        from mvit.models.checkpoints import CheckpointError, load_checkpoint

        try:
            net, info = load_checkpoint(checkpoint, model_name=model_name, config=config)
        except CheckpointError as exc:
            raise ExportError(str(exc)) from None
        except Exception as exc:  # a corrupt file can fail deep inside safetensors/torch
            raise ExportError(f"cannot read checkpoint {checkpoint}: {exc.__class__.__name__}: {str(exc).splitlines()[0] if str(exc) else ''}") from None
        model_name = info.model_name
        spec = get_spec(model_name)
        config = {v: k for k, v in PATCH_CONFIGS.items()}.get(tuple(info.patch_sizes), config)
        weights = str(checkpoint)
        num_classes = info.num_classes
    else:
        model_name = model_name or "mobilevit_xs"
        try:
            spec = get_spec(model_name)
        except KeyError as exc:
            raise ExportError(f"{exc.args[0]}; or give 'pkg.module:factory' for your own network") from None
        torch.manual_seed(RANDOM_WEIGHTS_SEED)
        try:
            net = create_model(model_name, config=config)
        except ValueError as exc:
            raise ExportError(str(exc)) from None
        weights = f"random (seed {RANDOM_WEIGHTS_SEED})"
        num_classes = spec.num_classes
    size = image_size or (info.image_size if info and info.image_size else None) or spec.input_size
    order = (channel_order or (info.channel_order if info else None) or spec.preprocess.channel_order).upper()
    preprocess = replace(spec.preprocess.with_size(size), channel_order=order)
    lbls = resolve_labels(num_classes, labels_file=labels, checkpoint_info=info, defaults=spec.default_labels(num_classes))
    return ResolvedModel(model_name, spec.task, net.eval(), config, size, preprocess, lbls, weights)


# Layout options that exist in one format only; other targets drop them (they would not apply).
TARGET_ONLY_OPTIONS = {"nhwc": "tflite", "dynamic_batch": "onnx"}


def _normalise_options(task: str, options: dict[str, Any], target: str) -> dict[str, Any]:
    unknown = set(options) - KNOWN_OPTIONS
    if unknown:
        raise ExportError(f"unknown export option(s) {sorted(unknown)}; known: {sorted(KNOWN_OPTIONS)}")
    opts = {
        k: v for k, v in options.items()
        if v not in (None, False) and k not in ("channel_order", "num_threads") and TARGET_ONLY_OPTIONS.get(k, target) == target
    }
    if opts.get("mask") and task != "segmentation":
        raise ExportError("--mask applies to segmentation models only")
    if opts.get("raw_detection") and task != "detection":
        raise ExportError("--raw-detection applies to detection models only")
    if task == "detection" and not opts.get("raw_detection") and options.get("nms", True) is not False:
        given = opts.get("nms") if isinstance(opts.get("nms"), dict) else {}
        bad = set(given) - {f.name for f in fields(NmsSettings)}
        if bad:
            raise ExportError(f"unknown NMS setting(s) {sorted(bad)}; known: {[f.name for f in fields(NmsSettings)]}")
        opts["nms"] = asdict(replace(NmsSettings(), **given))
        if opts.get("dynamic_batch"):
            # ONNX NonMaxSuppression's top-k would then be shared by every image in the batch.
            raise ExportError("--dynamic-batch with NMS inside would cap detections across the whole batch; "
                              "add --no-nms or --raw-detection, or export batch 1")
    else:
        opts.pop("nms", None)
    return opts


def artefact_stem(resolved: ResolvedModel, precision: str, opts: dict[str, Any], target: str) -> str:
    name = resolved.name.replace(":", ".")
    tags = [t for t, on in (("mask", opts.get("mask")), ("raw", opts.get("raw_detection")),
                            ("rawinput", opts.get("raw_input")), ("nhwc", opts.get("nhwc")),
                            ("dynbatch", opts.get("dynamic_batch")),
                            ("nonms", resolved.task == "detection" and not opts.get("raw_detection") and "nms" not in opts)) if on]
    return "_".join([name, resolved.config, str(resolved.image_size), precision, *tags])


def _prepare_out_dir(out_dir: Path) -> Path:
    out_dir = Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".mvit-write-test-", dir=out_dir)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise ExportError(f"cannot write to output folder {out_dir}: {exc.strerror or exc}; choose a writable --out") from None
    return out_dir


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        path.unlink(missing_ok=True)


def graph_checks(target: ExportTarget, path: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    hist = target.op_histogram(path)
    rank = target.max_tensor_rank(path)
    bn_ops = sorted(op for op in hist if "batchnorm" in op.lower().replace("_", ""))
    checks = [
        {"check": "no_batchnorm_ops", "value": float(sum(hist[o] for o in bn_ops)), "limit": 0.0, "kind": "max", "passed": not bn_ops},
        {"check": "max_tensor_rank", "value": float(rank), "limit": float(MAX_RANK), "kind": "max", "passed": rank <= MAX_RANK},
    ]
    return {"op_histogram": hist, "max_tensor_rank": rank, "batchnorm_ops": bn_ops}, checks


def build_for_target(resolved: ResolvedModel, fused: nn.Module, target: str, opts: dict[str, Any]) -> tuple[BuiltModule, BuiltModule]:
    """(module the target traces, reference module without pixel preprocessing)."""
    in_graph = target != "coreml" and not opts.get("raw_input")
    built = build_export_module(fused, resolved.task, resolved.image_size, target=target,
                                preprocess=resolved.preprocess if in_graph else None, options=opts)
    reference = build_export_module(fused, resolved.task, resolved.image_size, target=target, preprocess=None, options=opts)
    return built, reference


def export_model(
    model_name: str | None,
    target: str,
    out_dir: Path,
    *,
    config: str = "A",
    precision: str = "fp16",
    image_size: int | None = None,
    checkpoint: Path | None = None,
    labels: Path | None = None,
    verify: bool = True,
    verifier: str = "auto",
    **options: Any,
) -> ExportResult:
    if precision not in ("fp16", "fp32"):
        raise ExportError(f"unknown --precision {precision!r}: use fp16 or fp32")
    export_target = get_target(target)
    if verify:
        check_verifier(target, verifier)
    resolved = resolve_model(model_name, config=config, image_size=image_size, checkpoint=checkpoint,
                             labels=labels, channel_order=options.get("channel_order"))
    opts = _normalise_options(resolved.task, options, target)
    size_info = check_image_size(resolved.net, resolved.image_size, resolved.config, resolved.name)
    out_dir = _prepare_out_dir(out_dir)

    fused = fuse_batchnorm(resolved.net)
    built, reference = build_for_target(resolved, fused, target, opts)
    in_graph = target != "coreml" and not opts.get("raw_input")
    preprocess = preprocess_dict(resolved.preprocess, raw_input=bool(opts.get("raw_input")), in_graph=in_graph)
    final_outputs = getattr(export_target, "nms_output_names", NMS_OUTPUT_NAMES) if "nms" in opts else built.output_names
    metadata = {
        "mvit_version": __version__, "model": resolved.name, "task": resolved.task, "config": resolved.config,
        "precision": precision, "image_size": str(resolved.image_size), "weights": resolved.weights,
        "labels": json.dumps(resolved.labels), "preprocess": json.dumps(preprocess, sort_keys=True),
        "output_names": json.dumps(final_outputs), "export_options": json.dumps(opts, sort_keys=True),
    }
    request = ExportRequest(
        module=built.module, model_name=resolved.name, task=resolved.task,
        input_shape=(1, 3, resolved.image_size, resolved.image_size), output_names=built.output_names,
        labels=resolved.labels, preprocess=preprocess, precision=precision,  # type: ignore[arg-type]
        channels_last_input=bool(opts.get("nhwc")), dynamic_batch=bool(opts.get("dynamic_batch")),
        metadata=metadata, options=opts,
    )
    final = out_dir / (artefact_stem(resolved, precision, opts, target) + export_target.suffix)
    tmp = out_dir / f".tmp-{os.getpid()}-{final.name}"
    try:
        torch.manual_seed(RANDOM_WEIGHTS_SEED)
        export_target.export(request, tmp)
        graph, checks = graph_checks(export_target, tmp)
        _remove(final)
        _remove(report_path_for(final))  # a report of the previous file must not describe this one
        os.replace(tmp, final)
    except ExportError:
        _remove(tmp)
        raise
    except BaseException as exc:
        _remove(tmp)
        if isinstance(exc, Exception):
            raise ExportError(f"{target} export of {resolved.name} failed: {exc.__class__.__name__}: {str(exc).splitlines()[0] if str(exc) else ''}") from exc
        raise
    if built.anchors is not None and opts.get("raw_detection"):
        anchors_path = final.with_name(final.name + ".anchors.npy")
        tmp_anchors = anchors_path.with_name(f".tmp-{os.getpid()}-{anchors_path.name}")
        with open(tmp_anchors, "wb") as f:
            np.save(f, built.anchors.numpy())
        os.replace(tmp_anchors, anchors_path)

    report: dict[str, Any] = {
        "artefact": final.name, "target": target, "model": resolved.name, "task": resolved.task,
        "config": resolved.config, "precision": precision, "image_size": resolved.image_size,
        "weights": resolved.weights, "size_bytes": _size_bytes(final), "sha256": artefact_sha256(final),
        "input": {"name": "image", "shape": list(request.input_shape), "layout": "NHWC" if request.channels_last_input else "NCHW"},
        "output_names": final_outputs, "preprocess": preprocess, "labels_count": len(resolved.labels),
        "export_options": opts, "image_size_check": size_info, **graph,
    }
    verification = None
    if verify:
        try:
            verification = run_verification(export_target, final, resolved, reference, precision, opts,
                                             num_threads=options.get("num_threads"), verifier=verifier)
        except ExportError:
            raise
        except Exception as exc:  # a runtime that crashes on the artefact is a finding, not a traceback
            first = str(exc).splitlines()[0] if str(exc) else ""
            raise ExportError(f"verifying {final.name} failed: {exc.__class__.__name__}: {first}") from exc
    report["verification"] = verification
    report["graph_checks"] = checks
    failed = [c for c in checks if not c["passed"]] + ([] if not verification else [c for c in verification.get("checks", []) if not c["passed"]])
    report["failed"] = [describe_failure(c) for c in failed]
    if failed:
        report["verdict"] = "fail"
    elif verification and verification.get("verdict") == "pass":
        report["verdict"] = "pass"
    else:
        report["verdict"] = "not-verified"
    report["verified_by"] = verification.get("verified_by") if verification else None
    report["warnings"] = (verification or {}).get("warnings", [])
    report_path = write_report(final, report)
    return ExportResult(final, target, report, report_path)


VERIFIERS = ("auto", "mil-reference", "coreml-runtime", "both")


def run_verification(
    export_target: ExportTarget, path: Path, resolved: ResolvedModel, reference: BuiltModule,
    precision: str, opts: dict[str, Any], num_threads: int | None = None, verifier: str = "auto",
) -> dict[str, Any]:
    """Verify with the target's own runner, or for CoreML with a chosen one or both.

    "both" (on macOS) judges Apple's runtime and the MIL reference evaluator against PyTorch in
    the same run, so the evaluator that guards Linux CI is itself checked wherever a Mac runs it.
    """
    from .verify import verify_runner

    check_verifier(export_target.name, verifier)
    names = {"auto": [None], "both": ["coreml-runtime", "mil-reference"]}.get(verifier, [verifier])
    results = []
    for name in names:
        try:
            if name is None:
                runner = export_target.load(path, num_threads=num_threads or 1)
            else:
                runner = export_target.load_verifier(path, name, num_threads=num_threads or 1)  # type: ignore[attr-defined]
        except ExportError as exc:
            if verifier != "auto":
                raise
            return {"verdict": "not-verified", "reason": str(exc), "checks": []}
        results.append(verify_runner(runner, reference, task=resolved.task, preprocess=resolved.preprocess,
                                     precision=precision, raw_input=bool(opts.get("raw_input")), nms=opts.get("nms"),
                                     nms_best_class_only=export_target.name == "coreml"))
    return results[0] if len(results) == 1 else _merge_verifications(results)


def check_verifier(target: str, verifier: str) -> None:
    """Refuse a verifier that cannot run here before anything is exported."""
    if verifier not in VERIFIERS:
        raise ExportError(f"unknown --verifier {verifier!r}: use {', '.join(VERIFIERS)}")
    if verifier != "auto" and target != "coreml":
        raise ExportError(f"--verifier {verifier} applies to CoreML exports only (got --target {target})")
    if verifier in ("coreml-runtime", "both") and sys.platform != "darwin":
        raise ExportError(f"--verifier {verifier} needs Apple's CoreML runtime, which runs only on macOS; "
                          "use --verifier mil-reference or auto here")


def _merge_verifications(results: list[dict[str, Any]]) -> dict[str, Any]:
    """One verdict from several runners: every check is kept, prefixed with who ran it."""
    checks = [{**c, "check": f"{r['verified_by']}:{c['check']}"} for r in results for c in r.get("checks", [])]
    return {
        "verdict": "pass" if all(r.get("verdict") == "pass" for r in results) else "fail",
        "verified_by": "+".join(r["verified_by"] for r in results),
        "checks": checks,
        "warnings": [w for r in results for w in r.get("warnings", [])],
        "by_runner": {r["verified_by"]: r for r in results},
    }


def _target_for_path(path: Path) -> str:
    for name, suffix in (("coreml", ".mlpackage"), ("onnx", ".onnx"), ("tflite", ".tflite")):
        if path.name.endswith(suffix):
            return name
    raise ExportError(f"cannot tell the target of {path}: expected a .mlpackage, .onnx or .tflite file")


def verify_artefact(
    path: Path,
    model_name: str | None = None,
    *,
    checkpoint: Path | None = None,
    config: str | None = None,
    labels: Path | None = None,
    write: bool = True,
    verifier: str = "auto",
) -> dict[str, Any]:
    """Verify an existing artefact of any target against a model (+ checkpoint), same path as export.

    Task options, precision, size and channel order come from the artefact's own metadata.
    """
    path = Path(path)
    if not path.exists():
        raise ExportError(f"artefact {path} does not exist")
    target_name = _target_for_path(path)
    check_verifier(target_name, verifier)
    export_target = get_target(target_name)
    try:
        meta = export_target.read_metadata(path)
    except ExportError:
        raise
    except Exception as exc:
        first = str(exc).splitlines()[0] if str(exc) else ""
        raise ExportError(f"cannot read {path} as a {target_name} artefact: {exc.__class__.__name__}: {first}") from None
    try:
        opts = json.loads(meta.get("export_options", "{}"))
        pre = json.loads(meta["preprocess"])
        precision = meta.get("precision", "fp32")
        size = int(meta["image_size"])
    except (KeyError, ValueError):
        raise ExportError(f"{path} carries no mvit export metadata; it was not written by mvit-export") from None
    resolved = resolve_model(model_name or meta.get("model"), config=config or meta.get("config", "A"), image_size=size,
                             checkpoint=checkpoint, labels=labels, channel_order=pre.get("channel_order"))
    fused = fuse_batchnorm(resolved.net)
    _, reference = build_for_target(resolved, fused, target_name, opts)
    graph, checks = graph_checks(export_target, path)
    verification = run_verification(export_target, path, resolved, reference, precision, opts, verifier=verifier)
    failed = [c for c in checks + verification.get("checks", []) if not c["passed"]]
    report = {
        "artefact": path.name, "target": target_name, "model": resolved.name, "weights": resolved.weights,
        "precision": precision, **graph, "graph_checks": checks, "verification": verification,
        "failed": [describe_failure(c) for c in failed],
        "verdict": "fail" if failed else verification.get("verdict", "not-verified"),
        "verified_by": verification.get("verified_by"),
    }
    if write:
        write_json_atomic(path.with_name(path.name + ".verify.json"), report)
    return report


def harness_models_dir() -> Path:
    """ios_harness/App/Models/ of the checkout mvit runs from (or the current folder's)."""
    for root in (Path.cwd(), Path(__file__).resolve().parents[1]):
        if (root / "ios_harness").is_dir():
            return root / "ios_harness" / "App" / "Models"
    raise ExportError("no ios_harness/ folder found; run from the mvit checkout to use --into-harness")


def copy_into_harness(artefact: Path) -> Path:
    if not artefact.name.endswith(".mlpackage"):
        raise ExportError("--into-harness takes CoreML exports only (.mlpackage)")
    dest_dir = harness_models_dir()
    dest_dir.mkdir(parents=True, exist_ok=True)
    dest = dest_dir / artefact.name
    tmp = dest_dir / f".tmp-{os.getpid()}-{artefact.name}"
    shutil.copytree(artefact, tmp)
    _remove(dest)
    os.replace(tmp, dest)
    return dest
