"""The export pipeline's shared steps, for one size or several: prepare a model for every target,
build the module a target traces, describe and check the written artefact, and the staging
folder it is written in. api.py (one artefact) and multisize.py (one artefact of several sizes)
both run these; target packages call them to build what they convert."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from mvit import __version__
from mvit.errors import EXIT_FAILED
from mvit.files import clean_stale_staging, staging_dir
from mvit.models import fuse_batchnorm

from .base import ExportError, ExportOptions, ExportRequest, ExportTarget
from .checks import check
from .options import normalise_options
from .preprocessing import preprocess_dict
from .report import GraphChecks, SizeFit, report_path_for
from .resolve import ResolvedModel, check_image_size, resolve_model
from .targets import get_target
from .wrappers import MAX_RANK, BuiltModule, build_export_module


@dataclass
class ExportResult:
    path: Path
    target: str
    report: dict[str, Any] | None
    report_path: Path | None
    notes: list[str] | None = None  # what was assumed (preprocessing of a bare state dict...)

    @property
    def verdict(self) -> str:
        return (self.report or {}).get("verdict", "not-verified")

    @property
    def size_bytes(self) -> int:
        return artefact_size_bytes(self.path)

    def exit_code(self, verified: bool) -> int:
        """mvit-verify's rule: anything short of a pass is exit 1. Without verification, a check that
        ran anyway (a CoreML package's structure) and failed is exit 1 too."""
        return EXIT_FAILED if self.verdict == "fail" or (verified and self.verdict != "pass") else 0


@dataclass
class PreparedExport:
    """A model resolved and its options checked once, for one or several targets."""

    resolved: ResolvedModel
    options: dict[str, ExportOptions]  # target -> checked options
    size_info: SizeFit
    fused: nn.Module


@dataclass
class SizedExport:
    """One size of an export: the whole artefact for a single size; one function / size /
    signature of a multi-size artefact."""

    name: str  # f"{config}_{size}"
    config: str
    image_size: int
    prepared: PreparedExport  # at this config and size

    def as_entry(self) -> dict[str, Any]:
        return {"name": self.name, "image_size": self.image_size, "config": self.config}


def artefact_size_bytes(path: Path) -> int:
    """Bytes on disk: a file, or every file in a folder artefact (.mlpackage)."""
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


def graph_checks(target: ExportTarget, path: Path) -> GraphChecks:
    hist = target.op_histogram(path)
    rank = target.max_tensor_rank(path)
    bn_ops = sorted(op for op in hist if "batchnorm" in op.lower().replace("_", ""))
    checks = [check("no_batchnorm_ops", sum(hist[o] for o in bn_ops), 0, at_least=False), check("max_tensor_rank", rank, MAX_RANK, at_least=False)]
    structure, structure_checks = target.structure_checks(path)  # the format's own rules (CoreML: exporters/targets/coreml/validate.py)
    return GraphChecks(hist, rank, bn_ops, structure, checks + structure_checks)


def _in_graph(target: ExportTarget, opts: ExportOptions) -> bool:
    """Pixel preprocessing inside the graph (ONNX, TFLite) or in CoreML's ImageType."""
    return target.preprocess_in_graph and not opts.raw_input


def build_for_target(
    resolved: ResolvedModel, fused: nn.Module, target: ExportTarget | str, opts: ExportOptions | dict[str, Any] | None = None
) -> tuple[BuiltModule, BuiltModule]:
    """(module the target traces, reference module without pixel preprocessing)."""
    target = get_target(target) if isinstance(target, str) else target
    opts = ExportOptions.from_dict(opts)
    built = build_export_module(
        fused, resolved.task, resolved.image_size, target=target, preprocess=resolved.preprocess if _in_graph(target, opts) else None, options=opts
    )
    # The reference is the network as written (never rank-lowered), so verification also proves the rewrite exact.
    reference = build_export_module(fused, resolved.task, resolved.image_size, target=target, preprocess=None, options=opts, lower=False)
    return built, reference


def prepare_out_dir(out_dir: Path) -> Path:
    out_dir = Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        with staging_dir(out_dir):
            pass
        clean_stale_staging(out_dir)
    except OSError as exc:
        raise ExportError(f"cannot write to output folder {out_dir}: {exc.strerror or exc}; choose a writable --out") from None
    return out_dir


def prepare_export(
    model_name: str | None,
    targets: list[str],
    *,
    config: str | None = None,
    image_size: int | None = None,
    checkpoint: Path | None = None,
    labels: Path | None = None,
    size_checked: bool = False,
    **options: Any,
) -> PreparedExport:
    """Resolve the model and check every option for every target, before anything is written.
    `size_checked`: as resolve_model's."""
    export_targets = [get_target(t) for t in targets]
    resolved = resolve_model(
        model_name,
        config=config,
        image_size=image_size,
        checkpoint=checkpoint,
        labels=labels,
        channel_order=options.get("channel_order"),
        mean=options.get("mean"),
        std=options.get("std"),
        size_checked=size_checked,
    )
    per_target = {t.name: normalise_options(resolved.task, options, t) for t in export_targets}
    size_info = check_image_size(resolved.net, resolved.image_size, resolved.config, resolved.name)
    return PreparedExport(resolved, per_target, size_info, fuse_batchnorm(resolved.net))


def final_names(final: Path) -> tuple[Path, ...]:
    """Every name an export of `final` publishes or replaces: the artefact, its report, an earlier
    mvit-verify report and the raw-detection anchors."""
    return (final, report_path_for(final), final.with_name(final.name + ".verify.json"), final.with_name(final.name + ".anchors.npy"))


def export_request(resolved: ResolvedModel, built: BuiltModule, precision: str, opts: ExportOptions, export_target: ExportTarget) -> ExportRequest:
    in_graph = _in_graph(export_target, opts)
    preprocess = preprocess_dict(resolved.preprocess, raw_input=opts.raw_input, in_graph=in_graph)
    final_outputs = export_target.output_names_with_nms(opts) if opts.nms else built.output_names
    metadata = {
        "mvit_version": __version__,
        "model": resolved.name,
        "task": resolved.task,
        "config": resolved.config,
        "precision": precision,
        "image_size": str(resolved.image_size),
        "weights": resolved.weights,
        "labels": json.dumps(resolved.labels),
        "preprocess": json.dumps(preprocess, sort_keys=True),
        "output_names": json.dumps(final_outputs),
        "export_options": json.dumps(opts.as_dict(), sort_keys=True),
    }
    return ExportRequest(
        module=built.module,
        model_name=resolved.name,
        task=resolved.task,
        input_shape=(1, 3, resolved.image_size, resolved.image_size),
        output_names=built.output_names,
        labels=resolved.labels,
        preprocess=preprocess,
        precision=precision,  # type: ignore[arg-type]
        channels_last_input=opts.meaning("channels_last_input") is not None,
        dynamic_batch=opts.meaning("dynamic_batch") is not None,
        metadata=metadata,
        options=opts,
    )


def recorded_triple(value: Any) -> tuple[float, float, float] | None:
    if value is None:
        return None
    try:
        a, b, c = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ExportError("the artefact's recorded mean/std are not three numbers; re-export it") from None
    return (a, b, c)
