"""The command-line flags of the targets' own options, read from their declarations (`TargetOption`).

Typer reads a command's options from its function signature; `with_target_options` adds one
keyword parameter per declared option to that signature, so `mvit-export --help` lists them and
the command receives them in `**target_options`.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, Optional, TypeVar

import typer

from .base import TargetOption
from .targets import declared_options

Command = TypeVar("Command", bound=Callable[..., Any])


def with_target_options(command: Command) -> Command:
    signature = inspect.signature(command)
    fixed = [p for p in signature.parameters.values() if p.kind is not inspect.Parameter.VAR_KEYWORD]
    added = [_parameter(option) for option, _ in declared_options().values()]
    command.__signature__ = signature.replace(parameters=[*fixed, *added])  # type: ignore[attr-defined]
    return command


def _parameter(option: TargetOption) -> inspect.Parameter:
    if option.choices:
        default = typer.Option(None, option.flag, help=option.help)
        return inspect.Parameter(option.name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=Optional[str])  # noqa: UP045 (typer reads it)
    default = typer.Option(False, option.flag, help=option.help)
    return inspect.Parameter(option.name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=bool)
