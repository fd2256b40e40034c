"""Timing a runtime at its own solo speed, also when another runtime shares the process.

Measured on the 2-core CI machine kind (docs/benchmark-results.md): two ONNX Runtime sessions alternating call by
call ran 21.8 and 20.9 ms against 10.1 ms alone, because after a call returns each session's worker
threads keep spinning and take the cores from the other. Two things bring every runtime back
within 1-5% of its solo speed: the runtime stops spinning when a call returns (ONNX Runtime's
`session.force_spinning_stop`, set where artefacts are loaded: `runtimes.load_artefact`), and the
sides alternate in short blocks rather than call by call, the first calls of each block untimed:
they pay for the switch (the other side's weights evicted from the caches, its threads still
winding down).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from mvit.exporters.profiling import Clock, timed_call  # one call in ms, shared with the targets' op profilers


@dataclass(frozen=True)
class Blocks:
    """`calls` consecutive calls of one side, the first `discard` of them untimed."""

    calls: int = 4
    discard: int = 2

    def __post_init__(self) -> None:
        if not 0 <= self.discard < self.calls:
            raise ValueError(f"a block of {self.calls} calls cannot discard {self.discard}; keep at least one")

    @property
    def kept(self) -> int:
        return self.calls - self.discard


def time_interleaved(
    infers: Sequence[Callable[[], object]],
    runs: int,
    warmups: int = 0,
    blocks: Blocks = Blocks(),
    clock: Clock = time.perf_counter_ns,
    on_step: Callable[[], None] | None = None,
) -> list[list[float]]:
    """`runs` timed calls per side, the sides taking turns in blocks; times in ms, per side.

    Each side first runs `warmups` untimed calls. Then rounds: every side runs one block, in
    ABBA order (round 0: A then B, round 1: B then A, ...), so neither side always follows the
    other. The i-th time of every side comes from the same round: those are the pairs a paired
    verdict compares. `on_step` is called once per warm-up round and once per kept pair."""
    times: list[list[float]] = [[] for _ in infers]
    for _ in range(warmups):
        for infer in infers:
            infer()
        if on_step:
            on_step()
    order = list(range(len(infers)))
    round_index = 0
    while len(times[0]) < runs:
        wanted = min(blocks.kept, runs - len(times[0]))
        for side in order if round_index % 2 == 0 else order[::-1]:
            for call in range(blocks.discard + wanted):
                ms = timed_call(infers[side], clock)
                if call >= blocks.discard:
                    times[side].append(ms)
        if on_step:
            for _ in range(wanted):
                on_step()
        round_index += 1
    return times
