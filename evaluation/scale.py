"""Scoring a dataset of any size: chunks of images as independent tasks, a journal to resume from.

The images are cut into chunks of CHUNK_IMAGES in dataset order. Each chunk is one task for
mvit.work (this process, local worker processes, or Ray tasks): a worker builds the models once
from a `ModelsRecipe`, scores the chunk's images (in batches, evaluate.py) and returns each
model's per-image records as arrays. They are gathered in chunk order, and metrics and the
bootstrap run once on the whole, so the figures do not depend on how many workers scored which
chunk.

Every finished chunk is written to a journal folder beside `--out` (one .npz per chunk, written
atomically, read back with allow_pickle=False). A rerun with the same images, models and
preprocessing (the journal's key) scores only the chunks the journal lacks; the finished run
removes it. Memory is bounded by the chunks in flight plus the per-image records.

On Ray, the workers may be other machines: artefacts and checkpoints travel once through the
object store with the recipe, and each chunk carries its image (and mask) files' bytes.
"""

from __future__ import annotations

import atexit
import hashlib
import io
import json
import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np

from mvit.files import remove, write_bytes_atomic, write_text_atomic
from mvit.models.detection_postprocess import NmsSettings
from mvit.work import Files, Workers, pack_files, peak_rss_mb, run_tasks, unpack_files

from .datasets import Dataset, DatasetError, Item
from .runners import ModelUnderTest
from .tasks import SCORING

CHUNK_IMAGES = 50  # one task; also the journal's grain (at most this many images are rescored after a stop)
JOURNAL_FORMAT = 1
Arrays = dict[str, np.ndarray]


@dataclass(frozen=True)
class PyTorchReference:
    """The --model / --checkpoint reference as the command line gave it."""

    model: str | None
    checkpoint: Path | None
    config: str | None
    labels: Path | None
    image_size: int | None
    nms: NmsSettings | None


@dataclass
class ModelsRecipe:
    """What a worker needs to build the models this process scores (models themselves do not pickle)."""

    names: list[str]
    artefacts: list[Path | None]  # None: the PyTorch reference
    runner: str
    threads: int
    pytorch: PyTorchReference | None
    shipped: dict[str, Files] = field(default_factory=dict)  # str(path) -> its files, for workers elsewhere
    key: str = ""

    def with_files(self) -> ModelsRecipe:
        paths = [p for p in self.artefacts if p is not None]
        if self.pytorch is not None:
            paths += [p for p in (self.pytorch.checkpoint, self.pytorch.labels) if p is not None]
        return replace(self, shipped={str(p): pack_files(p) for p in paths})


@dataclass
class Chunk:
    index: int
    task: str
    items: list[Item]
    shipped: dict[str, bytes] | None = None  # str(image or mask path) -> bytes


@dataclass
class ChunkResult:
    index: int
    images: int
    records: dict[str, Arrays]  # model name -> its records as arrays
    peak_rss_mb: float | None = None


def _scratch() -> Path:
    folder = Path(tempfile.mkdtemp(prefix="mvit-eval-"))
    atexit.register(shutil.rmtree, folder, True)
    return folder


def _digest(path: Path) -> str:
    h = hashlib.sha256()
    for rel, data in sorted(pack_files(path).items()) if path.is_dir() else [("", path.read_bytes())]:
        h.update(rel.encode() + b"\0" + hashlib.sha256(data).digest())
    return h.hexdigest()


# ---------------------------------------------------------------- workers

_MODELS: dict[str, list[ModelUnderTest]] = {}


def _models(recipe: ModelsRecipe) -> list[ModelUnderTest]:
    """Built once per worker process and recipe."""
    if recipe.key in _MODELS:
        return _MODELS[recipe.key]
    from .runners import artefact_model, pytorch_model

    local: dict[str, Path] = {}
    if recipe.shipped:
        scratch = _scratch()
        local = {original: unpack_files(files, scratch / str(i) / Path(original).name) for i, (original, files) in enumerate(recipe.shipped.items())}
    here = lambda p: local.get(str(p), p) if p is not None else None
    models = []
    for name, path in zip(recipe.names, recipe.artefacts):
        if path is None:
            ref = recipe.pytorch
            assert ref is not None
            m = pytorch_model(
                ref.model, here(ref.checkpoint), config=ref.config, image_size=ref.image_size, labels=here(ref.labels), nms=ref.nms, num_threads=recipe.threads
            )
        else:
            m = artefact_model(local.get(str(path), path), recipe.threads, recipe.runner)
        m.name = name
        models.append(m)
    _MODELS[recipe.key] = models
    return models


