"""Writes the iOS-harness results files in tests/data from real exports (tests/harness_goldens.py).

Re-run: .venv/bin/python tests/data/make_harness_golden.py
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness_goldens import main  # noqa: E402

if __name__ == "__main__":
    main()
