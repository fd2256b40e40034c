"""What a target's op profiler answers (its `op_profiler`): where the milliseconds go by op type,
and where each op runs. `mvit-bench profile` and the placement step of `mvit-bench ci` show and
compare them; a target without a per-op view on this host has none."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

Clock = Callable[[], int]  # nanoseconds, like time.perf_counter_ns
Example = Callable[[], np.ndarray]  # the input to run; may say the artefact cannot run here


def timed_call(infer: Callable[[], object], clock: Clock = time.perf_counter_ns) -> float:
    """One call, in ms."""
    start = clock()
    infer()
    return (clock() - start) / 1e6


def first_line(exc: Exception) -> str:
    """A runtime's error in one short line (they raise multi-line text)."""
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]


@dataclass
class OpTime:
    op_type: str
    total_ms: float  # per run
    percent: float  # of all node time
    count: int  # nodes of this type in one run


@dataclass
class Profile:
    artefact: str
    runtime: str
    threads: int
    runs: int
    median_run_ms: float  # whole call, as the runtime reports it (ORT) or timed here (LiteRT)
    op_times: list[OpTime] = field(default_factory=list)  # slowest first; empty where not offered
    op_counts: dict[str, int] = field(default_factory=dict)  # every op in the graph, by type
    delegated: dict[str, int] = field(default_factory=dict)  # LiteRT: ops the XNNPACK delegate runs
    not_delegated: dict[str, int] = field(default_factory=dict)  # LiteRT: ops the interpreter runs
    partitions: int | None = None  # LiteRT: XNNPACK partitions (1 = the whole graph in one)
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class Placement:
    runtime: str
    places: dict[str, dict[str, int]]  # place -> op type -> count ("*" when only totals are known)
    partitions: int | None = None  # LiteRT: XNNPACK partitions
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return asdict(self)


class OpProfiler(Protocol):
    """A target's per-op views of its artefacts on this host. Each raises ExportError (one line) when
    the artefact cannot be profiled; `example()` builds the input and is asked for only once the
    profiler knows it has a view to give."""

    def profile(self, path: Path, example: Example, threads: int, warmups: int, runs: int) -> Profile:
        """Time by op type where the runtime reports it, else op counts and the whole call's median."""

    def placement(self, path: Path, example: Example) -> Placement:
        """Place -> op type -> count: where the runtime runs each op."""
