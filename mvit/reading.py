"""Reading files a stranger handed over: regular files only, JSON of bounded depth, text made safe to print.

- A FIFO, socket or device named as a config, checkpoint or image would block `open()` forever
  (a FIFO without a writer) or stream without end (`/dev/zero`): files are opened non-blocking and
  refused unless fstat says they are regular, before a byte is read.
- Python's json parser recurses once per nesting level; a 100,000-deep document raises
  RecursionError, which is a bad file, not a bug in mvit.
- Text from a file (labels, names) can hold terminal escape sequences; `printable` shows them as
  `\\x1b` instead of letting them drive the user's terminal.
"""

from __future__ import annotations

import json
import os
import stat
from typing import Any, BinaryIO

from .errors import MvitError


class NotARegularFile(MvitError):
    """A path that names a pipe, socket, device or folder where a file was expected (exit 2)."""


def open_regular(path: str | os.PathLike, what: str) -> BinaryIO:
    """`path` opened for binary reading, refused before any read unless it is a regular file.

    `what` names the input in the user's words ("the checkpoint", "an evaluation image").
    OSError (missing, permissions) passes through for the caller to word.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)  # a FIFO opens at once, without a writer
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            kind = "folder" if stat.S_ISDIR(mode) else "pipe" if stat.S_ISFIFO(mode) else "socket" if stat.S_ISSOCK(mode) else "device"
            raise NotARegularFile(f"{path} is a {kind}, not a regular file; {what} must be a file on disk")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def check_regular(path: str | os.PathLike, what: str) -> None:
    """Refuse a non-regular file before a library that takes only a path (safetensors, onnx) opens it."""
    with open_regular(path, what):
        pass


def check_regular_tree(folder: str | os.PathLike, what: str) -> None:
    """Refuse a folder artefact (an .mlpackage) unless everything inside is a folder or a regular file.

    Readers such as coremltools open the files a package holds by path; a FIFO there, or a symlink
    to one or to a device, would block or never end. Symlinks are followed to what they name, and
    a symlink to a folder is refused (it could loop).
    """
    for root, folders, files in os.walk(str(folder)):
        for name in folders:
            if os.path.islink(os.path.join(root, name)):
                raise NotARegularFile(f"{os.path.join(root, name)} is a link to a folder; {what} must be a file or a folder on disk")
        for name in files:
            check_regular(os.path.join(root, name), what)


def read_regular_text(path: str | os.PathLike, what: str, encoding: str = "utf-8") -> str:
    with open_regular(path, what) as fh:
        return fh.read().decode(encoding)


def loads(text: str | bytes) -> Any:
    """json.loads, with nesting too deep for Python's parser raised as the ValueError a bad file is."""
    try:
        return json.loads(text)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None


def printable(text: str) -> str:
    """`text` with control characters (ESC, BEL, CR, ...) shown escaped, so a file cannot drive the terminal."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() or c == " " else ascii(c)[1:-1] for c in text)
