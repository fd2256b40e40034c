"""Compact program text for a multifunction package, which shares the weights but repeats the
program once per function (exporters/targets/coreml/multifunction.py).

Repeated constants: coremltools deduplicates only large constants, so each mobilevit_xxs function
held 518 const ops of which 352 repeated another's value (axes, shapes, epsilons, weight references).
Const ops are pure, so every later copy is dropped and its readers read the first.

Short names: coremltools names each value after the PyTorch node it came from (`var_1234_cast_fp16`,
`model_stage_3_transformer_0_attn_qkv_weight_to_fp16`) and stores the name up to three times:
the op's `name` attribute, its output, and every input that reads it. Renaming is a pure
relabelling of SSA values inside one function: inputs and outputs of the function (the feature
names the app sees) keep their names, and the new names follow the order of the ops, so the bytes
stay deterministic. Together: 164 KB -> 80 KB of program per XXS function (docs/exporting.md).
"""

from __future__ import annotations

from typing import Any


def compact_program(program: Any) -> None:
    """Drop repeated constants, then shorten value names, in every function of a MIL `Program` proto."""
    drop_repeated_consts(program)
    shorten_value_names(program)


def drop_repeated_consts(program: Any) -> None:
    """In each function's top-level block, a const op whose value and type equal an earlier one's
    is removed and its readers bound to the earlier one (which, ops being in order, comes first)."""
    for name in sorted(program.functions):
        function = program.functions[name]
        for block in function.block_specializations.values():
            kept = set(block.outputs)
            first: dict[bytes, str] = {}
            alias: dict[str, str] = {}
            survivors = []
            for op in block.operations:
                if (
                    op.type == "const"
                    and len(op.outputs) == 1
                    and set(op.attributes) <= {"name", "val"}
                    and not op.inputs
                    and not op.blocks
                    and op.outputs[0].name not in kept
                ):
                    key = op.outputs[0].type.SerializeToString(deterministic=True) + b"\0" + op.attributes["val"].SerializeToString(deterministic=True)
                    if key in first:
                        alias[op.outputs[0].name] = first[key]
                        continue
                    first[key] = op.outputs[0].name
                survivors.append(op)
            if alias:
                for op in survivors:
                    _rebind(op, alias)
                del block.operations[:]
                block.operations.extend(survivors)


def _rebind(op: Any, alias: dict[str, str]) -> None:
    for argument in op.inputs.values():
        for binding in argument.arguments:
            if binding.WhichOneof("binding") == "name" and binding.name in alias:
                binding.name = alias[binding.name]
    for nested in op.blocks:
        nested.outputs[:] = [alias.get(o, o) for o in nested.outputs]
        for inner in nested.operations:
            _rebind(inner, alias)


def shorten_value_names(program: Any) -> None:
    """Rename, in place, every value of every function of a MIL `Program` proto except the
    function's inputs and outputs; each op's `name` attribute becomes its first output's name."""
    for name in sorted(program.functions):
        function = program.functions[name]
        kept = {i.name for i in function.inputs}
        for block in function.block_specializations.values():
            kept.update(block.outputs)
        names = _Names(kept)
        for opset in sorted(function.block_specializations):
            _rename_block(function.block_specializations[opset], names, top_level=True)


class _Names:
    def __init__(self, kept: set[str]) -> None:
        self.kept = kept
        self.new: dict[str, str] = {}
        self._count = 0

    def assign(self, old: str) -> str:
        if old in self.kept:
            return old
        if old not in self.new:
            short = _base36(self._count)
            self._count += 1
            while short in self.kept:  # never take a feature name the app sees
                short = _base36(self._count)
                self._count += 1
            self.new[old] = short
        return self.new[old]

    def read(self, old: str) -> str:
        return self.new.get(old, old)


def _rename_block(block: Any, names: _Names, top_level: bool) -> None:
    if not top_level:  # a nested block's inputs are values of the function too (loop variables)
        for value in block.inputs:
            value.name = names.assign(value.name)
    for op in block.operations:
        for argument in op.inputs.values():
            for binding in argument.arguments:
                if binding.WhichOneof("binding") == "name":
                    binding.name = names.read(binding.name)
        for output in op.outputs:
            output.name = names.assign(output.name)
        for nested in op.blocks:
            _rename_block(nested, names, top_level=False)
        if "name" in op.attributes and op.outputs:
            label = op.attributes["name"].immediateValue.tensor.strings.values
            if len(label) == 1:
                label[0] = op.outputs[0].name
    if not top_level:
        block.outputs[:] = [names.read(o) for o in block.outputs]


def _base36(n: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        n, r = divmod(n, 36)
        out = digits[r] + out
        if n == 0:
            return "v" + out
