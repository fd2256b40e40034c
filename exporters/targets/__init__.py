"""Target registry: name -> target module, imported lazily.

A target's converter is an optional dependency; asking for a target whose dependency is missing
raises TargetNotInstalled with the pip command that fixes it, instead of an ImportError.
"""

from __future__ import annotations

import importlib

from ..base import ExportTarget, TargetNotInstalled, TargetOption

# The one line a new target adds: name -> (the module whose TARGET is handed out, file ending,
# benchmark runtime name, in `--target all`). A target still in beta (Core AI: iOS/macOS 27 only)
# is asked for by name. The ending and runtime are known here without importing the target's
# converter, so a path can be told apart and a runtime named even where that extra is missing, as
# are its options (`options.py` beside that module); each target object's own `suffix`, `runtime`
# and `options` must equal these (tested). Everything else is asked of the target object.
_TARGETS = {
    "coreml": ("coreml.assembled", ".mlpackage", "coreml", True),
    "onnx": ("onnx.assembled", ".onnx", "onnxruntime", True),
    "tflite": ("tflite.assembled", ".tflite", "litert", True),
    "coreai": ("coreai.assembled", ".aimodel", "coreai", False),
}
_MODULES = {name: module for name, (module, _, _, _) in _TARGETS.items()}
INSTALL_HINTS = {name: f"pip install 'mvit[{name}]'" for name in _MODULES}
SUFFIXES = {name: suffix for name, (_, suffix, _, _) in _TARGETS.items()}
RUNTIME_TARGETS = {runtime: name for name, (_, _, runtime, _) in _TARGETS.items()}  # runtime -> target


def target_names() -> list[str]:
    return list(_MODULES)


def all_target_names() -> list[str]:
    """What `--target all` exports: every target but those in beta."""
    return [name for name, (_, _, _, in_all) in _TARGETS.items() if in_all]


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
