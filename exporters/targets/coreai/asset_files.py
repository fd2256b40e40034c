"""What an `.aimodel` folder must look like before anything reads it: checked in pure Python.

Apple's runtime trusts its bytecode: a flipped byte in `main.mlirb` can abort or segfault the process
that loads it. The asset's own `main.hash` (the raw sha256 of `main.mlirb`, written by
`AIProgram.save_asset`) catches accidental damage before the runtime sees a byte; the child process in
`runtime.py` catches the rest (a damaged asset whose hash was recomputed).
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from pathlib import Path

from mvit.errors import MvitError
from mvit.reading import loads, open_regular

SUFFIX = ".aimodel"
BYTECODE, HASH, METADATA = "main.mlirb", "main.hash", "metadata.json"
_REQUIRED = (BYTECODE, HASH, METADATA)
_MAX_ENTRIES = 1000
_MAX_TOTAL_BYTES = 8 << 30  # far above any MobileViT/DeepLab/SSDLite asset; a bound on what gets hashed
_MAX_METADATA_BYTES = 1 << 20
_HASH_BYTES = 32  # a raw sha256 digest, not hex
_CHUNK = 1 << 20


class DamagedAsset(MvitError):
    """An `.aimodel` folder that is not what coreai-core writes: a missing or altered file, a pipe, a link
    out of the folder (exit 2)."""


def check_asset(path: str | os.PathLike) -> None:
    """Raise DamagedAsset (one line: what is wrong, and to re-export) unless `path` is a sound `.aimodel`.

    Nothing is opened that is not a regular file, so a FIFO planted in the folder cannot block.
    """
    root = Path(path)
    if root.suffix != SUFFIX:
        raise DamagedAsset(f"{root} is not a Core AI asset (a folder named *{SUFFIX}); pass the .aimodel that mvit-export wrote")
    if not root.is_dir():
        what = "does not exist" if not root.exists() else "is not a folder"
        raise DamagedAsset(f"{root} {what}; a Core AI asset is a folder ({BYTECODE}, {HASH}, {METADATA}): re-export it")
    total = _check_entries(root)
    if total > _MAX_TOTAL_BYTES:
        raise DamagedAsset(f"{root} holds {total} bytes, more than any Core AI asset mvit writes ({_MAX_TOTAL_BYTES}); re-export it")
    for name in _REQUIRED:
        if not (root / name).is_file():
            raise DamagedAsset(f"{root} has no {name}, which every Core AI asset holds; the asset is damaged: re-export it")
    expected = _read_small(root / HASH, _HASH_BYTES)
    if len(expected) != _HASH_BYTES:
        raise DamagedAsset(f"{root / HASH} holds {len(expected)} bytes, not a {_HASH_BYTES}-byte sha256; the asset is damaged: re-export it")
    if _sha256(root / BYTECODE) != expected:
        raise DamagedAsset(f"{root / BYTECODE} does not match the sha256 in {HASH}: the asset is damaged or was altered; re-export it")
    _parse_metadata(root)


def read_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The asset's own key-value metadata (`creatorDefinedMetadata`), every value as a string.

    coreai-core's `set_custom` may store a value as a JSON number or bool; such values come back as
    their JSON text, so a caller always parses one kind of value.
    """
    check_asset(path)
    custom = _parse_metadata(Path(path)).get("creatorDefinedMetadata", {})
    if not isinstance(custom, dict):
        raise DamagedAsset(f"{Path(path) / METADATA}: creatorDefinedMetadata is not an object; the asset is damaged: re-export it")
    return {str(k): v if isinstance(v, str) else json.dumps(v, sort_keys=True) for k, v in custom.items()}


def _check_entries(root: Path) -> int:
    """Total bytes of regular files under `root`; refuses pipes, devices, sockets and links that leave it."""
    total, seen = 0, 0
    real_root = root.resolve()
    pending = [root]
    while pending:
        folder = pending.pop()
        with os.scandir(folder) as entries:
            for entry in entries:
                seen += 1
                if seen > _MAX_ENTRIES:
                    raise DamagedAsset(f"{root} holds more than {_MAX_ENTRIES} files; a Core AI asset holds a few: re-export it")
                where = Path(entry.path)
                if entry.is_symlink():
                    target = where.resolve()
                    if target != real_root and real_root not in target.parents:
                        raise DamagedAsset(f"{where} links outside the asset (to {target}); mvit reads an asset's own files only: re-export it")
                mode = os.stat(entry.path).st_mode if entry.is_symlink() and where.exists() else entry.stat(follow_symlinks=False).st_mode
                if stat.S_ISDIR(mode):
                    if not entry.is_symlink():
                        pending.append(where)
                elif stat.S_ISREG(mode):
                    total += os.stat(entry.path).st_size
                else:
                    kind = "pipe" if stat.S_ISFIFO(mode) else "socket" if stat.S_ISSOCK(mode) else "dangling link" if stat.S_ISLNK(mode) else "device"
                    raise DamagedAsset(f"{where} is a {kind}; a Core AI asset holds regular files only: re-export it")
    return total


def _read_small(path: Path, limit: int) -> bytes:
    with open_regular(path, "an asset file") as fh:
        data = fh.read(limit + 1)
    return data


def _sha256(path: Path) -> bytes:
    digest = hashlib.sha256()
    with open_regular(path, "the asset's bytecode") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.digest()


def _parse_metadata(root: Path) -> dict:
    raw = _read_small(root / METADATA, _MAX_METADATA_BYTES)
    if len(raw) > _MAX_METADATA_BYTES:
        raise DamagedAsset(f"{root / METADATA} is larger than {_MAX_METADATA_BYTES} bytes; the asset is damaged: re-export it")
    try:
        parsed = loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise DamagedAsset(f"{root / METADATA} is not valid JSON ({exc.__class__.__name__}); the asset is damaged: re-export it") from None
    if not isinstance(parsed, dict):
        raise DamagedAsset(f"{root / METADATA} is not a JSON object; the asset is damaged: re-export it")
    return parsed
