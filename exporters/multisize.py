"""Several input sizes (and patch configs) in one artefact per target.

MobileViT has no positional embedding, so one set of weights serves every size; flexible input
shapes cost the Neural Engine, so each target gets the form that keeps fixed shapes where it can:

- CoreML: one ML Program with one fixed-shape function per (config, size), weights stored once
  (exporters/targets/coreml/multifunction.py; iOS 18 / macOS 15), or `--coreml-shapes enumerated`: one function
  with EnumeratedShapes for iOS 16-17 (config A only).
- ONNX: one graph per config with dynamic height and width (exporters/targets/onnx/multisize.py).
- TFLite: one file with one signature per (config, size) (exporters/targets/tflite/multisize.py).

Every function, size and signature is verified against PyTorch at its size; the artefact's
verdict passes only if all of them do. Names are f"{config}_{size}", recorded in order (the
default first) under the metadata key "functions", which `mvit-verify` reads back.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mvit.files import write_json_atomic
from mvit.reading import loads

from .base import ExportError, ExportTarget, Runner
from .checks import checks_as_dicts
from .options import artefact_stem as single_stem
from .pipeline import SizeVerifier, Written, run_export, verify_sizes
from .recorded import RecordedExport
from .report import FUNCTIONS_KEY, judge, verified_by
from .resolve import check_image_size, check_size_bounds
from .stages import ExportResult, SizedExport, build_for_target, graph_checks, prepare_export, prepare_out_dir, recorded_triple
from .targets import get_target
from .tasks import get_task
from .verification import RunnerVerification
from .verify import verify_runner

SHAPE_FORMS = ("functions", "enumerated")  # --coreml-shapes
ENUMERATED_KEY = "enumerated_sizes"  # metadata of the EnumeratedShapes form: JSON list of sizes
# Detection anchors and NMS are built for one input size, and CoreML's Vision pipeline cannot be
# one function of a multifunction package.
# Every size is built, traced and verified on its own (tens of seconds each for CoreML), and one
# artefact holding more sizes than the 32..1024 range has multiples of 64 serves no app: a longer
# list is a mistake, refused before any of that work starts. An artefact's recorded list is held
# to the same bound (both configs: twice as many).
MAX_SIZES = 16
MAX_RECORDED = 2 * MAX_SIZES


def parse_size_list(text: str | None) -> list[int] | None:
    """'256,320' -> [256, 320]; None stays None (the checkpoint's or the model's size)."""
    if text is None:
        return None
    parts = str(text).replace(" ", "").split(",")
    if len(parts) > MAX_SIZES:
        raise ExportError(
            f"--image-size lists {len(parts)} sizes; one artefact holds at most {MAX_SIZES} "
            "(each is built and verified on its own): export the sizes your app uses"
        )
    sizes = []
    for part in parts:
        # ASCII digits only: int() would also read '６４' and '9_6', sizes no one meant to type.
        digits = part.removeprefix("-")  # a negative size is a number: the bounds check says what is allowed
        if not (digits.isascii() and digits.isdigit() and len(digits) <= 5):
            raise ExportError(f"--image-size {part!r} is not a whole number of pixels; give sizes like 256 or 256,320")
        sizes.append(int(part))
    _refuse_duplicates(sizes, "--image-size")
    return sizes


def parse_config_list(text: str | None) -> list[str] | None:
    if text is None:
        return None
    configs = [c.upper() for c in str(text).replace(" ", "").split(",")]
    _refuse_duplicates(configs, "--config")
    return configs


def _refuse_duplicates(values: list, flag: str) -> None:
    seen = set()
    for v in values:
        if v in seen:
            raise ExportError(f"{flag} lists {v} twice; give each value once")
        seen.add(v)


def wanted(sizes: list[int] | None, configs: list[str] | None, coreml_shapes: str | None) -> bool:
    return len(sizes or []) > 1 or len(configs or []) > 1 or coreml_shapes is not None


def prepare(
    model: str | None,
    targets: list[str],
    *,
    sizes: list[int] | None,
    configs: list[str] | None,
    coreml_shapes: str | None,
    checkpoint: Path | None,
    labels: Path | None,
    **options: Any,
) -> list[SizedExport]:
    """Every (config, size) resolved and checked, before anything is built or written."""
    if coreml_shapes is not None and coreml_shapes not in SHAPE_FORMS:
        raise ExportError(f"unknown --coreml-shapes {coreml_shapes!r}: use {' or '.join(SHAPE_FORMS)}")
    if coreml_shapes is not None and not any(coreml_shapes in get_target(t).multisize_forms for t in targets):
        raise ExportError(f"--coreml-shapes applies to CoreML exports only (got --target {','.join(targets)})")
    for t in targets:
        if not get_target(t).multisize_forms:
            raise ExportError(f"--target {t} holds one image size per artefact: export each size with its own mvit-export")
    config_list: list[str | None] = list(configs) if configs else [None]
    size_list: list[int | None] = list(sizes) if sizes else [None]  # None: the checkpoint's or the model's size
    for n in sizes or []:  # every size, before any network is built; resolving does not check them again
        check_size_bounds(n)
    if coreml_shapes == "enumerated" and (len(config_list) > 1 or config_list[0] not in (None, "A")):
        raise ExportError(
            "--coreml-shapes enumerated writes one function for config A (the iOS 16-17 form); "
            "for config B or several configs use the default --coreml-shapes functions"
        )
    # One network per config answers whether every size fits it (config B: multiples of 64), so a
    # bad size is refused before the other sizes are resolved.
    first_of: dict[str | None, Any] = {}
    for c in config_list:
        first_of[c] = prepare_export(model, targets, config=c, image_size=size_list[0], checkpoint=checkpoint, labels=labels, size_checked=True, **options)
        resolved = first_of[c].resolved
        if not get_task(resolved.task).multi_size:
            raise ExportError(
                f"several sizes or configs in one artefact take classification or segmentation models; "
                f"{resolved.name} does {resolved.task}, whose anchors and NMS are built for one size: "
                "export one size at a time"
            )
        fits = [(resolved.image_size, first_of[c].size_info)]
        fits += [(n, check_image_size(resolved.net, n, resolved.config, resolved.name)) for n in (sizes or [])[1:]]
        resized = [(n, fit) for n, fit in fits if fit.feature_maps_resized]
        if coreml_shapes == "enumerated" and resized:
            # coremltools cannot map a bilinear resize whose size is computed at run time (measured:
            # "Unable to map torch_upsample_bilinear to core upsample").
            n, fit = resized[0]
            raise ExportError(
                f"--coreml-shapes enumerated cannot take --image-size {n}: its feature maps are resized inside "
                "the MobileViT blocks, which CoreML cannot convert for a flexible shape; use multiples of "
                f"{fit.size_multiple}, or the default --coreml-shapes functions"
            )
    entries = []
    for c in config_list:
        for s in size_list:
            prepared = (
                first_of[c]
                if s == size_list[0]
                else prepare_export(model, targets, config=c, image_size=s, checkpoint=checkpoint, labels=labels, size_checked=True, **options)
            )
            size = prepared.resolved.image_size
            entries.append(SizedExport(f"{prepared.resolved.config}_{size}", prepared.resolved.config, size, prepared))
    if coreml_shapes == "enumerated" and len(entries) < 2:
        raise ExportError("--coreml-shapes enumerated needs at least two sizes, e.g. --image-size 256,320")
    if coreml_shapes == "enumerated" and entries[0].config != "A":
        raise ExportError(f"--coreml-shapes enumerated takes config A; {checkpoint} holds config {entries[0].config}")
    return entries


def artefact_stem(entries: list[SizedExport], target: str, precision: str, form: str) -> str:
    """The single-size name with every config and size: mobilevit_xxs_A_256-320_fp16."""
    first = entries[0]
    stem = single_stem(first.prepared.resolved, precision, first.prepared.options[target])
    configs = "-".join(dict.fromkeys(e.config for e in entries))
    sizes = "-".join(str(s) for s in dict.fromkeys(e.image_size for e in entries))
    head = f"_{first.config}_{first.image_size}_{precision}"
    stem = stem.replace(head, f"_{configs}_{sizes}_{precision}", 1)
    return stem + ("_enumerated" if form == "enumerated" else "")


def recorded_entries(meta: dict[str, str]) -> list[dict[str, Any]] | None:
    """The functions / sizes an artefact records, checked as file data; None for a single size."""
    if FUNCTIONS_KEY in meta:
        try:
            entries = loads(meta[FUNCTIONS_KEY])
            _check_recorded_count(entries)
            out: list[dict[str, Any]] = [{"name": str(e["name"]), "image_size": int(e["image_size"]), "config": str(e["config"])} for e in entries]
        except (ValueError, TypeError, KeyError):
            raise ExportError("the artefact's recorded functions are malformed; re-export it") from None
    elif ENUMERATED_KEY in meta:
        try:
            listed = loads(meta[ENUMERATED_KEY])
            _check_recorded_count(listed)
            sizes = [int(s) for s in listed]
        except (ValueError, TypeError):
            raise ExportError("the artefact's recorded enumerated sizes are malformed; re-export it") from None
        out = [{"name": "main", "image_size": s, "config": str(meta.get("config", "A"))} for s in sizes]
    else:
        return None
    if not out:
        raise ExportError("the artefact records an empty list of functions; re-export it")
    names = [e["name"] for e in out if e["name"] != "main"]  # the enumerated form's one function serves every size
    if len(set(names)) != len(names) or len({(e["config"], e["image_size"]) for e in out}) != len(out):
        raise ExportError("the artefact records the same function twice; re-export it")
    for e in out:
        if e["config"] not in ("A", "B", "custom"):
            raise ExportError(f"the artefact records an unknown config {e['config']!r}; re-export it")
        check_size_bounds(int(e["image_size"]), "a recorded image_size")
    return out


def _check_recorded_count(listed: Any) -> None:
    """Refused before any work: each recorded entry costs a model build and a verification."""
    if isinstance(listed, list) and len(listed) > MAX_RECORDED:
        raise ExportError(
            f"the artefact records {len(listed)} functions / sizes; mvit-export writes at most {MAX_RECORDED}, "
            "so its metadata is damaged or forged; re-export it"
        )


# ---- export -------------------------------------------------------------------------------


def export(
    entries: list[SizedExport], target: str, out_dir: Path, *, precision: str, verify: bool = True, verifier: str = "auto", coreml_shapes: str | None = None
) -> list[ExportResult]:
    """Write, verify and publish this target's multi-size artefact(s) through the one pipeline.
    The caller has checked `verifier` (check_verifier) before anything was built."""
    export_target = get_target(target)
    out_dir = prepare_out_dir(out_dir)
    forms = export_target.multisize_forms
    form = coreml_shapes if coreml_shapes in forms else forms[0]
    # A graph has one patch config: ONNX writes one dynamic-size file per config.
    groups = [[e for e in entries if e.config == c] for c in dict.fromkeys(e.config for e in entries)] if form == "dynamic" else [entries]
    results = []
    for group in groups:
        final = out_dir / (artefact_stem(group, target, precision, form) + export_target.suffix)
        writer = SeveralSizes(export_target, group, precision, form, verifier)
        results.append(run_export(export_target, group, final, writer, precision=precision, verify=verify))
    return results


class SeveralSizes:
    """Several sizes in one artefact, in a form the target's MultiSizeWriter writes and runs."""

    kind = "multi-size export"
    form: str | None  # always a form here; typed as ArtefactWriter's

    def __init__(self, export_target: ExportTarget, entries: list[SizedExport], precision: str, form: str, verifier: str) -> None:
        if export_target.multisize is None:
            raise ExportError(f"{export_target.name} does not write several sizes in one artefact; export one size at a time")
        self.export_target, self.writer, self.entries = export_target, export_target.multisize, entries
        self.precision, self.form, self.verifier_name = precision, form, verifier

    def write(self, staged: Path, staging: Path) -> Written:
        fields = self.writer.write(self.entries, staged, staging, self.precision, str(self.form))
        return Written(checks=fields.pop("checks", []), form_fields=fields)

    def verifier(self, path: Path) -> SizeVerifier:
        runner_for = self.writer.runner(path, str(self.form), self.verifier_name)
        return lambda entry: self._verify(runner_for(entry.as_entry()), entry)

    def _verify(self, runner: Runner, entry: SizedExport) -> RunnerVerification:
        resolved, opts = entry.prepared.resolved, entry.prepared.options[self.export_target.name]
        _, reference = build_for_target(resolved, entry.prepared.fused, self.export_target, opts)
        return verify_runner(
            runner,
            reference,
            task=resolved.task,
            preprocess=resolved.preprocess,
            precision=self.precision,
            raw_input=opts.raw_input,
            nms=None,
            nms_best_class_only=self.export_target.nms_best_class_only,
        )

    def size_name(self, entry: SizedExport) -> str:
        return entry.name if self.form != "enumerated" else f"main@{entry.image_size}"


