"""export_model: registered model (or a user's factory) -> one verified artefact + JSON report.

An export is written and verified in a private staging folder and appears under its final
name, with its report, only when both are complete (mvit.files.publish). The CLI is a thin
layer over this; tests call it directly.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mvit.cli_support import native_chatter_filtered
from mvit.errors import MvitError, one_line
from mvit.files import check_replaceable, private_copy, publish, staging_dir, write_json_atomic
from mvit.models import fuse_batchnorm
from mvit.models.registry import get_spec

from . import (
    multisize,  # a multi-size artefact: every recorded function / size / signature at its size
    quantize,
)
from .base import ExportError, ExportRequest, ExportTarget, without_rewrites
from .checks import checks_as_dicts, failures
from .options import artefact_stem, normalise_options
from .pipeline import SizeVerifier, Written, run_export
from .recorded import RecordedExport, read_recorded
from .report import ArtefactInput, OneSizeFields
from .resolve import (  # noqa: F401 (re-exported: the library's entry points)
    MAX_IMAGE_SIZE,
    MIN_IMAGE_SIZE,
    RANDOM_WEIGHTS_SEED,
    ResolvedModel,
    check_image_size,
    check_size_bounds,
    describe_preprocess,
    resolve_model,
)
from .stages import (  # noqa: F401 (re-exported: the library's entry points)
    ExportResult,
    PreparedExport,
    SizedExport,
    artefact_sha256,
    artefact_size_bytes,
    build_for_target,
    export_request,
    final_names,
    graph_checks,
    prepare_export,
    prepare_out_dir,
    recorded_triple,
)
from .targets import FOLDER_MARKERS, SUFFIXES, get_target
from .verification import Verification
from .verification_run import VERIFIERS, check_verifier, merge_verifications, run_verification  # noqa: F401
from .wrappers import BuiltModule


def export_model(
    model_name: str | None,
    target: str,
    out_dir: Path,
    *,
    config: str | None = None,
    precision: str = "fp16",
    image_size: int | None = None,
    checkpoint: Path | None = None,
    labels: Path | None = None,
    verify: bool = True,
    verifier: str = "auto",
    prepared: PreparedExport | None = None,
    calibration: Path | None = None,
    **options: Any,
) -> ExportResult:
    """One verified artefact of a model: the request checked, the model prepared, then exported."""
    export_target = get_target(target)
    check_request(export_target, precision, verifier if verify else None)
    if prepared is None:
        prepared = prepare_export(model_name, [target], config=config, image_size=image_size, checkpoint=checkpoint, labels=labels, **options)
    return export_prepared(
        prepared, export_target, out_dir, precision=precision, verify=verify, verifier=verifier, calibration=calibration, num_threads=options.get("num_threads")
    )


def check_request(export_target: ExportTarget, precision: str, verifier: str | None) -> None:
    """The precision and verifier asked of a target, refused before anything is built (verifier
    None: no verification)."""
    quantize.check_precision(precision, export_target)
    if verifier is not None:
        check_verifier(export_target, verifier)


def export_prepared(
    prepared: PreparedExport,
    export_target: ExportTarget,
    out_dir: Path,
    *,
    precision: str,
    verify: bool,
    verifier: str = "auto",
    calibration: Path | None = None,
    num_threads: int | None = None,
) -> ExportResult:
    """Convert, verify and publish a prepared model whose request check_request has passed."""
    resolved, opts = prepared.resolved, prepared.options[export_target.name]
    out_dir = prepare_out_dir(out_dir)
    traced_as = without_rewrites(export_target, export_target.rewrites_skipped_for.get(precision, frozenset()))
    built, reference = build_for_target(resolved, prepared.fused, traced_as, opts)
    request = export_request(resolved, built, precision, opts, export_target)
    quant = quantize.prepare(precision, export_target, resolved.preprocess.resize_shortest, resolved.preprocess.crop, calibration)
    request.calibration = quant.calibration
    request.metadata.update(quant.metadata)
    final = out_dir / (artefact_stem(resolved, precision, opts) + export_target.suffix)
    entry = SizedExport(f"{resolved.config}_{resolved.image_size}", resolved.config, resolved.image_size, prepared)
    writer = OneSize(export_target, request, built, reference, quant, verifier=verifier, num_threads=num_threads)
    return run_export(export_target, [entry], final, writer, precision=precision, verify=verify)


class OneSize:
    """One size: the target's own export of one request, verified by its runtime (or runtimes)."""

    form: str | None = None
    kind = "export"

    def __init__(
        self,
        export_target: ExportTarget,
        request: ExportRequest,
        built: BuiltModule,
        reference: BuiltModule,
        quant: quantize.Quantisation,
        *,
        verifier: str,
        num_threads: int | None,
    ) -> None:
        self.export_target, self.request, self.built, self.reference, self.quant = export_target, request, built, reference, quant
        self.verifier_name, self.num_threads = verifier, num_threads

    def write(self, staged: Path, staging: Path) -> Written:
        torch.manual_seed(RANDOM_WEIGHTS_SEED)
        self.export_target.export(self.request, staged)
        beside = []
        if self.built.anchors is not None and self.request.options.raw_detection:
            anchors = staging / (staged.name + ".anchors.npy")
            with open(anchors, "wb") as f:
                np.save(f, self.built.anchors.numpy())
            beside.append(anchors)
        metadata = self.request.metadata
        fields = OneSizeFields(
            input=_input_description(self.request),
            output_names=json.loads(metadata["output_names"]),
            preprocess=self.request.preprocess,
            quantisation=json.loads(metadata["quantization"]) if "quantization" in metadata else None,
            rank_lowering=self.built.rank_lowering,
            export_rewrites=self.built.export_rewrites,
        )
        return Written(beside=beside, one_size=fields)

    def verifier(self, path: Path) -> SizeVerifier:
        return lambda entry: self._verify(path, entry)

    def _verify(self, path: Path, entry: SizedExport) -> Verification:
        resolved = entry.prepared.resolved
        verification = run_verification(
            self.export_target,
            path,
            resolved,
            self.reference,
            self.request.precision,
            self.request.options,
            num_threads=self.num_threads,
            verifier=self.verifier_name,
            samples=self.quant.judged or None,
        )
        return verification.with_warnings_first(self.quant.warnings)

    def size_name(self, entry: SizedExport) -> str:
        return entry.name


