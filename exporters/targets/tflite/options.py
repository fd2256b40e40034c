"""The TFLite target's own options, declared without importing LiteRT (the registry reads them for
the command line whether or not the tflite extra is installed)."""

from __future__ import annotations

from ...base import TargetOption

OPTIONS: tuple[TargetOption, ...] = (TargetOption("nhwc", "--nhwc", "TFLite: NHWC input", tag="nhwc", means="channels_last_input"),)
