"""Writing files the way a user can trust: atomically, in private staging folders, with normal modes.

- Nothing is written under a predictable temporary name: staging folders come from mkdtemp
  (created exclusively, mode 0700), so a symlink planted in the output folder is never followed.
- A final name appears only by rename, and only when the whole file is there; several files that
  belong together (an artefact and its report) are published under a lock with Ctrl-C/SIGTERM
  held back, so an interrupt never leaves one without the other.
- Final files get the mode any file the user creates gets (0666 & ~umask), not mkstemp's 0600.
- Staging folders left by a killed process are removed by the next run in the same folder.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import signal
import stat
import tempfile
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any, BinaryIO

from .cli_support import interrupt_requested
from .errors import MvitError
from .reading import check_regular

STAGING_PREFIX = ".mvit-tmp-"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def normal_modes(path: Path) -> None:
    """Give `path` (a file or a folder tree) the modes a file the user creates would get."""
    mask = _umask()
    path = Path(path)
    items = [path, *path.rglob("*")] if path.is_dir() and not path.is_symlink() else [path]
    for item in items:
        if item.is_symlink():
            continue
        os.chmod(item, (0o777 if item.is_dir() else 0o666) & ~mask)


def write_atomic(path: Path, write: Callable[[BinaryIO], object]) -> Path:
    """Call `write(fh)` on a fresh temp file beside `path` (created exclusively), then rename it
    over `path`: an interrupt, a full disk or a crash leaves the previous file or none."""
    path = Path(path)
    check_replaceable(path)
    fd, tmp = tempfile.mkstemp(prefix=f"{STAGING_PREFIX}{os.getpid()}-", suffix=f"-{path.name}", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())  # the rename must not land before the bytes do
            os.fchmod(f.fileno(), 0o666 & ~_umask())
        if interrupt_requested():  # a library swallowed the interrupt: the run is over, show nothing new
            raise KeyboardInterrupt
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_with_path_atomic(path: Path, write: Callable[[Path], object]) -> Path:
    """The same for writers that want a file name (safetensors' save_file, converters)."""
    path = Path(path)
    with staging_dir(path.parent) as staging:
        staged = staging / path.name
        write(staged)
        publish([(staged, path)])
    return path


def write_bytes_atomic(path: Path, data: bytes) -> Path:
    return write_atomic(path, lambda f: f.write(data))


def write_text_atomic(path: Path, text: str) -> Path:
    return write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path: Path, data: Any) -> Path:
    """Sorted keys, no timestamps: the same input writes the same bytes."""
    return write_text_atomic(path, json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


def remove(path: Path) -> None:
    """Remove a file, a symlink (not its target) or a folder tree; absent is fine."""
    path = Path(path)
    if path.is_symlink() or path.is_file():
        path.unlink(missing_ok=True)
    elif path.is_dir():
        shutil.rmtree(path, ignore_errors=True)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def clean_stale_staging(folder: Path) -> list[Path]:
    """Remove staging folders/files of processes that no longer run (killed with SIGKILL, power loss)."""
    removed = []
    for item in Path(folder).glob(f"{STAGING_PREFIX}*"):
        pid_text = item.name[len(STAGING_PREFIX) :].split("-", 1)[0]
        if pid_text.isdigit() and int(pid_text) != os.getpid() and not _pid_alive(int(pid_text)):
            remove(item)
            removed.append(item)
    return removed


@contextlib.contextmanager
def staging_dir(folder: Path) -> Iterator[Path]:
    """A private folder inside `folder` (same file system, so renames out of it are atomic).

    Whatever is still inside when the block ends (normally or not) is deleted.
    """
    path = Path(tempfile.mkdtemp(prefix=f"{STAGING_PREFIX}{os.getpid()}-", dir=folder))
    try:
        yield path
    finally:
        remove(path)


def _copy_regular_file(src: str, dst: str) -> None:
    if not stat.S_ISREG(os.lstat(src).st_mode):  # a FIFO or device would block or never end
        check_regular(src, "every item in an artefact")  # refused with the words every reader uses
    shutil.copy2(src, dst)


@contextlib.contextmanager
def private_copy(path: Path) -> Iterator[Path]:
    """A copy of the artefact folder `path`, under its own name, in a private temporary folder (a
    file is read where it is: nothing it is read with writes to it). Symlinks are copied as links."""
    path = Path(path)
    if not path.is_dir():
        yield path
        return
    folder = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX))
    try:
        copy = folder / path.name
        shutil.copytree(path, copy, symlinks=True, copy_function=_copy_regular_file)
        yield copy
    finally:
        remove(folder)


@contextlib.contextmanager
def _signals_held() -> Iterator[None]:
    """Hold SIGINT/SIGTERM until the block is done (delivered right after)."""
    sigs = {signal.SIGINT, signal.SIGTERM}
    try:
        old = signal.pthread_sigmask(signal.SIG_BLOCK, sigs)
    except (AttributeError, ValueError):  # platform without it
        yield
        return
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


class PathRefused(MvitError):
    """A path mvit will not replace (a folder of the user's at a final name) or not copy (a FIFO): exit 2."""


# No artefact is a folder: what a caller that publishes only files passes.
NO_FOLDER_ARTEFACTS: Mapping[str, str] = MappingProxyType({})


def check_replaceable(*paths: Path, folder_artefacts: Mapping[str, str] = NO_FOLDER_ARTEFACTS) -> None:
    """Refuse to replace anything but what mvit writes under a final name: a file (an earlier export,
    report or results file), a symlink (itself, never its target) or an artefact folder, one whose
    suffix is in `folder_artefacts` (suffix -> the file every such folder holds; the exporters' targets
    declare them). A folder of the user's that happens to carry the name is never deleted."""
    for path in map(Path, paths):
        if not path.is_dir() or path.is_symlink():
            continue
        marker = folder_artefacts.get(path.suffix)
        if marker and (path / marker).is_file():
            continue
        raise PathRefused(f"{path} is a folder mvit did not write, in the way of a file it writes; move it away yourself, or pass another --out")


def publish(moves: list[tuple[Path, Path]], also_remove: tuple[Path, ...] = (), folder_artefacts: Mapping[str, str] = NO_FOLDER_ARTEFACTS) -> None:
    """Rename each staged source onto its final name, all or nothing as far as the OS allows.

    Stale files in `also_remove` (e.g. a report of an earlier export) go first; an artefact folder
    (`folder_artefacts`, as check_replaceable takes it) at a final name is replaced. Concurrent
    exports to the same folder take turns on a lock file, so a report never describes another
    process's artefact; Ctrl-C waits until every file is in place.
    """
    if not moves:
        return
    folder = moves[0][1].parent
    with _signals_held():
        if interrupt_requested():  # a library swallowed the interrupt: the run is over, publish nothing
            raise KeyboardInterrupt
        lock = os.open(folder, os.O_RDONLY)  # the folder itself is the lock: no lock file left behind
        try:
            fcntl.flock(lock, fcntl.LOCK_EX)
            check_replaceable(*also_remove, *(dest for _, dest in moves), folder_artefacts=folder_artefacts)
            for stale in also_remove:
                remove(stale)
            for src, dest in moves:
                normal_modes(src)
                remove(dest)
                os.replace(src, dest)
        finally:
            os.close(lock)  # releases the flock
