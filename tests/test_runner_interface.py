"""The runner interface's shared answers: many inputs run one by one, and the generic timing loop."""

from __future__ import annotations

import numpy as np
import pytest

from mvit.exporters.base import RunnerDefaults


class Doubler(RunnerDefaults):
    input_names = ["image"]
    output_names = ["doubled"]

    def __init__(self) -> None:
        self.calls = 0

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        self.calls += 1
        return {"doubled": inputs["image"] * 2}


def test_run_many_runs_each_input_in_order():
    runner = Doubler()
    feeds = [{"image": np.full((1, 3), float(i), np.float32)} for i in range(4)]
    outputs = runner.run_many(feeds)
    assert runner.calls == 4
    assert [float(out["doubled"][0, 0]) for out in outputs] == [0.0, 2.0, 4.0, 6.0]


def test_time_runs_times_every_run_after_the_first_and_the_warmups():
    runner = Doubler()
    steps: list[int] = []
    first_ms, times = runner.time_runs({"image": np.ones((1, 3), np.float32)}, warmups=2, runs=5, on_step=lambda: steps.append(1))
    assert runner.calls == 1 + 2 + 5
    assert len(times) == 5 and len(steps) == 2 + 5
    assert first_ms >= 0 and all(t >= 0 for t in times)


def test_a_runner_without_run_cannot_be_made():
    class NoRun(RunnerDefaults):
        pass

    with pytest.raises(TypeError):
        NoRun()  # type: ignore[abstract]


def test_defaults_have_no_nms_tap_and_name_no_runtime():
    runner = Doubler()
    assert runner.pre_nms({"image": np.ones((1, 3), np.float32)}) is None
    assert runner.verified_by == "unknown"
