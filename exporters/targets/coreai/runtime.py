"""Run `.aimodel` assets on Linux with coreai-core's runtime, each call in a child process.

Apple's runtime aborts or segfaults on some damaged bytecode, and a crash in-process would kill the
CLI with no message. So every call checks the folder first (asset_files.check_asset), then runs
the runtime in a fresh `python _runtime_child.py` process: a crash there becomes one line here. The
child sits in its own session, so a terminal's Ctrl-C reaches only the parent, which ends the child
and goes on to its usual exit 130.

The runtime is coreai-core's Linux reference path: it proves what the asset computes, and its timings
describe this CPU and this runtime, not a device.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from mvit.errors import EXIT_FAILED, MvitError, one_line
from mvit.reading import printable

from ._runtime_child import INPUTS, OUTPUTS, REQUEST, RESULT, save_arrays, split_key
from .asset_files import DamagedAsset, check_asset, read_metadata

__all__ = ["CoreAIRuntimeFailed", "DamagedAsset", "check_asset", "functions", "read_metadata", "run", "time_runs"]

# Run by path, not `-m`: importing the package would import mvit.exporters (and torch) in every child.
_CHILD = str(Path(__file__).with_name("_runtime_child.py"))


class CoreAIRuntimeFailed(MvitError):
    """Apple's runtime crashed or refused to run an asset that passed the folder checks (exit 1:
    the artefact does not run, which is a failed check, not a bad argument)."""

    exit_code = EXIT_FAILED


class CoreAIRequestError(MvitError):
    """A function or input name the asset does not have (exit 2)."""


def functions(path: str | os.PathLike) -> list[str]:
    """The asset's function names, as the runtime loads them."""
    return list(_call(path, {"op": "functions"}, [])["functions"])


def run(path: str | os.PathLike, function: str, inputs: list[dict[str, np.ndarray]]) -> list[dict[str, np.ndarray]]:
    """The outputs of `function` for each inputs dict, in order; inputs are cast to the declared dtypes."""
    if not inputs:
        return []
    with tempfile.TemporaryDirectory(prefix="mvit-coreai-") as work:
        result = _call(path, {"op": "run", "function": function}, inputs, Path(work))
        outputs: list[dict[str, np.ndarray]] = [{} for _ in inputs]
        with np.load(Path(work) / OUTPUTS, allow_pickle=False) as stored:
            for key in stored.files:
                index, name = split_key(key)
                outputs[index][name] = stored[key]
    order = result["outputs"]
    return [{name: one[name] for name in order} for one in outputs]


def time_runs(path: str | os.PathLike, function: str, inputs: dict[str, np.ndarray], warmup: int, runs: int) -> list[float]:
    """Seconds per run of `function`, timed inside the child around each call, after `warmup` untimed runs."""
    if warmup < 0 or runs < 1:
        raise CoreAIRequestError(f"warmup must be >= 0 and runs >= 1, got {warmup} and {runs}")
    return [float(t) for t in _call(path, {"op": "time", "function": function, "warmup": warmup, "runs": runs}, [inputs])["times"]]


def _call(path: str | os.PathLike, request: dict[str, Any], inputs: list[dict[str, np.ndarray]], work: Path | None = None) -> dict:
    check_asset(path)
    if work is None:
        with tempfile.TemporaryDirectory(prefix="mvit-coreai-") as folder:
            return _call_in(Path(path), request, inputs, Path(folder))
    return _call_in(Path(path), request, inputs, work)


def _call_in(asset: Path, request: dict[str, Any], inputs: list[dict[str, np.ndarray]], work: Path) -> dict:
    (work / REQUEST).write_text(json.dumps({**request, "asset": str(asset.resolve()), "count": len(inputs)}))
    if inputs:
        save_arrays(work / INPUTS, {f"{i}:{name}": np.asarray(value) for i, one in enumerate(inputs) for name, value in one.items()})
    log = work / "child.log"
    debug = bool(os.environ.get("MVIT_DEBUG"))
    with open(log, "wb") as sink:
        child = subprocess.Popen(
            [sys.executable, _CHILD, str(work)],
            env=_child_env(work),
            stdin=subprocess.DEVNULL,
            stdout=None if debug else sink,
            stderr=None if debug else sink,
            start_new_session=True,
        )
        try:
            code = child.wait()
        finally:  # interrupted (KeyboardInterrupt from SIGINT/SIGTERM) or failed: the child must not outlive us
            if child.poll() is None:
                child.kill()
                child.wait()
    what = f"{asset.name}" + (f" function {request['function']!r}" if "function" in request else "")
    result_file = work / RESULT
    if code != 0 or not result_file.is_file():
        raise CoreAIRuntimeFailed(
            f"the Core AI runtime crashed on {what}: {_how_it_ended(code)}{_last_line(log)}; "
            "the asset may be damaged: re-export it (MVIT_DEBUG=1 shows the runtime's own output)"
        )
    result = json.loads(result_file.read_text())
    if result["status"] == "bad-request":
        raise CoreAIRequestError(f"{what}: {result['message']}")
    if result["status"] != "ok":
        raise CoreAIRuntimeFailed(f"the Core AI runtime could not run {what}: {one_line(Exception(result['message']))}")
    return result


def _child_env(work: Path) -> dict[str, str]:
    """The parent's environment with its import path, so the child imports this same tree of mvit, and
    with TMPDIR in `work`: the runtime compiles each asset into a temporary folder that a killed or
    crashed child cannot remove, and `work` goes when the call ends, whatever happened."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    env["TMPDIR"] = str(work)
    return env


def _how_it_ended(code: int) -> str:
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit status {code}"


def _last_line(log: Path) -> str:
    try:
        tail = log.read_bytes()[-4000:].decode("utf-8", "replace")
    except OSError:
        return ""
    lines = [line.strip() for line in tail.splitlines() if line.strip()]
    return f" ({printable(lines[-1])[:200]})" if lines else ""
