"""Op counts and the largest tensor rank of an `.aimodel`'s program, read in a child process.

Parsing bytecode goes through the same native library as running it, and damaged bytecode can abort
that process: `summarise` runs `python -m <this module> ASSET` and turns a crash into one line.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

from mvit.errors import EXIT_FAILED, MvitError

from .asset_files import check_asset
from .runtime import _child_env


class UnreadableProgram(MvitError):
    """The asset passed its folder checks but its program cannot be parsed (exit 1: a failed check)."""

    exit_code = EXIT_FAILED


def summarise(path: Path) -> dict[str, Any]:
    """{"ops": {op name: count}, "max_rank": int} of the asset's program."""
    check_asset(path)
    with tempfile.TemporaryDirectory(prefix="mvit-coreai-") as work:
        done = subprocess.run(
            [sys.executable, "-m", __name__, str(Path(path).resolve())], capture_output=True, env=_child_env(Path(work)), stdin=subprocess.DEVNULL, check=False
        )
    if done.returncode != 0:
        last = next((line for line in reversed(done.stderr.decode("utf-8", "replace").splitlines()) if line.strip()), "")
        raise UnreadableProgram(
            f"the Core AI program of {Path(path).name} cannot be read (exit status {done.returncode}"
            f"{': ' + last.strip()[:200] if last else ''}); the asset is damaged: re-export it"
        )
    return json.loads(done.stdout.decode("utf-8").splitlines()[-1])


def _tensor_rank(type_text: str) -> int:
    """'tensor<1x8x30x30xf32>' -> 4; other types (tokens, scalars) count as rank 0."""
    if not type_text.startswith("tensor<"):
        return 0
    return len(type_text[len("tensor<") : -1].split("x")) - 1


def _walk(operation: Any, ops: Counter, ranks: list[int]) -> None:
    ops[operation.name] += 1
    ranks.extend(_tensor_rank(str(result.type)) for result in operation.results)
    for region in operation.regions:
        for block in region.blocks:
            ranks.extend(_tensor_rank(str(arg.type)) for arg in block.arguments)
            for child in block.operations:
                _walk(child.operation, ops, ranks)


def main(asset: str) -> int:
    from coreai.authoring.asset import AIModelAsset

    module = AIModelAsset.load(asset).program._module._mlir_module
    ops: Counter = Counter()
    ranks: list[int] = []
    _walk(module.operation, ops, ranks)
    ops.pop("builtin.module", None)
    print(json.dumps({"ops": dict(sorted(ops.items())), "max_rank": max(ranks, default=0)}))
    return 0


if __name__ == "__main__":
    code = main(sys.argv[1])
    sys.stdout.flush()
    os._exit(code)  # coreai-core can abort at interpreter shutdown (see _runtime_child.py)