def _input_description(request: ExportRequest) -> ArtefactInput:
    """The traced module takes NCHW, a channels-last file takes NHWC."""
    n, c, h, w = request.input_shape
    if request.channels_last_input:
        return ArtefactInput("image", [n, h, w, c], "NHWC")
    return ArtefactInput("image", [n, c, h, w], "NCHW")


def target_for_path(path: Path) -> str:
    for name, suffix in SUFFIXES.items():
        if path.name.endswith(suffix):
            return name
    raise ExportError(f"cannot tell the target of {path}: expected a {', '.join(SUFFIXES.values())} artefact")


def artefact_metadata(path: Path) -> RecordedExport:
    """An artefact's checked mvit metadata, for mvit-eval."""
    path = Path(path)
    target_name = target_for_path(path)
    return read_recorded(path, target_name, get_target(target_name))


def verify_artefact(
    path: Path,
    model_name: str | None = None,
    *,
    checkpoint: Path | None = None,
    config: str | None = None,
    labels: Path | None = None,
    write: bool = True,
    verifier: str = "auto",
    images: Path | None = None,
) -> dict[str, Any]:
    """Verify an existing artefact of any target against a model (+ checkpoint), same path as export.

    Task options, precision, size and channel order come from the artefact's own metadata. A
    model name read from the artefact is only looked up in the registry; a custom network
    (`pkg.module:factory`) is imported only when the caller names it (`--model`), because opening
    a downloaded file must never run code.
    """
    path = Path(path)
    if not path.exists():
        raise ExportError(f"artefact {path} does not exist")
    target_for_path(path)
    if write:
        check_replaceable(path.with_name(path.name + ".verify.json"))
    # Verification only reads: readers that tidy what they open (coremltools rewrites a package's
    # Manifest.json) get a private copy, so the artefact's bytes and times stay as they were.
    with private_copy(path) as readable:
        try:
            report = _verify_readable(readable, model_name, checkpoint=checkpoint, config=config, labels=labels, verifier=verifier, images=images)
        except MvitError as exc:
            exc.args = tuple(a.replace(str(readable), str(path)) if isinstance(a, str) else a for a in exc.args)
            raise
    if write:
        write_json_atomic(path.with_name(path.name + ".verify.json"), report)
    return report