def _local_items(chunk: Chunk) -> list[Item]:
    if not chunk.shipped:
        return chunk.items
    scratch = _scratch()
    named = {}
    for i, (original, data) in enumerate(chunk.shipped.items()):
        named[original] = scratch / f"{i}{Path(original).suffix}"
        named[original].write_bytes(data)
    items = [replace(item, image=named[str(item.image)], mask=named[str(item.mask)] if item.mask is not None else None) for item in chunk.items]
    return items


def score_chunk(recipe: ModelsRecipe, chunk: Chunk) -> ChunkResult:
    """One task: every model on the chunk's images; their records as arrays."""
    from mvit.cli_support import native_chatter_filtered

    from .evaluate import evaluate

    models = _models(recipe)
    items = _local_items(chunk)
    try:
        with native_chatter_filtered():
            records = evaluate(models, Dataset(chunk.task, "chunk", Path("."), items))
    except DatasetError as exc:
        if not chunk.shipped:
            raise
        message = str(exc)  # names the worker's copy; the user knows the file by its own path
        for copy, item in zip(items, chunk.items):
            for mine, theirs in ((copy.image, item.image), (copy.mask, item.mask)):
                if mine is not None:
                    message = message.replace(str(mine), str(theirs))
        raise DatasetError(message) from None
    finally:
        if chunk.shipped:
            shutil.rmtree(items[0].image.parent, ignore_errors=True)
    return ChunkResult(chunk.index, len(items), {name: to_arrays(r) for name, r in records.items()}, peak_rss_mb())


# ---------------------------------------------------------------- records <-> arrays


def to_arrays(records: Any) -> Arrays:
    return {f.name: np.asarray(getattr(records, f.name)) for f in fields(records) if f.name != "num_classes"}


def gather(task: str, num_classes: int, names: list[str], parts: list[ChunkResult]) -> dict[str, Any]:
    """Every model's records over the chunks, in chunk order (as one pass over the dataset would make them)."""
    out = {}
    for name in names:
        records: Any = SCORING[task].new_records(num_classes)
        offset = 0
        for part in parts:
            for key, values in part.records[name].items():
                if key == "images":  # detections name their image by its position in the dataset
                    values = values + offset
                getattr(records, key).extend(list(values))
            offset += part.images
        out[name] = records
    return out


# ---------------------------------------------------------------- journal


def journal_folder(out: Path) -> Path:
    return out.with_name(out.name + ".journal")


def journal_key(dataset: Dataset, models: list[ModelUnderTest], recipe: ModelsRecipe) -> str:
    """The images (path, size, mtime, labels), each model's file digest and preprocessing, the chunking."""
    h = hashlib.sha256()
    ref = recipe.pytorch
    described = {
        "format": JOURNAL_FORMAT,
        "task": dataset.task,
        "chunk": CHUNK_IMAGES,
        "runner": recipe.runner,
        "threads": recipe.threads,
        "models": [
            {"name": m.name, "kind": m.kind, "precision": m.precision, "recipe": repr(m.recipe), "sha256": _digest(m.path) if m.path is not None else None}
            for m in models
        ],
        "pytorch": None
        if ref is None
        else {
            "model": ref.model,
            "config": ref.config,
            "image_size": ref.image_size,
            "nms": repr(ref.nms),
            "checkpoint": _digest(ref.checkpoint) if ref.checkpoint else None,
            "labels": _digest(ref.labels) if ref.labels else None,
        },
    }
    h.update(json.dumps(described, sort_keys=True).encode())
    for item in dataset.items:
        stat = item.image.stat()
        h.update(
            json.dumps([str(item.image), stat.st_size, stat.st_mtime_ns, item.label, str(item.mask), [(b.xyxy, b.label, b.crowd) for b in item.boxes]]).encode()
        )
    return h.hexdigest()


