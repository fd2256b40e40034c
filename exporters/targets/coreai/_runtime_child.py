"""The child side of `runtime.py`: runs one request against coreai-core's runtime and exits.

Run as `python -m <this package>._runtime_child WORKDIR`. WORKDIR holds `request.json` and
`inputs.npz` (keys `<index>:<input name>`); the child writes `outputs.npz` (same keys) and
`result.json`. Only this process loads Apple's runtime, so a crash in it ends this process alone.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

REQUEST, INPUTS, OUTPUTS, RESULT = "request.json", "inputs.npz", "outputs.npz", "result.json"


class BadRequest(Exception):
    """The caller named a function or input the asset does not have (the parent reports exit 2)."""


def split_key(key: str) -> tuple[int, str]:
    index, _, name = key.partition(":")
    return int(index), name


def save_arrays(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """np.savez under keys the stubs cannot tell apart from its own keyword arguments."""
    writer: Any = np.savez
    writer(path, **arrays)


def _numpy_dtype(runtime_dtype: str) -> np.dtype:
    """The numpy dtype of a runtime dtype name ("float32", "float16", "bfloat16", ...)."""
    from coreai.runtime._ndarray import _RUNTIME_TO_NUMPY_DTYPE  # the runtime's own name table

    return np.dtype(_RUNTIME_TO_NUMPY_DTYPE.get(runtime_dtype, runtime_dtype))


def _prepared(function: Any, inputs: dict[str, np.ndarray]) -> dict[str, Any]:
    """Inputs as the function declares them: the runtime refuses any other dtype, so values are cast."""
    from coreai.runtime import NDArray

    desc = function.desc
    expected = list(desc.input_names)
    if sorted(inputs) != sorted(expected):
        raise BadRequest(f"function {desc.name!r} takes inputs {expected}, was given {sorted(inputs)}")
    prepared = {}
    for name in expected:
        declared = desc.input_descriptor(name)
        shape = list(declared.shape)
        value = inputs[name]
        if len(shape) != value.ndim or any(d is not None and d != s for d, s in zip(shape, value.shape)):
            raise BadRequest(f"input {name!r} of {desc.name!r} has shape {shape}, was given {list(value.shape)}")
        prepared[name] = NDArray(np.ascontiguousarray(value.astype(_numpy_dtype(declared.dtype), copy=False)))
    return prepared


async def _serve(request: dict, inputs: list[dict[str, np.ndarray]]) -> dict:
    from coreai.authoring.asset import AIModelAsset
    from coreai.runtime import NDArray

    asset = AIModelAsset.load(request["asset"])
    async with asset.executable() as model:
        names = list(model.function_names)
        if request["op"] == "functions":
            return {"functions": names}
        if request["function"] not in names:
            raise BadRequest(f"has no function {request['function']!r}; it has {', '.join(names)}")
        function = model.load_function(request["function"])
        prepared = [_prepared(function, one) for one in inputs]
        if request["op"] == "time":
            for _ in range(request["warmup"]):
                await function(prepared[0])
            times = []
            for _ in range(request["runs"]):
                start = time.perf_counter()
                await function(prepared[0])
                times.append(time.perf_counter() - start)
            return {"times": times}
        outputs: dict[str, np.ndarray] = {}
        order = list(function.desc.output_names)
        for index, one in enumerate(prepared):
            got = await function(one)
            for name in order:
                value = got[name]
                if not isinstance(value, NDArray):
                    raise BadRequest(f"output {name!r} is an image; mvit reads array outputs only")
                outputs[f"{index}:{name}"] = np.array(value.numpy(), copy=True)  # the runtime's buffer dies with the model
        save_arrays(Path(request["workdir"]) / OUTPUTS, outputs)
        return {"outputs": order}


def main(workdir: str) -> int:
    # Ctrl-C and SIGTERM are the parent's to handle: it ends this process when it stops waiting.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    folder = Path(workdir)
    request = json.loads((folder / REQUEST).read_text())
    request["workdir"] = workdir
    inputs: list[dict[str, np.ndarray]] = [{} for _ in range(request.get("count", 0))]
    if (folder / INPUTS).exists():
        with np.load(folder / INPUTS, allow_pickle=False) as stored:
            for key in stored.files:
                index, name = split_key(key)
                inputs[index][name] = stored[key]
    try:
        result = asyncio.run(_serve(request, inputs))
        result["status"] = "ok"
    except BadRequest as exc:
        result = {"status": "bad-request", "message": str(exc)}
    except Exception as exc:  # the runtime's own errors: reported by the parent as one line
        first = next((line.strip() for line in str(exc).splitlines() if line.strip()), "")
        result = {"status": "failed", "message": f"{exc.__class__.__name__}: {first}" if first else exc.__class__.__name__}
    (folder / RESULT).write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    code = main(sys.argv[1])
    # coreai-core 1.0.0b3 aborts at interpreter shutdown in about one run of three (SIGABRT after
    # every output was written, measured on this Linux build): the answer is on disk, so leave
    # without running the runtime's teardown.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
