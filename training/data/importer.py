"""Import a COCO file (e.g. relabelled in CVAT / Label Studio, or written by the review loop) as a set.

The result is a set folder like a generated one (images/, annotations.coco.json, YOLO labels,
manifest.json with a fingerprint), so training takes it with `--train DIR` unchanged.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path, PurePosixPath

from inspector.channels import LEGACY

from .coco import CocoError, read_coco, write_coco
from .generate import COCO_NAME, MANIFEST_NAME, load_image, set_fingerprint
from ..splits import SPLITS
from .records import COARSE_CATEGORIES, FINE_CATEGORIES, ImageRecord, LabelledSet
from .yolo import write_yolo


def import_coco(coco: Path | str, out: Path | str, *, images: Path | str | None = None, kind: str = "coarse") -> LabelledSet:
    coco, out = Path(coco), Path(out)
    categories = COARSE_CATEGORIES if kind == "coarse" else FINE_CATEGORIES
    source = read_coco(coco, categories=categories, root=images or coco.parent)
    held = SPLITS["heldout"]
    leaked = [r.file_name for r in source.images
              if isinstance(r.attributes.get("part_seed"), int) and held.start <= r.attributes["part_seed"] < held.start + held.capacity]
    if leaked:
        raise CocoError(coco, f"{len(leaked)} image(s) show held-out parts (e.g. {leaked[0]!r}); the held-out lot must "
                              f"never be trained on")
    records = []
    channels = _channels(coco, source.info)
    for record in source.images:
        src = source.root / record.file_name
        if not src.is_file():
            raise CocoError(coco, f"image {record.file_name!r} not found under {source.root}")
        name = f"images/{PurePosixPath(record.file_name).name}"
        dst = out / name
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dst)
        image = load_image(out, ImageRecord(name, record.width, record.height))
        if image.shape[:2] != (record.height, record.width):
            raise CocoError(coco, f"image {record.file_name!r} is {image.shape[1]}×{image.shape[0]}, "
                                  f"the file says {record.width}×{record.height}")
        depth = image.shape[2] if image.ndim == 3 else 1
        if kind == "coarse" and depth != len(channels):
            raise CocoError(coco, f"image {record.file_name!r} has {depth} channel(s), the set names {channels}")
        records.append(ImageRecord(name, record.width, record.height, record.annotations, record.attributes))
    data = LabelledSet(out, categories, records, {**source.info, "imported_from": str(coco)})
    data.info["fingerprint"] = set_fingerprint(data)
    write_coco(data, out / COCO_NAME)
    write_yolo(data)
    manifest = {"kind": kind, "split": source.info.get("split", "imported"), "imported_from": str(coco),
                "images": len(records), "annotations": data.annotation_count(), "fingerprint": data.info["fingerprint"],
                "seed_range": None, **({"channels": channels} if kind == "coarse" else {})}
    (out / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return data


def _channels(coco: Path, info: dict) -> list[str]:
    """The channels a coarse set's images stack: the COCO's own info["channels"] (a review export of a
    stacking recipe), else those of a set's manifest beside it (a generated set), else the legacy frame."""
    named = info.get("channels")
    if named is None:
        beside = coco.parent / MANIFEST_NAME
        named = json.loads(beside.read_text(encoding="utf-8")).get("channels") if beside.is_file() else None
    if named is None:
        return list(LEGACY)
    if not isinstance(named, list) or not named or not all(isinstance(c, str) and c for c in named):
        raise CocoError(coco, f"channels {named!r} is not a list of channel names")
    return list(named)