class Journal:
    """Scored chunks on disk: `key.json`, then one `chunk-NNNNNN.npz` per finished chunk."""

    def __init__(self, folder: Path, key: str, names: list[str]):
        self.folder, self.key, self.names = folder, key, names

    def read(self, chunks: int) -> tuple[dict[int, ChunkResult], str | None]:
        """The chunks already scored under this key, and a note when a journal was set aside."""
        stamp = self.folder / "key.json"
        note = None
        if self.folder.is_dir():
            try:
                same = json.loads(stamp.read_text()).get("key") == self.key
            except (OSError, ValueError, AttributeError):
                same = False
            if not same:
                note = f"{self.folder} was made for other images, models or preprocessing; starting afresh"
                shutil.rmtree(self.folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        write_text_atomic(stamp, json.dumps({"format": JOURNAL_FORMAT, "key": self.key, "models": self.names}) + "\n")
        found = {}
        for index in range(chunks):
            part = self._load(index)
            if part is not None:
                found[index] = part
        return found, note

    def _path(self, index: int) -> Path:
        return self.folder / f"chunk-{index:06d}.npz"

    def _load(self, index: int) -> ChunkResult | None:
        path = self._path(index)
        if not path.is_file():
            return None
        try:
            with np.load(path, allow_pickle=False) as z:
                images = int(z["images"])
                records = {name: {k.split("/", 1)[1]: z[k] for k in z.files if k.startswith(f"{i}/")} for i, name in enumerate(self.names)}
        except (OSError, ValueError, KeyError):
            return None  # unreadable: scored again
        if any(not r for r in records.values()):
            return None
        return ChunkResult(index, images, records)

    def add(self, part: ChunkResult) -> None:
        arrays = {f"{i}/{k}": v for i, name in enumerate(self.names) for k, v in part.records[name].items()}
        arrays["images"] = np.asarray(part.images)
        buffer = io.BytesIO()
        np.savez(buffer, **arrays)  # type: ignore[arg-type]
        write_bytes_atomic(self._path(part.index), buffer.getvalue())


def discard_journal(folder: Path) -> None:
    """After the results are written: nothing is left to resume."""
    if folder.is_dir():
        for path in folder.iterdir():
            remove(path)
        folder.rmdir()


# ---------------------------------------------------------------- the whole run


class _Chunks(Sequence):
    """The chunks still to score, their files read only when a task is handed out."""

    def __init__(self, todo: list[Chunk], ship: bool):
        self.todo, self.ship = todo, ship

    def __len__(self) -> int:
        return len(self.todo)

    def __getitem__(self, i):  # type: ignore[override]
        chunk = self.todo[i]
        if not self.ship:
            return chunk
        files = {str(p): p.read_bytes() for item in chunk.items for p in (item.image, item.mask) if p is not None}
        return replace(chunk, shipped=files)


def score_dataset(
    models: list[ModelUnderTest],
    recipe: ModelsRecipe,
    dataset: Dataset,
    workers: Workers,
    journal: Path | None,
    on_images: Callable[[int], None],
    note: Callable[[str], None],
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Every model's records over `dataset` and what the run was: workers, chunks, resumed images, peak RSS."""
    names = [m.name for m in models]
    recipe.key = journal_key(dataset, models, recipe)
    _MODELS[recipe.key] = models  # this process scores with the models it already built
    items = dataset.items
    chunks = [Chunk(i, dataset.task, items[start : start + CHUNK_IMAGES]) for i, start in enumerate(range(0, len(items), CHUNK_IMAGES))]
    done: dict[int, ChunkResult] = {}
    book = Journal(journal, recipe.key, names) if journal is not None else None
    if book is not None:
        done, why = book.read(len(chunks))
        if why:
            note(why)
        if done:
            note(f"resuming from {journal}: {sum(p.images for p in done.values())} of {len(items)} images already scored")
    resumed = sum(p.images for p in done.values())
    on_images(resumed)
    todo = [c for c in chunks if c.index not in done]
    shared = recipe.with_files() if workers.ships_files else recipe
    worker_peak = None
    for _, part in run_tasks(score_chunk, shared, _Chunks(todo, workers.ships_files), workers):
        if book is not None:
            book.add(part)
        done[part.index] = part
        worker_peak = max(worker_peak or 0.0, part.peak_rss_mb or 0.0)
        on_images(part.images)
    parts = [done[c.index] for c in chunks]
    records = gather(dataset.task, len(models[0].labels), names, parts)
    run = {
        **workers.as_dict(),
        "chunk_images": CHUNK_IMAGES,
        "chunks": len(chunks),
        "resumed_images": resumed,
        "scored_images": len(items) - resumed,
        "journal": str(journal) if journal is not None else None,
        "peak_rss_mb": {"main": peak_rss_mb(), "largest_worker": worker_peak},
    }
    return records, run


def pieces(run: dict[str, Any]) -> Iterator[str]:
    """The run in words, for the result line."""
    yield Workers(run["workers"] or 0, run["ray_address"]).describe()
    if run["resumed_images"]:
        yield f"{run['resumed_images']} images resumed from the journal"
    rss = run["peak_rss_mb"]
    worker = f", largest worker {rss['largest_worker']:.0f} MiB" if rss["largest_worker"] else ""
    yield f"peak RSS {rss['main']:.0f} MiB here{worker}"
