"""Target registry: name -> target module, imported lazily.

A target's converter is an optional dependency; asking for a target whose dependency is missing
raises TargetNotInstalled with the pip command that fixes it, instead of an ImportError.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, NamedTuple

from ..errors import TargetNotInstalled

if TYPE_CHECKING:  # the interface imports torch; the registry is read where torch is not needed
    from ..base import ExportTarget, TargetOption


class Entry(NamedTuple):
    """What is known of a target without importing its converter: a path can be told apart, a
    runtime named, a results row labelled and the installed versions recorded even where the
    target's extra is missing. The target object's own `suffix` and `runtime` must equal these
    (tested); everything else is asked of the target object."""

    module: str  # the module handing out TARGET (its options live in `options.py` beside it), relative to this package
    suffix: str  # its artefact's file ending
    runtime: str  # what benchmarks call the runtime that runs it
    in_all: bool  # part of `--target all`; a target still in beta is asked for by name
    folder_marker: str = ""  # an artefact that is a folder: the file every such folder holds ("": a file)
    runtime_note: str = ""  # how results rows of its runtime are labelled when they are no device's numbers
    distributions: tuple[str, ...] = ()  # the pip distributions whose versions a benchmark records
    other_suffixes: tuple[str, ...] = ()  # endings of other files its runtime runs, which it does not write


# The one line a new target adds.
_TARGETS = {
    "coreml": Entry(
        "coreml.assembled", ".mlpackage", "coreml", True, folder_marker="Manifest.json", distributions=("coremltools",), other_suffixes=(".mlmodel",)
    ),
    "onnx": Entry("onnx.assembled", ".onnx", "onnxruntime", True, distributions=("onnx", "onnxruntime")),
    "tflite": Entry("tflite.assembled", ".tflite", "litert", True, distributions=("ai-edge-litert", "litert-torch")),
    "coreai": Entry(
        "coreai.assembled",
        ".aimodel",
        "coreai",
        False,  # Core AI: iOS/macOS 27 only
        folder_marker="main.hash",
        runtime_note="Linux reference runtime, not device numbers",  # Apple's reference path, not a device
        distributions=("coreai-torch", "coreai-core"),
    ),
}
_MODULES = {name: entry.module for name, entry in _TARGETS.items()}
INSTALL_HINTS = {name: f"pip install 'mvit[{name}]'" for name in _MODULES}
SUFFIXES = {name: entry.suffix for name, entry in _TARGETS.items()}
RUNTIME_TARGETS = {entry.runtime: name for name, entry in _TARGETS.items()}  # runtime -> target
FOLDER_MARKERS = {entry.suffix: entry.folder_marker for entry in _TARGETS.values() if entry.folder_marker}  # suffix -> marker file
RUNTIME_NOTES = {entry.runtime: entry.runtime_note for entry in _TARGETS.values() if entry.runtime_note}
DISTRIBUTIONS = tuple(dist for entry in _TARGETS.values() for dist in entry.distributions)
ARTEFACT_RUNTIMES = {suffix: entry.runtime for entry in _TARGETS.values() for suffix in (entry.suffix, *entry.other_suffixes)}  # file ending -> runtime


def target_names() -> list[str]:
    return list(_MODULES)


def all_target_names() -> list[str]:
    """What `--target all` exports: every target but those in beta."""
    return [name for name, entry in _TARGETS.items() if entry.in_all]


def _target_object(name: str) -> ExportTarget:
    """The target's object, its package imported (which may need its extra), not yet asked `available()`."""
    if name not in _MODULES:
        raise TargetNotInstalled(f"unknown target {name!r}: use one of {', '.join(_MODULES)}")
    module_name = f"{__package__}.{_MODULES[name]}"
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        missing = exc.name or "a dependency"
        if missing == module_name:
            raise TargetNotInstalled(f"target {name!r} is not part of this install of mvit") from None
        raise TargetNotInstalled(f"target {name!r} needs the Python package {missing!r}, which is not installed: {INSTALL_HINTS[name]}") from None
    except ImportError as exc:  # installed but broken (a partial install, a wheel for another platform)
        raise TargetNotInstalled(f"target {name!r} cannot import one of its dependencies ({exc}): {INSTALL_HINTS[name]}") from None
    target: ExportTarget = module.TARGET
    return target


def target_options(name: str) -> tuple[TargetOption, ...]:
    """The options target `name` declares, from its package's light `options.py` (its converter
    and runtime not imported, so a missing extra hides no flag)."""
    package = _MODULES[name].rpartition(".")[0]
    options: tuple[TargetOption, ...] = importlib.import_module(f"{__package__}.{package}.options").OPTIONS
    return options


def declared_options() -> dict[str, tuple[TargetOption, list[str]]]:
    """Every target's own options: name -> (its declaration, the targets that declare it), in
    registry order, whether or not each target's extra is installed."""
    found: dict[str, tuple[TargetOption, list[str]]] = {}
    for name in _MODULES:
        for option in target_options(name):
            found.setdefault(option.name, (option, []))[1].append(name)
    return found


def get_target(name: str) -> ExportTarget:
    target = _target_object(name)
    if not target.available():
        raise TargetNotInstalled(f"target {name!r} is not installed: {target.install_hint}")
    return target


def available_targets() -> list[str]:
    """Targets whose dependencies import on this machine."""
    names = []
    for name in _MODULES:
        try:
            get_target(name)
        except TargetNotInstalled:
            continue
        names.append(name)
    return names
