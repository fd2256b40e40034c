"""`python -m mvit.exporters.targets.coreml.reference PACKAGE...`: which ops a saved ML Program uses and
whether the reference evaluator implements each. Exit 0 when all are, 1 when some are not, 2 on a
bad path. (Numerics against PyTorch: `mvit-verify` / `mvit-export`, which use this evaluator.)"""

from __future__ import annotations

import argparse
import sys

from .errors import MilReferenceError
from .evaluator import supported
from .runner import program_op_types


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mvit.exporters.targets.coreml.reference", description=__doc__)
    parser.add_argument("packages", nargs="+", metavar="PACKAGE", help="a saved .mlpackage (ML Program)")
    args = parser.parse_args(argv)
    missing_any = False
    for path in args.packages:
        try:
            counts = program_op_types(path)
        except MilReferenceError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        missing = sorted(t for t in counts if not supported(t))
        missing_any |= bool(missing)
        print(f"{path}: {sum(counts.values())} ops, {len(counts)} types")
        for op_type, n in counts.items():
            print(f"  {op_type:<28} {n:>5}  {'ok' if supported(op_type) else 'NOT IMPLEMENTED'}")
        if missing:
            print(f"  -> {len(missing)} op type(s) without a reference implementation: {', '.join(missing)}")
    return 1 if missing_any else 0


if __name__ == "__main__":
    sys.exit(main())
