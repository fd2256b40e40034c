"""Does interleaving change what a runtime measures? An artefact against a byte copy of itself.

    python -m mvit.benchmarks.solo_check exports/mobilevit_xs_A_256_fp32.onnx --threads 2 [--old]

Both copies are timed alone and interleaved, in alternating short segments so that both see the
same load of a shared machine; `--old` times call by call with ONNX Runtime's threads spinning
after each call (the runtime's default), to show what `ab`'s blocks and spin stop avoid.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
from pathlib import Path

import numpy as np

from .timing import Blocks, time_interleaved

CALL_BY_CALL = Blocks(calls=1, discard=0)


def interleaved_and_solo(base: Path, copy: Path, threads: int, segments: int = 16, runs: int = 8, old: bool = False) -> list[tuple[list[float], list[float]]]:
    """Per side, (interleaved times, solo times) in ms."""
    from .ab import BLOCKS, artefact_model
    from .runtimes import artefact_runtime, example_input, load_artefact

    runtime = artefact_runtime(base)
    x = example_input(artefact_model(base, runtime, None))
    # Loaded and interleaved the way mvit-bench ab does it (or did, with --old).
    sides = [load_artefact(runtime, path, threads, x, spinning=old) for path in (base, copy)]
    together: list[list[float]] = [[], []]
    solo: list[list[float]] = [[], []]
    for _ in range(segments):
        for k, side in enumerate(sides):
            solo[k] += side.timed(2, runs, None)[1]
        blocks = CALL_BY_CALL if old else BLOCKS
        for k, times in enumerate(time_interleaved([side.infer for side in sides], runs, 1, blocks)):
            together[k] += times
    return list(zip(together, solo))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("artefact", type=Path)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--segments", type=int, default=16)
    parser.add_argument("--runs", type=int, default=8, help="timed calls per side per segment")
    parser.add_argument("--old", action="store_true", help="call by call, threads spinning (the runtime's default), for comparison")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / f"copy{args.artefact.suffix}"
        shutil.copyfile(args.artefact, copy)
        sides = interleaved_and_solo(args.artefact, copy, args.threads, args.segments, args.runs, args.old)
    for name, (together, solo) in zip(("artefact", "copy"), sides):
        print(
            f"{name}: solo median {statistics.median(solo):.2f} ms, interleaved {statistics.median(together):.2f} ms "
            f"(x{statistics.median(together) / statistics.median(solo):.3f}); fast quartile "
            f"{np.percentile(solo, 25):.2f} / {np.percentile(together, 25):.2f} ms"
        )


if __name__ == "__main__":
    main()
