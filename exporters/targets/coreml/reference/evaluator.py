"""Run a MIL program op by op in torch (float32), optionally emulating fp16 storage.

fp16 emulation: every op output typed fp16 in the program is rounded to fp16 (round to nearest
even; overflow becomes inf), so the result carries the storage error a device running the fp16
program shows. Arithmetic inside one op is float32, so accumulation error on the Neural Engine
(fp16 accumulators) is not modelled: expect the device to differ a little more than this.
With fp16_emulation=False the same program runs entirely in float32 (the program's ideal).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from .errors import MilReferenceError, UnsupportedOpError
from .ops import OPS

# Ops whose outputs the loader already knows: const, and the constexpr_* family (compressed
# weights that Core ML decompresses at load time; coremltools computes their value on load).
_CONSTANT_OPS = ("const",)


def is_constant_op(op_type: str) -> bool:
    return op_type in _CONSTANT_OPS or op_type.startswith("constexpr_")


def supported(op_type: str) -> bool:
    return is_constant_op(op_type) or op_type in OPS


def _to_value(val: Any) -> Any:
    """A const value from the program (numpy, python scalar, str, list) -> what ops receive."""
    if isinstance(val, (str, np.str_)):
        return str(val)
    if isinstance(val, (list, tuple)):
        return [_to_value(v) for v in val]
    if isinstance(val, (bool, np.bool_)):
        return torch.tensor(bool(val))
    arr = np.asarray(val)
    if arr.dtype.kind in "US":
        return [str(v) for v in arr.reshape(-1)] if arr.ndim else str(arr)
    if arr.dtype.kind == "O":
        return [_to_value(v) for v in arr.reshape(-1)]
    if arr.dtype.kind == "f":
        return torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32))
    if arr.dtype == np.uint16 or arr.dtype == np.uint32:
        arr = arr.astype(np.int64)
    return torch.from_numpy(np.ascontiguousarray(arr))


def _dtype_name(var) -> str:
    from coremltools.converters.mil.mil import types
    from coremltools.converters.mil.mil.var import ListVar

    if isinstance(var, ListVar):  # e.g. the class labels of `classify`: no element dtype
        return "list"
    return types.builtin_to_string(var.dtype)


def _round_fp16(value: Any) -> Any:
    if isinstance(value, torch.Tensor) and value.is_floating_point():
        return value.to(torch.float16).to(torch.float32)
    return value


class ProgramEvaluator:
    """Evaluates the `main` function of a MIL program for given input tensors."""

    def __init__(self, program, fp16_emulation: bool = True) -> None:
        self.function = program.functions.get("main")
        if self.function is None:
            raise MilReferenceError("the ML Program has no 'main' function")
        self.fp16_emulation = fp16_emulation
        missing = sorted({op.op_type for op in self.function.operations if not supported(op.op_type)})
        if missing:
            raise UnsupportedOpError(missing)
        # Names of the fp16-typed values (op outputs and inputs), looked up once.
        self._fp16 = {v.name for v in self.function.inputs.values() if _dtype_name(v) == "fp16"}
        for op in self.function.operations:
            self._fp16.update(v.name for v in op.outputs if _dtype_name(v) == "fp16")
        self._expanded: dict[str, Any] = {}  # constexpr outputs: expanded once, as Core ML does at load

    @property
    def has_fp16_values(self) -> bool:
        """True for a program that stores values in fp16 (compute_precision FLOAT16)."""
        return bool(self._fp16)

    @property
    def input_names(self) -> list[str]:
        return list(self.function.inputs)

    def input_shape(self, name: str) -> tuple[int, ...] | None:
        """The input's static shape, or None when a dimension is symbolic (flexible shapes)."""
        shape = self.function.inputs[name].shape
        return tuple(int(d) for d in shape) if all(isinstance(d, (int, np.integer)) for d in shape) else None

    def run(self, feeds: dict[str, np.ndarray], capture: str | None = None, observe: Any = None) -> dict[str, Any]:
        """Outputs by name; with `capture` (an op type) also the inputs of its first op, under
        "<op type>:<input name>" keys (how verification reads what the NMS op was given).
        `observe(op, env)` is called after each op (how int8 calibration reads activation ranges)."""
        env: dict[str, Any] = {}
        for name, var in self.function.inputs.items():
            if name not in feeds:
                raise MilReferenceError(f"missing input {name!r}; the program takes {list(self.function.inputs)}")
            value = _to_value(np.asarray(feeds[name]))
            want = self.input_shape(name)
            if want is not None and tuple(value.shape) != want:
                raise MilReferenceError(f"input {name!r}: got shape {list(value.shape)}, the program expects {list(want)}")
            env[name] = self._store(var, value)
        captured: dict[str, Any] = {}
        for op in self.function.operations:
            if capture and op.op_type == capture and not captured:
                captured = {f"{capture}:{k}": self._lookup(v, env) for k, v in op.inputs.items() if not isinstance(v, (list, tuple))}
            self._run_op(op, env)
            if observe is not None:
                observe(op, env)
        return {**captured, **{var.name: env[var.name] for var in self.function.outputs}}

    def _store(self, var, value: Any) -> Any:
        if self.fp16_emulation and var.name in self._fp16:
            return _round_fp16(value)
        return value

    def _lookup(self, var, env: dict[str, Any]) -> Any:
        if var.name in env:
            return env[var.name]
        if var.val is not None:  # a default input that coremltools filled in as a constant
            return _to_value(var.val)
        raise MilReferenceError(f"variable {var.name!r} is used before it is computed")

    def _run_op(self, op, env: dict[str, Any]) -> None:
        # Compressed weights with an op of their own are expanded by it (an independent reading of
        # the spec); other constexpr ops fall back to coremltools' value inference below.
        if is_constant_op(op.op_type) and op.op_type not in OPS:
            values = [var.val for var in op.outputs]
            if any(v is None for v in values) and hasattr(op, "materialized_val_inference"):
                # Compressed weights (constexpr_*): decompressed with the op definition's own
                # numpy, as Core ML decompresses them once at load time.
                materialized = op.materialized_val_inference()
                values = list(materialized) if isinstance(materialized, tuple) else [materialized]
            for var, val in zip(op.outputs, values):
                if val is None:
                    raise MilReferenceError(f"{op.op_type} op {op.name!r} has no value after loading")
                env[var.name] = self._store(var, _to_value(val))
            return
        if op.name in self._expanded:
            env[op.outputs[0].name] = self._expanded[op.name]
            return
        fn = OPS.get(op.op_type)
        if fn is None or op.blocks:
            raise UnsupportedOpError([op.op_type], op.name)
        kwargs = {}
        for key, arg in op.inputs.items():
            if isinstance(arg, (list, tuple)):
                kwargs[key] = [self._lookup(v, env) for v in arg]
            else:
                kwargs[key] = self._lookup(arg, env)
        try:
            result = fn(**kwargs)
        except MilReferenceError:
            raise
        except Exception as exc:
            raise MilReferenceError(f"evaluating {op.op_type} op {op.name!r} failed: {exc}") from exc
        results = result if isinstance(result, tuple) else (result,)
        if len(results) != len(op.outputs):
            raise MilReferenceError(f"{op.op_type} op {op.name!r}: {len(results)} results for {len(op.outputs)} outputs")
        for var, value in zip(op.outputs, results):
            env[var.name] = self._store(var, value)
        if is_constant_op(op.op_type) and len(op.outputs) == 1:
            self._expanded[op.name] = env[op.outputs[0].name]
