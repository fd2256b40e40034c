"""One judged figure of an export (a graph rule, a numeric comparison, a task's agreement), and
how failures are said. `Check.as_dict()` is its JSON form in every report."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Check:
    """A value against a limit it must reach ("min") or stay within ("max")."""

    name: str
    value: float
    limit: float
    kind: str  # "min" | "max"
    passed: bool
    detail: str | None = None  # where it failed, when the figure alone does not say

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"check": self.name, "value": self.value, "limit": self.limit, "kind": self.kind, "passed": self.passed}
        if self.detail is not None:
            out["detail"] = self.detail
        return out


def check(name: str, value: float, limit: float, at_least: bool, detail: str | None = None) -> Check:
    """`value` judged against `limit`: at least it (at_least) or at most it."""
    ok = bool(value >= limit) if at_least else bool(value <= limit)
    return Check(name, float(value), float(limit), "min" if at_least else "max", ok, detail)


def checks_as_dicts(checks: list[Check]) -> list[dict[str, Any]]:
    return [c.as_dict() for c in checks]


def describe_failure(check: Check) -> str:
    op = "<" if check.kind == "min" else ">"
    detail = f" ({check.detail})" if check.detail else ""
    return f"{check.name} = {check.value:.3g} {op} limit {check.limit:.3g}{detail}"


def failures(checks: list[Check]) -> list[str]:
    return [describe_failure(c) for c in checks if not c.passed]