# ---- mvit-verify ----------------------------------------------------------------------------


def verify_recorded(
    path: Path,
    export_target: ExportTarget,
    recorded: list[dict[str, Any]],
    meta: RecordedExport,
    model_name: str | None,
    *,
    checkpoint: Path | None,
    config: str | None,
    labels: Path | None,
    write: bool,
    verifier: str,
) -> dict[str, Any]:
    """mvit-verify of a multi-size artefact: every recorded function / size / signature at its size."""
    forms = export_target.multisize_forms  # an enumerated package records one function, "main"
    form = forms[0] if len(forms) == 1 else ("enumerated" if recorded[0]["name"] == "main" else "functions")
    pre = meta.preprocess
    entries = []
    for e in recorded:
        asked = config or (e["config"] if e["config"] in ("A", "B") and checkpoint is None and ":" not in (model_name or "") else None)
        prepared = prepare_export(
            model_name,
            [export_target.name],
            config=asked,
            image_size=e["image_size"],
            checkpoint=checkpoint,
            labels=labels,
            channel_order=pre.get("channel_order"),
            mean=recorded_triple(pre.get("mean")),
            std=recorded_triple(pre.get("std")),
            size_checked=True,  # recorded_entries checked every recorded size
            **meta.options,
        )
        entries.append(SizedExport(e["name"], e["config"], e["image_size"], prepared))
    graph = graph_checks(export_target, path)
    sizes = verify_sizes(SeveralSizes(export_target, entries, meta.precision, form, verifier), path, entries)
    judgement = judge(graph.checks, sizes, prefix_names=True)
    per_size = [s.as_dict() for s in sizes]
    report = {
        "artefact": path.name,
        "target": export_target.name,
        "form": form,
        "model": entries[0].prepared.resolved.name,
        "weights": entries[0].prepared.resolved.weights,
        "precision": meta.precision,
        **graph.fields(),
        "graph_checks": checks_as_dicts(graph.checks),
        "per_size": per_size,
        "failed": judgement.failed,
        "verdict": judgement.verdict,
        "verified_by": verified_by(sizes),
        "verification": {"verdict": judgement.verdict, "per_size": [{k: v for k, v in e.items() if k != "verification"} for e in per_size]},
    }
    if write:
        write_json_atomic(path.with_name(path.name + ".verify.json"), report)
    return report
