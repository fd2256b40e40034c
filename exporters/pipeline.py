"""The one export pipeline after resolve and prepare: a list of sizes (one element for a single-size
export) is converted into one artefact in a private staging folder, its graph checked, every size
verified in one loop, one report built, and artefact and report published together or not at all.

How a list becomes one artefact, and how each of its sizes is run, is the writer's: `api.OneSize`
(the target's own export, for one size) or `multisize.SeveralSizes` (the target's MultiSizeWriter).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from mvit.cli_support import native_chatter_filtered
from mvit.errors import MvitError, one_line
from mvit.files import check_replaceable, normal_modes, publish, staging_dir, write_json_atomic

from .base import ExportError, ExportTarget
from .report import (
    REPORT_SCHEMA,
    Check,
    ExportReport,
    GraphChecks,
    MultiSizeReport,
    OneSizeFields,
    ReportCommon,
    SizeVerification,
    judge,
    report_path_for,
    verified_by,
)
from .resolve import describe_preprocess
from .stages import ExportResult, SizedExport, artefact_sha256, artefact_size_bytes, final_names, graph_checks
from .targets import FOLDER_MARKERS
from .verification import Verification

SizeVerifier = Callable[[SizedExport], Verification]  # one size of the artefact, judged


@dataclass
class Written:
    """What a writer leaves in the staging folder besides the artefact, and what it says of it."""

    beside: list[Path] = field(default_factory=list)  # staged files published beside the artefact, under their names
    checks: list[Check] = field(default_factory=list)  # checks only the writer can make
    one_size: OneSizeFields | None = None  # a single-size export: what its target was asked
    form_fields: dict[str, Any] = field(default_factory=dict)  # a multi-size form: what the target's writer reports


class ArtefactWriter(Protocol):
    """How a list of sizes becomes one artefact of a target, and how each of its sizes runs."""

    form: str | None  # the multi-size form (ExportTarget.multisize_forms); None: one size
    kind: str  # in messages: "export", "multi-size export"

    def write(self, staged: Path, staging: Path) -> Written:
        """Write the artefact at `staged` (its final name, in `staging`)."""

    def verifier(self, path: Path) -> SizeVerifier:
        """Who verifies each size of the artefact at `path`."""

    def size_name(self, entry: SizedExport) -> str:
        """The size's name in the report and in messages."""


def run_export(export_target: ExportTarget, entries: list[SizedExport], final: Path, writer: ArtefactWriter, *, precision: str, verify: bool) -> ExportResult:
    """Convert, check, verify and publish one artefact of `entries` under the name `final`."""
    check_replaceable(*final_names(final), folder_artefacts=FOLDER_MARKERS)  # before the conversion: a folder in the way is said at once
    resolved = entries[0].prepared.resolved
    with staging_dir(final.parent) as staging:
        staged = staging / final.name
        try:
            with native_chatter_filtered():
                written = writer.write(staged, staging)
            normal_modes(staged)
            graph = graph_checks(export_target, staged)
        except MvitError:
            raise
        except Exception as exc:
            raise ExportError(f"{export_target.name} {writer.kind} of {resolved.name} failed: {exc.__class__.__name__}: {one_line(exc)}") from exc
        graph.checks += written.checks
        sizes = verify_sizes(writer, staged, entries) if verify else []
        report = build_report(export_target, entries, final, staged, precision, writer.form, graph, sizes, written).as_dict()
        report_path = report_path_for(final)
        staged_report = staging / report_path.name
        write_json_atomic(staged_report, {"schema": REPORT_SCHEMA, **report})
        # An earlier export's report, or the .verify.json of an earlier file, must not describe this one.
        moves = [(staged, final), *((p, final.with_name(p.name)) for p in written.beside), (staged_report, report_path)]
        publish(moves, also_remove=(final.with_name(final.name + ".verify.json"),), folder_artefacts=FOLDER_MARKERS)
    return ExportResult(final, export_target.name, report, report_path, list(resolved.notes))


def verify_sizes(writer: ArtefactWriter, path: Path, entries: list[SizedExport]) -> list[SizeVerification]:
    """Every size of the artefact judged against PyTorch at that size."""
    results = []
    verify_one: SizeVerifier | None = None
    for e in entries:
        name = writer.size_name(e)
        try:
            with native_chatter_filtered():
                verify_one = verify_one or writer.verifier(path)
                result = verify_one(e)
        except MvitError:
            raise
        except Exception as exc:  # a runtime that crashes on the artefact is a finding, not a traceback
            where = f"{name} of {path.name}" if writer.form else path.name
            raise ExportError(f"verifying {where} failed: {exc.__class__.__name__}: {one_line(exc)}") from exc
        results.append(SizeVerification(name, e.image_size, e.config, result))
    return results


def build_report(
    export_target: ExportTarget,
    entries: list[SizedExport],
    final: Path,
    staged: Path,
    precision: str,
    form: str | None,
    graph: GraphChecks,
    sizes: list[SizeVerification],
    written: Written,
) -> ExportReport | MultiSizeReport:
    """The report of one artefact, in the single-size shape (form None) or the multi-size one."""
    first = entries[0].prepared
    resolved, opts = first.resolved, first.options[export_target.name]
    several = form is not None
    common = ReportCommon(
        artefact=final.name,
        target=export_target.name,
        model=resolved.name,
        task=resolved.task,
        precision=precision,
        weights=resolved.weights,
        size_bytes=artefact_size_bytes(staged),
        sha256=artefact_sha256(staged),
        preprocess_summary=describe_preprocess(resolved.preprocess),
        assumptions=list(resolved.notes),
        labels_count=len(resolved.labels),
        export_options=opts.as_dict(),
        graph=graph,
        judgement=judge(graph.checks, sizes, prefix_names=several),
        verified_by=verified_by(sizes),
        warnings=[f"{s.name}: {w}" if several else w for s in sizes for w in s.warnings],
    )
    if form is not None:
        return MultiSizeReport(common, form, [e.as_entry() for e in entries], sizes, written.form_fields)
    assert written.one_size is not None
    return ExportReport(
        common,
        config=resolved.config,
        image_size=resolved.image_size,
        image_size_check=first.size_info,
        verification=sizes[0].result if sizes else None,
        request=written.one_size,
        read_back=export_target.report_fields(staged),  # read back from the artefact: its own output names, its Xcode preview
    )
