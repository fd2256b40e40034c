"""The Core AI target's own options: none beyond the shared ones (the registry reads every target's)."""

from __future__ import annotations

from ...base import TargetOption

OPTIONS: tuple[TargetOption, ...] = ()
