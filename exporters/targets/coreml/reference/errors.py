"""Errors of the reference evaluator, each a one-line message saying what was wrong."""

from __future__ import annotations

from mvit.exporters.base import ExportError


class MilReferenceError(ExportError):
    """The package or the inputs cannot be evaluated (bad path, wrong input shape, ...)."""


class UnsupportedOpError(MilReferenceError):
    """The program holds ops with no reference implementation: never skipped, always an error."""

    def __init__(self, op_types: list[str], op_name: str = "") -> None:
        where = f" (op {op_name!r})" if op_name else ""
        names = ", ".join(repr(t) for t in op_types)
        super().__init__(
            f"MIL op{'s' if len(op_types) > 1 else ''} {names}{where} not implemented by the reference "
            "evaluator (mvit.exporters.targets.coreml.reference.ops); add an implementation before trusting "
            "this program's numerics"
        )
        self.op_types = list(op_types)
