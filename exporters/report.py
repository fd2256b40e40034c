"""The JSON report written beside each artefact (atomically, with normal file modes), and the typed
values it is made of: the graph's checks, each size's verification, and the report itself in its
single-size and multi-size shapes. `as_dict()` is the JSON form; the keys are the report schema."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .checks import Check, checks_as_dicts, failures
from .lower_rank import RankLowering
from .verification import Verification

REPORT_SCHEMA = "mvit-export-report/1"
FUNCTIONS_KEY = "functions"  # metadata and report: JSON list of {"name", "image_size", "config"}, default first


def report_path_for(artefact: Path) -> Path:
    return artefact.with_name(artefact.name + ".report.json")


@dataclass
class GraphChecks:
    """What the saved graph is made of, and the checks on it (BN fused, rank, the format's own rules)."""

    op_histogram: dict[str, int]
    max_tensor_rank: int
    batchnorm_ops: list[str]
    structure: dict[str, Any]  # the format's own summary (CoreML: validate.py); empty when it has none
    checks: list[Check]

    def fields(self) -> dict[str, Any]:
        graph: dict[str, Any] = {"op_histogram": self.op_histogram, "max_tensor_rank": self.max_tensor_rank, "batchnorm_ops": self.batchnorm_ops}
        if self.structure:
            graph["structure"] = self.structure
        return graph


@dataclass
class SizeVerification:
    """One size of an artefact (one function / signature; the whole artefact for a single size)
    judged against PyTorch."""

    name: str
    image_size: int
    config: str
    result: Verification

    @property
    def verdict(self) -> str:
        return self.result.verdict

    @property
    def verified_by(self) -> str | None:
        return self.result.verified_by

    @property
    def failed(self) -> list[str]:
        return failures(self.result.checks)

    @property
    def warnings(self) -> list[str]:
        return list(self.result.warnings or [])

    def as_dict(self) -> dict[str, Any]:
        """The report's per_size entry."""
        return {
            "name": self.name,
            "image_size": self.image_size,
            "config": self.config,
            "verdict": self.verdict,
            "verified_by": self.verified_by,
            "failed": self.failed,
            "verification": self.result.as_dict(),
        }


@dataclass
class Judgement:
    """One verdict of an artefact from its graph checks and every size's verification."""

    verdict: str
    failed: list[str]


def judge(checks: list[Check], sizes: list[SizeVerification], prefix_names: bool) -> Judgement:
    """fail on any failed check; pass only when every size was verified and passed."""
    failed = failures(checks)
    failed += [f"{s.name}: {f}" if prefix_names else f for s in sizes for f in s.failed]
    if failed:
        return Judgement("fail", failed)
    if sizes and all(s.verdict == "pass" for s in sizes):
        return Judgement("pass", failed)
    return Judgement("not-verified", failed)


def verified_by(sizes: list[SizeVerification]) -> str | None:
    """Who ran the artefact, every runtime once."""
    return "+".join(sorted({str(s.verified_by) for s in sizes if s.verified_by})) or None


@dataclass
class ReportCommon:
    """What every export report says, for one size or several."""

    artefact: str
    target: str
    model: str
    task: str
    precision: str
    weights: str
    size_bytes: int
    sha256: str
    preprocess_summary: str
    assumptions: list[str]
    labels_count: int
    export_options: dict[str, Any]
    graph: GraphChecks
    judgement: Judgement
    verified_by: str | None
    warnings: list[str]

    def as_dict(self) -> dict[str, Any]:
        return {
            "artefact": self.artefact,
            "target": self.target,
            "model": self.model,
            "task": self.task,
            "precision": self.precision,
            "weights": self.weights,
            "size_bytes": self.size_bytes,
            "sha256": self.sha256,
            "preprocess_summary": self.preprocess_summary,
            "assumptions": self.assumptions,
            "labels_count": self.labels_count,
            "export_options": self.export_options,
            **self.graph.fields(),
            "graph_checks": checks_as_dicts(self.graph.checks),
            "failed": self.judgement.failed,
            "verdict": self.judgement.verdict,
            "verified_by": self.verified_by,
            "warnings": self.warnings,
        }


@dataclass(frozen=True)
class SizeFit:
    """How an input size fits the network's patch blocks: the report's image_size_check."""

    feature_maps_resized: bool  # some block resizes its feature map to a multiple of its patch
    size_multiple: int  # the sizes that need no resize are multiples of this

    def as_dict(self) -> dict[str, Any]:
        return {"feature_maps_resized": self.feature_maps_resized, "size_multiple": self.size_multiple}


@dataclass(frozen=True)
class ArtefactInput:
    """The artefact's input as an app feeds it."""

    name: str
    shape: list[int]
    layout: str  # "NCHW" | "NHWC"

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "shape": self.shape, "layout": self.layout}


@dataclass
class OneSizeFields:
    """What a single-size report says of the request its target was given."""

    input: ArtefactInput
    output_names: list[str]
    preprocess: dict[str, Any]
    quantisation: dict[str, Any] | None  # how a quantised artefact was quantised: settings, sensitivity table
    rank_lowering: RankLowering | None  # what was rewritten to keep every tensor at rank <= 5
    export_rewrites: dict[str, Any] | None  # exporters/rewrites/: what the traced module differs by


@dataclass
class ExportReport:
    """The report of a single-size artefact."""

    common: ReportCommon
    config: str
    image_size: int
    image_size_check: SizeFit
    verification: Verification | None
    request: OneSizeFields
    read_back: dict[str, Any]  # the target's view of the saved artefact (its output names, Xcode preview)

    def as_dict(self) -> dict[str, Any]:
        report = {
            **self.common.as_dict(),
            "config": self.config,
            "image_size": self.image_size,
            "input": self.request.input.as_dict(),
            "output_names": self.request.output_names,
            "preprocess": self.request.preprocess,
            "image_size_check": self.image_size_check.as_dict(),
            "verification": self.verification.as_dict() if self.verification else None,
            "quantisation": self.request.quantisation,
            **self.read_back,
        }
        if self.request.rank_lowering and self.request.rank_lowering.rewrites:
            report["rank_lowering"] = self.request.rank_lowering.as_dict()
        if self.request.export_rewrites:
            report["export_rewrites"] = self.request.export_rewrites
        return report


@dataclass
class MultiSizeReport:
    """The report of an artefact holding several sizes / configs."""

    common: ReportCommon
    form: str
    entries: list[dict[str, Any]]  # recorded as FUNCTIONS_KEY, default first
    per_size: list[SizeVerification]
    form_fields: dict[str, Any] = field(default_factory=dict)  # what the target's writer says of its form

    def as_dict(self) -> dict[str, Any]:
        form_fields = dict(self.form_fields)
        if "single_size_bytes" in form_fields:
            form_fields["size_ratio"] = round(self.common.size_bytes / form_fields["single_size_bytes"], 4)
        report = {
            **self.common.as_dict(),
            "form": self.form,
            "configs": list(dict.fromkeys(e["config"] for e in self.entries)),
            "image_sizes": list(dict.fromkeys(e["image_size"] for e in self.entries)),
            FUNCTIONS_KEY: self.entries,
            "default_function": self.entries[0]["name"] if self.form == "functions" else None,
            "per_size": [s.as_dict() for s in self.per_size],
        }
        report.update(form_fields)
        return report
