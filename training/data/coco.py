"""COCO detection JSON: writer and importer.

The writer emits plain COCO (images, annotations with [x, y, w, h], categories from id 1) plus an
``attributes`` object per image and annotation (size in mm, depth, nuisance flag, part seed, face),
which CVAT and Label Studio keep as attributes. The importer reads COCO as those tools (and the
station's review/relabel loop) write it back: extra keys are tolerated, missing attributes are
empty, and any problem names the file and the entry.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

from .records import Annotation, ImageRecord, LabelledSet


class CocoError(ValueError):
    def __init__(self, path: Path | str, problem: str):
        super().__init__(f"COCO file {path}: {problem}")


def to_coco(data: LabelledSet) -> dict[str, Any]:
    cat_ids = {name: i + 1 for i, name in enumerate(data.categories)}
    images, annotations = [], []
    for image_id, image in enumerate(data.images, start=1):
        images.append({"id": image_id, "file_name": image.file_name, "width": image.width, "height": image.height,
                       "attributes": image.attributes})
        for ann in image.annotations:
            x0, y0, x1, y1 = ann.box_px
            w, h = x1 - x0, y1 - y0
            annotations.append({"id": len(annotations) + 1, "image_id": image_id, "category_id": cat_ids[ann.category],
                                "bbox": [round(x0, 3), round(y0, 3), round(w, 3), round(h, 3)],
                                "area": round(w * h, 3), "iscrowd": 0, "attributes": ann.attributes})
    return {"info": data.info, "images": images, "annotations": annotations,
            "categories": [{"id": i, "name": name, "supercategory": "defect"} for name, i in cat_ids.items()]}


def write_coco(data: LabelledSet, path: Path | str) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(to_coco(data), indent=1, sort_keys=True) + "\n", encoding="utf-8")
    return path


def read_coco(path: Path | str, *, categories: Sequence[str] | None = None, root: Path | str | None = None) -> LabelledSet:
    """Read a COCO detection file. `categories`, when given, is the expected category order; a
    category outside it is an error. Image paths are relative to `root` (default: the file's folder)."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise CocoError(path, f"cannot read: {exc}") from exc
    for key in ("images", "annotations", "categories"):
        if not isinstance(doc.get(key), list):
            raise CocoError(path, f"lacks the list {key!r}")
    names: dict[int, str] = {}
    for cat in doc["categories"]:
        if not isinstance(cat, dict) or "id" not in cat or not isinstance(cat.get("name"), str):
            raise CocoError(path, f"category entry {cat!r} needs an id and a name")
        names[int(cat["id"])] = cat["name"]
    order = tuple(categories) if categories is not None else tuple(names[i] for i in sorted(names))
    unknown = [n for n in names.values() if n not in order]
    if unknown:
        raise CocoError(path, f"category {unknown[0]!r} is not one of {', '.join(order)}")
    images: dict[int, ImageRecord] = {}
    for entry in doc["images"]:
        try:
            images[int(entry["id"])] = ImageRecord(str(entry["file_name"]), int(entry["width"]), int(entry["height"]),
                                                   attributes=dict(entry.get("attributes") or {}))
        except (KeyError, TypeError, ValueError) as exc:
            raise CocoError(path, f"image entry {entry!r} needs id, file_name, width, height ({exc})") from exc
    for entry in doc["annotations"]:
        try:
            image = images[int(entry["image_id"])]
            x, y, w, h = (float(v) for v in entry["bbox"])
            category = names[int(entry["category_id"])]
        except KeyError as exc:
            raise CocoError(path, f"annotation {entry.get('id')!r} refers to unknown {exc.args[0]!r}") from exc
        except (TypeError, ValueError) as exc:
            raise CocoError(path, f"annotation {entry.get('id')!r} needs image_id, category_id, bbox [x, y, w, h]") from exc
        if w < 0 or h < 0:
            raise CocoError(path, f"annotation {entry.get('id')!r} has a negative box size")
        image.annotations.append(Annotation(category, (x, y, x + w, y + h), dict(entry.get("attributes") or {})))
    return LabelledSet(Path(root) if root else path.parent, order, list(images.values()), dict(doc.get("info") or {}))
