"""The three labelled layouts mvit-eval reads, checked strictly before anything runs.

- classification: one sub-folder per class, named by the model's label, or a CSV of file,label;
- segmentation: Pascal VOC (JPEGImages/, SegmentationClass/ PNG masks of class indices, 255 = ignore,
  ImageSets/Segmentation/val.txt);
- detection: one COCO-style JSON (images, annotations with pixel [x, y, w, h] boxes, categories named
  by the model's labels).

Every problem is a DatasetError (exit 2) naming the file and what is wrong with it.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mvit.errors import MvitError, one_line
from mvit.exporters.calibration import IMAGE_SUFFIXES, UNREADABLE_IMAGE, open_image, read_upright_rgb, unreadable_reason
from mvit.reading import loads, read_regular_text

IGNORE = 255  # VOC's "void" value: pixels not scored
VOC_SPLIT = Path("ImageSets") / "Segmentation" / "val.txt"
COCO_NAMES = ("annotations.json", "instances_val.json")


class DatasetError(MvitError):
    """A malformed dataset: names the file and the problem (exit 2)."""


@dataclass
class Box:
    xyxy: tuple[float, float, float, float]  # pixels of the original image
    label: int  # index into the model's labels
    crowd: bool = False


@dataclass
class Item:
    """One labelled image: `label` (classification), `mask` path (segmentation) or `boxes` (detection)."""

    image: Path
    label: int | None = None
    mask: Path | None = None
    boxes: list[Box] = field(default_factory=list)


@dataclass
class Dataset:
    task: str
    layout: str
    root: Path
    items: list[Item]


def classification_items(root: Path, labels: list[str]) -> tuple[str, list[Item]]:
    """(layout, items): a CSV of image,label rows, or one folder of images per label."""
    if root.is_file():
        return "csv", _classification_csv(root, labels)
    return "folders", _classification_folders(root, labels)


def voc_items(root: Path, labels: list[str]) -> tuple[str, list[Item]]:
    """(layout, items) of a PASCAL VOC folder; its masks hold class indices, so `labels` is not read."""
    return "voc", _voc(root)


def coco_items(root: Path, labels: list[str]) -> tuple[str, list[Item]]:
    return "coco", _coco(root, labels)


def _label_index(labels: list[str], name: str, where: Path) -> int:
    try:
        return labels.index(name)
    except ValueError:
        shown = ", ".join(labels[:12]) + (", ..." if len(labels) > 12 else "")
        raise DatasetError(f"{where}: label {name!r} is not among the model's labels ({shown})") from None


def _classification_folders(root: Path, labels: list[str]) -> list[Item]:
    if not root.is_dir():
        raise DatasetError(f"{root}: not a folder")
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not folders:
        raise DatasetError(f"{root}: no class sub-folders; put each class's images in a folder named by its label, or pass a CSV of file,label")
    items = []
    for folder in folders:
        label = _label_index(labels, folder.name, folder)
        images = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        items += [Item(p, label=label) for p in images]
    if not items:
        raise DatasetError(f"{root}: the class folders hold no images ({', '.join(IMAGE_SUFFIXES)})")
    return items


def _classification_csv(path: Path, labels: list[str]) -> list[Item]:
    try:
        rows = list(csv.reader(read_regular_text(path, "the dataset CSV", encoding="utf-8-sig").splitlines()))
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path}: cannot read it as a CSV of file,label ({exc.__class__.__name__})") from None
    except csv.Error as exc:  # e.g. a field over csv's 128 KB limit: no file name or label is that long
        raise DatasetError(f"{path}: not a CSV of file,label ({one_line(exc, 120)})") from None
    first = 1
    if rows and [c.strip().lower() for c in rows[0]] == ["file", "label"]:
        rows, first = rows[1:], 2
    items = []
    for number, row in enumerate(rows, start=first):
        if not row or all(not c.strip() for c in row):
            continue
        if len(row) != 2:
            raise DatasetError(f"{path}: line {number} has {len(row)} fields; each line is file,label")
        name, label = row[0].strip(), row[1].strip()
        image = path.parent / name
        if not image.is_file():
            raise DatasetError(f"{path}: line {number} names {name!r}, which does not exist beside the CSV")
        items.append(Item(image, label=_label_index(labels, label, path)))
    if not items:
        raise DatasetError(f"{path}: no file,label rows")
    return items


def _voc(root: Path) -> list[Item]:
    images, masks = root / "JPEGImages", root / "SegmentationClass"
    for folder in (images, masks):
        if not folder.is_dir():
            raise DatasetError(f"{folder}: missing folder; a VOC layout has JPEGImages/ and SegmentationClass/")
    split = root / VOC_SPLIT
    if split.exists():
        try:
            ids = [line.strip() for line in read_regular_text(split, "the VOC split file").splitlines() if line.strip()]
        except (OSError, UnicodeDecodeError) as exc:
            raise DatasetError(f"{split}: cannot read it as a list of image ids ({exc.__class__.__name__})") from None
        where = split
    else:  # no split file: every mask is scored
        ids = sorted(p.stem for p in masks.glob("*.png"))
        where = masks
    if not ids:
        raise DatasetError(f"{where}: no image ids to score")
    items = []
    for image_id in ids:
        mask = masks / f"{image_id}.png"
        if not mask.is_file():
            raise DatasetError(f"{mask}: missing mask for id {image_id!r} listed in {where}")
        image = next((images / f"{image_id}{s}" for s in IMAGE_SUFFIXES if (images / f"{image_id}{s}").is_file()), None)
        if image is None:
            raise DatasetError(f"{images / image_id}.jpg: missing image for id {image_id!r} listed in {where}")
        items.append(Item(image, mask=mask))
    return items


def _coco_file(root: Path) -> Path:
    if root.is_file():
        return root
    for name in COCO_NAMES:
        if (root / name).is_file():
            return root / name
    raise DatasetError(f"{root}: no {' or '.join(COCO_NAMES)}; pass the COCO-style JSON file itself or its folder")


def _coco(root: Path, labels: list[str]) -> list[Item]:
    path = _coco_file(root)
    try:
        doc = loads(read_regular_text(path, "the COCO annotations"))
    except (OSError, ValueError) as exc:
        raise DatasetError(f"{path}: not valid JSON ({exc.__class__.__name__}: {str(exc).splitlines()[0][:120]})") from None
    if not isinstance(doc, dict) or not all(isinstance(doc.get(k), list) for k in ("images", "annotations", "categories")):
        raise DatasetError(f"{path}: a COCO-style file is an object with lists 'images', 'annotations' and 'categories'")
    categories: dict[Any, int] = {}
    for cat in doc["categories"]:
        if not isinstance(cat, dict) or "id" not in cat or not isinstance(cat.get("name"), str):
            raise DatasetError(f"{path}: category {str(cat)[:80]} needs an 'id' and a 'name'")
        if isinstance(cat["id"], bool) or not isinstance(cat["id"], (int, str)):
            raise DatasetError(f"{path}: category {cat['name'][:80]!r} has id {str(cat['id'])[:40]}; COCO category ids are numbers")
        categories[cat["id"]] = _label_index(labels, cat["name"], path)
    images: dict[Any, Item] = {}
    sizes: dict[Any, tuple[int, int]] = {}
    for im in doc["images"]:
        if not isinstance(im, dict) or "id" not in im or not isinstance(im.get("file_name"), str):
            raise DatasetError(f"{path}: image entry {str(im)[:80]} needs an 'id' and a 'file_name'")
        if isinstance(im["id"], bool) or not isinstance(im["id"], (int, str)):
            raise DatasetError(f"{path}: image {im['file_name'][:80]!r} has id {str(im['id'])[:40]}; COCO image ids are numbers")
        if im["id"] in images:  # a second entry would replace the first and its boxes would move to another image
            raise DatasetError(f"{path}: image id {str(im['id'])[:40]} is listed twice; each image needs its own id")
        image = _coco_image(path.parent, im["file_name"])
        if image is None:
            raise DatasetError(f"{path}: image {im['file_name']!r} does not exist beside the JSON (or in images/)")
        images[im["id"]] = Item(image)
        if isinstance(im.get("width"), int) and isinstance(im.get("height"), int):
            sizes[im["id"]] = (im["width"], im["height"])
    for ann in doc["annotations"]:
        _coco_annotation(path, ann, images, sizes, categories)
    if not images:
        raise DatasetError(f"{path}: no images")
    return list(images.values())


def _coco_image(folder: Path, name: str) -> Path | None:
    for candidate in (folder / name, folder / "images" / name):
        if candidate.is_file():
            return candidate
    return None


def _coco_annotation(path: Path, ann: Any, images: dict, sizes: dict, categories: dict) -> None:
    if not isinstance(ann, dict) or isinstance(ann.get("image_id"), (list, dict)) or ann.get("image_id") not in images:
        raise DatasetError(f"{path}: annotation {str(ann)[:80]} refers to no listed image")
    if isinstance(ann.get("category_id"), (list, dict)) or ann.get("category_id") not in categories:
        raise DatasetError(f"{path}: annotation {ann.get('id', '?')} has category_id {ann.get('category_id')!r}, which is not in 'categories'")
    bbox = ann.get("bbox")
    if not (isinstance(bbox, list) and len(bbox) == 4 and all(isinstance(v, (int, float)) and np.isfinite(v) for v in bbox)):
        raise DatasetError(f"{path}: annotation {ann.get('id', '?')} has bbox {bbox!r}; expected [x, y, width, height] in pixels")
    x, y, w, h = (float(v) for v in bbox)
    if w <= 0 or h <= 0:
        raise DatasetError(f"{path}: annotation {ann.get('id', '?')} has an empty bbox {bbox}")
    size = sizes.get(ann["image_id"])
    if size is not None and (x < -0.5 or y < -0.5 or x + w > size[0] + 0.5 or y + h > size[1] + 0.5):
        raise DatasetError(f"{path}: annotation {ann.get('id', '?')} bbox {bbox} lies outside its {size[0]}x{size[1]} image")
    item = images[ann["image_id"]]
    item.boxes.append(Box((x, y, x + w, y + h), categories[ann["category_id"]], bool(ann.get("iscrowd", 0))))


def read_image(path: Path) -> np.ndarray:
    """uint8 HWC RGB, turned upright as phones store it (EXIF orientation)."""
    try:
        return read_upright_rgb(path)
    except UNREADABLE_IMAGE as exc:
        raise DatasetError(f"{path}: unreadable image ({exc.__class__.__name__}: {str(exc).splitlines()[0][:120] if str(exc) else ''})") from None


def read_mask(path: Path, num_classes: int, image_size: tuple[int, int]) -> np.ndarray:
    """A VOC mask: class indices (palette or greyscale PNG), 255 = ignore; same size as its image."""
    try:
        with open_image(path, "a mask") as im:
            if im.mode not in ("P", "L", "I", "I;16"):
                raise DatasetError(f"{path}: mask is a {im.mode} image; VOC masks are palette or greyscale PNGs of class indices")
            mask = np.asarray(im).astype(np.int64)
    except UNREADABLE_IMAGE as exc:
        raise DatasetError(f"{path}: unreadable mask ({unreadable_reason(exc)})") from None
    if mask.shape[::-1] != image_size:
        raise DatasetError(f"{path}: mask is {mask.shape[1]}x{mask.shape[0]} but its image is {image_size[0]}x{image_size[1]}")
    bad = (mask >= num_classes) & (mask != IGNORE) | (mask < 0)
    if bad.any():
        raise DatasetError(f"{path}: mask value {int(mask[bad][0])} is not a class (0..{num_classes - 1}) nor {IGNORE} (ignore)")
    return mask


def check_boxes_inside(item: Item, image_size: tuple[int, int]) -> None:
    """A box outside its image is a labelling error (widths and heights not stated in the JSON are checked here)."""
    w, h = image_size
    for box in item.boxes:
        x1, y1, x2, y2 = box.xyxy
        if x1 < -0.5 or y1 < -0.5 or x2 > w + 0.5 or y2 > h + 0.5:
            raise DatasetError(f"{item.image}: a box [{x1:g}, {y1:g}, {x2:g}, {y2:g}] lies outside the {w}x{h} image")


def image_size_of(path: Path) -> tuple[int, int]:
    """(width, height) as read upright, from the header only."""
    try:
        with open_image(path, "an evaluation image") as im:
            w, h = im.size
            orientation = im.getexif().get(0x0112, 1)
    except UNREADABLE_IMAGE as exc:
        raise DatasetError(f"{path}: unreadable image ({unreadable_reason(exc)})") from None
    return (h, w) if orientation in (5, 6, 7, 8) else (w, h)


def check_items(dataset: Dataset, num_classes: int) -> None:
    """Open every chosen file's header (and every mask) before the models run: bad data fails in seconds."""
    for item in dataset.items:
        size = image_size_of(item.image)
        if item.mask is not None:
            read_mask(item.mask, num_classes, size)
        if item.boxes:
            check_boxes_inside(item, size)
