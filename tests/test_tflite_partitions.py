"""Every default TFLite export runs in one XNNPACK partition (issue 14).

The BGR flip (REVERSE_V2) was not delegated and split the graph in two; it is now folded into
the stem conv (exporters/rewrites/fold_preprocessing.py), and SSDLite's six-way concatenation,
which XNNPACK does not take, is split (rewrites/short_concats.py). What stays outside XNNPACK
sits after the network's one partition: the classifier's class_id (ARG_MAX over the
probabilities) and the detector's TFLite_Detection_PostProcess (NMS, a custom op no delegate
takes). After that op, exporters/targets/tflite/nms.py casts the 200 class indices to int32 and then adds 1: an int32
ADD, which XNNPACK does not take (a float ADD there was a second, 200-element partition).
"""

from __future__ import annotations

import re

import pytest
from trained_fixtures import FIXTURES

from mvit.benchmarks.cli import main as bench_main
from mvit.exporters.cli import main as export_main

pytestmark = pytest.mark.slow

OUTSIDE_AFTER_THE_PARTITION = {"classification": {"ARG_MAX"}, "segmentation": set(), "detection": {"TFLite_Detection_PostProcess", "CAST", "ADD"}}
PARTITIONS = {"classification": 1, "segmentation": 1, "detection": 1}


@pytest.mark.parametrize("task", sorted(FIXTURES))
def test_default_tflite_export_runs_in_one_xnnpack_partition(task, cli_run, tmp_path):
    fixture = FIXTURES[task]
    code, _, err = cli_run(
        export_main,
        "--target",
        "tflite",
        "--checkpoint",
        str(fixture.checkpoint),
        "--precision",
        "fp32",
        "--image-size",
        str(fixture.image_size),
        "--no-verify",
        "--out",
        str(tmp_path),
    )
    assert code == 0, err
    artefact = next(tmp_path.glob("*.tflite"))
    code, out, err = cli_run(bench_main, "profile", str(artefact), "--threads", "1", "--warmups", "0", "--runs", "1")
    assert code == 0, err
    assert re.search(rf"XNNPACK partitions: {PARTITIONS[task]};", out), out
    assert "REVERSE_V2" not in out
    outside = set(re.findall(r"(\w+) x\d+", out.split("run outside XNNPACK:")[1])) if "run outside XNNPACK:" in out else set()
    assert outside == OUTSIDE_AFTER_THE_PARTITION[task], out