def _verify_readable(
    path: Path, model_name: str | None, *, checkpoint: Path | None, config: str | None, labels: Path | None, verifier: str, images: Path | None
) -> dict[str, Any]:
    """verify_artefact on a copy of the artefact that has its name (messages and reports name it)."""
    target_name = target_for_path(path)
    export_target = get_target(target_name)
    check_verifier(export_target, verifier)
    meta = read_recorded(path, target_name, export_target)
    _check_weights_given(path, meta.weights, checkpoint)
    if model_name is None:
        model_name = _registered_model_of(path, meta.model, checkpoint)

    recorded = multisize.recorded_entries(export_target.read_metadata(path))
    if recorded is not None:
        return multisize.verify_recorded(
            path, export_target, recorded, meta, model_name, checkpoint=checkpoint, config=config, labels=labels, write=False, verifier=verifier
        )
    pre = meta.preprocess
    # Without a checkpoint the recorded config rebuilds the same random-weight model; with one,
    # the checkpoint says (and a mismatch with the artefact shows up as failed checks).
    recorded_config = meta.config if meta.config in ("A", "B") and checkpoint is None and ":" not in (model_name or "") else None
    resolved = resolve_model(
        model_name,
        config=config or recorded_config,
        image_size=meta.image_size,
        size_checked=True,  # read_recorded checked the recorded size
        checkpoint=checkpoint,
        labels=labels,
        channel_order=pre.get("channel_order"),
        mean=recorded_triple(pre.get("mean")),
        std=recorded_triple(pre.get("std")),
    )
    opts = normalise_options(resolved.task, meta.options, export_target)
    fused = fuse_batchnorm(resolved.net)
    _, reference = build_for_target(resolved, fused, export_target, opts)
    graph = graph_checks(export_target, path)
    try:
        with native_chatter_filtered():
            verification = run_verification(
                export_target,
                path,
                resolved,
                reference,
                meta.precision,
                opts,
                verifier=verifier,
                samples=quantize.judged_images(images, resolved.preprocess.resize_shortest, resolved.preprocess.crop) or None,
            )
    except ExportError:
        raise
    except Exception as exc:
        raise ExportError(
            f"cannot run {path} beside {resolved.name} with weights {resolved.weights}: {exc.__class__.__name__}: "
            f"{one_line(exc)}; pass the --model and --checkpoint it was exported from"
        ) from None
    failed = failures(graph.checks + verification.checks)
    report = {
        "artefact": path.name,
        "target": target_name,
        "model": resolved.name,
        "weights": resolved.weights,
        "precision": meta.precision,
        **graph.fields(),
        "graph_checks": checks_as_dicts(graph.checks),
        "verification": verification.as_dict(),
        "failed": failed,
        "verdict": "fail" if failed else verification.verdict,
        "verified_by": verification.verified_by,
    }
    return report


def _check_weights_given(path: Path, recorded: str, checkpoint: Path | None) -> None:
    """An export of trained weights judged against the seeded random ones would fail for no fault of the artefact."""

    trained = recorded and recorded != f"random (seed {RANDOM_WEIGHTS_SEED})" and not recorded.startswith("from factory ")
    if checkpoint is None and trained:
        raise ExportError(
            f"{path} was exported from the weights {recorded!r}; pass them as --checkpoint to verify it "
            "(without --checkpoint mvit-verify can only rebuild random weights)"
        )


def _registered_model_of(path: Path, recorded: str, checkpoint: Path | None) -> str | None:
    if ":" in recorded or "/" in recorded:
        raise ExportError(
            f"{path} was exported from a custom network ({recorded!r}); mvit never imports code named by a file, "
            "so pass --model pkg.module:factory yourself to re-verify it"
        )
    if checkpoint is not None:
        return None  # the checkpoint says which model it holds
    try:
        get_spec(recorded)
    except KeyError:
        raise ExportError(f"{path} names the model {recorded!r}, which is not registered here; pass --model") from None
    return recorded


def harness_models_dir() -> Path:
    """ios_harness/App/Models/ of the checkout mvit runs from (or the current folder's)."""
    for root in (Path.cwd(), Path(__file__).resolve().parents[1]):
        if (root / "ios_harness").is_dir():
            return root / "ios_harness" / "App" / "Models"
    raise ExportError("no ios_harness/ folder found; run from the mvit checkout to use --into-harness")


def check_harness_writable() -> Path:
    """ios_harness/App/Models/, checked before an export starts: a copy that cannot land there is
    said at once, not after minutes of conversion and verification."""
    dest_dir = harness_models_dir()
    for folder in (dest_dir, *dest_dir.parents):
        if folder.exists():
            if not folder.is_dir():
                raise ExportError(f"--into-harness: {folder} is a file, not a folder; move it away to copy into {dest_dir}")
            if not os.access(folder, os.W_OK | os.X_OK):
                raise ExportError(f"--into-harness: no permission to write in {folder}")
            return dest_dir
    return dest_dir


def copy_into_harness(artefact: Path) -> Path:
    if not artefact.name.endswith(".mlpackage"):
        raise ExportError("--into-harness takes CoreML exports only (.mlpackage)")
    dest_dir = harness_models_dir()
    dest_dir.mkdir(parents=True, exist_ok=True)
    dest = dest_dir / artefact.name
    with staging_dir(dest_dir) as staging:
        copy = staging / artefact.name
        shutil.copytree(artefact, copy)
        publish([(copy, dest)], folder_artefacts=FOLDER_MARKERS)
    return dest
