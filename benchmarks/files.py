"""Writing outputs without leaving half-written files behind.

Every file mvit-bench writes (results JSON, markdown, PNG) goes to a temp file created
exclusively in the destination folder, then is renamed over the final name: an interrupt, a
full disk or a crash leaves the previous file (or none), never half of one. The temp name
starts with a dot so a folder listing (and `find_artefact`) skips a leftover.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import BinaryIO

from mvit.errors import MvitError
from mvit.files import write_atomic


class OutputPathError(MvitError):
    """An output path that cannot be written (a folder, or under a file); one line, exit 2."""


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve() or (a.exists() and b.exists() and os.path.samefile(a, b))
    except OSError:
        return False


def check_not_an_input(path: Path, what: str, inputs: Iterable[Path | None] = (), data: Path | None = None) -> None:
    """Refuse an output path that would overwrite what the command reads: one of `inputs` (or a file
    inside one, such as an .mlpackage), or a file already in the `data` folder (a CSV, an image)."""
    for given in (Path(i) for i in inputs if i is not None):
        inside = given.is_dir() and path.resolve().is_relative_to(given.resolve())
        if _same_file(path, given) or inside:
            raise OutputPathError(
                f"{what} {path} is {'inside ' if inside else ''}{given}, which this command reads; writing there would destroy it: name a new file"
            )
    if data is not None and data.is_dir() and path.exists() and path.resolve().is_relative_to(data.resolve()):
        raise OutputPathError(f"{what} {path} is a file of the dataset {data}; writing there would destroy it: name a file outside the dataset")


def check_output_path(path: Path | str, what: str = "--out", inputs: Iterable[Path | None] = (), data: Path | None = None) -> Path:
    """Refuse, before any work is done, an output path that cannot become a file or would overwrite an input."""
    path = Path(path)
    check_not_an_input(path, what, inputs, data)
    if path.is_dir():
        raise OutputPathError(f"{what} {path} is a folder; pass a file path")
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise OutputPathError(f"{what} {path}: {parent} is a file, not a folder")
            if not os.access(parent, os.W_OK | os.X_OK):
                raise OutputPathError(f"{what} {path}: no permission to write in {parent}")
            break
    return path


def atomic_write(path: Path | str, write: Callable[[BinaryIO], object]) -> Path:
    """Call `write(fh)` on a temp file beside `path`, then rename it over `path` (mvit.files)."""
    path = check_output_path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_atomic(path, write)


def atomic_write_text(path: Path | str, text: str) -> Path:
    """Write `text` (UTF-8) to `path` atomically."""
    return atomic_write(path, lambda fh: fh.write(text.encode("utf-8")))
