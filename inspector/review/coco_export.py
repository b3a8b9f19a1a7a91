"""COCO export of the review labels: every labelled part image with its boxes, as plain COCO JSON
(the format `training.data.coco` reads back), plus the archived-image helpers it needs.

A defect whose class is 'unknown' (QA's label, or the station's call left unlabelled) is a real
defect of a kind the models do not know: no example of any of their classes, and the image that
shows it is no negative either (training would learn the defect as background). Such images are
left out of `images`/`annotations`; each unknown defect is listed under `info["unknown"]` (part,
image, box, the name QA gave the kind) with the count of images left out, so a new class can be
built from them once it has a name and enough examples.

A capture of several light steps is archived as its first frame `coarse_<view>.png` plus one
`<channel>@coarse_<view>.png` per further step (`inspector.channels.extra_frame_name`): those extra
frames are parts of one capture, never images of their own; a label drawn on one counts for the
capture's first frame. With a `CoarseStack` (`coarse_stack.py`) whose views stack channels, each
exported coarse image is the detector's stack of its capture (a C-channel PNG) and `info["channels"]`
names them; a part whose capture cannot give the stack is skipped with a warning, never exported
mono into a stacked set."""
from __future__ import annotations

import json
import logging
import os
import shutil
import struct
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

import cv2

from ..results.records import DefectRecord, PartRecord
from ..results.sqlite_store import ResultStore
from .kinds import KindRegistry
from .records import LABEL_ACTIONS, OK, UNKNOWN, Label, label_from_row

if TYPE_CHECKING:
    from .coarse_stack import CoarseStack

log = logging.getLogger(__name__)

COCO_NAME = "review.coco.json"


def write_coco(store: ResultStore, out: Path, *,
               keep_serial: Callable[[str], bool] | None = None,
               coarse_stack: CoarseStack | None = None) -> tuple[Path, int]:
    """Write every labelled part image of `store` (an explicit label on it, or a closed item of its
    part) as COCO under `out`; see `ReviewQueue.export_coco`. Returns (the JSON's path, the highest
    label id included). With `keep_serial`, a part whose serial it refuses is left out (e.g. the
    gate side of `inspector.promotion.GateSplit`, which a retraining job must never see). With
    `coarse_stack`, coarse frames are exported as the detector's channel stack (see the module)."""
    with store.reading() as ex:
        upto = int(ex("SELECT COALESCE(MAX(id), 0) FROM review_labels").fetchone()[0])
        labels = [label_from_row(r) for r in ex("SELECT * FROM review_labels WHERE id <= ? ORDER BY id", (upto,)).fetchall()]
        closed = {r[0]: (r[1], r[2]) for r in ex(
            "SELECT part_row, closed_by, closed_at FROM review_items WHERE status = 'done' ORDER BY closed_at").fetchall()}
    labelled_rows = {lb.part_row for lb in labels if lb.action in LABEL_ACTIONS} | set(closed)
    cat_ids = {name: i + 1 for i, name in enumerate(KindRegistry(store).names())}  # the store's kinds, in order
    images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    unknown: list[dict[str, Any]] = []
    left_out = 0
    (out / "images").mkdir(parents=True, exist_ok=True)
    for row in sorted(labelled_rows):
        record = store.get(row)
        if keep_serial is not None and not keep_serial(record.serial):
            continue
        part_labels = [lb for lb in labels if lb.part_row == row]
        latest: dict[int, Label] = {}
        for lb in part_labels:
            if lb.action in ("confirm", "reject", "change_class") and lb.defect_index is not None:
                latest[lb.defect_index] = lb
        per_image: dict[str, dict[str, list]] = {}

        def slot(path: str, per_image: dict[str, dict[str, list]] = per_image) -> dict[str, list]:
            return per_image.setdefault(path, {"boxes": [], "rejected": [], "unresolved": []})

        explicit_images: set[str] = set()
        unknown_images: set[str] = set()

        def note_unknown(path: str, box: Sequence[int], lb: Label | None, **where: Any) -> None:
            unknown_images.add(path)
            if lb is not None:
                explicit_images.add(path)
            unknown.append({"part_row": row, "serial": record.serial, "archived_path": path, "box_px": list(box),
                            "name": lb.text if lb else None, "who": lb.who if lb else None,
                            "source": "label" if lb else "station", **where})

        for index, d in enumerate(record.defects):
            path = _capture_image(record, _defect_image(record, d))
            if path is None:
                continue
            lb = latest.get(index)
            if (lb.new if lb is not None else d.defect_class) == UNKNOWN:
                note_unknown(path, d.box_px, lb, defect_index=index)
            elif lb is not None:
                explicit_images.add(path)
                if lb.new == OK:
                    slot(path)["rejected"].append({"defect_index": index, "box_px": list(d.box_px),
                                                   "station_class": d.defect_class, "who": lb.who})
                else:
                    slot(path)["boxes"].append((lb.new, d.box_px, {"source": "review", "who": lb.who,
                                                                    "action": lb.action, "defect_index": index}))
            elif row in closed and d.decision == "defect" and d.defect_class in cat_ids:
                slot(path)["boxes"].append((d.defect_class, d.box_px, {"source": "review", "who": closed[row][0],
                                                                       "action": "closed", "defect_index": index}))
            elif d.decision == "review" or (d.decision == "defect" and row not in closed):
                slot(path)["unresolved"].append({"defect_index": index, "box_px": list(d.box_px),
                                                 "station_class": d.defect_class, "decision": d.decision})
        for lb in part_labels:
            image = _capture_image(record, lb.image_path)
            if lb.action == "add_box" and image and lb.box_px and lb.new == UNKNOWN:
                note_unknown(image, lb.box_px, lb, action="add_box")
            elif lb.action == "add_box" and image and lb.box_px:
                explicit_images.add(image)
                slot(image)["boxes"].append((lb.new, lb.box_px, {"source": "review", "who": lb.who,
                                                                 "action": "add_box"}))
        wanted = set(explicit_images)
        if row in closed:  # a closed item vouches for every archived image of the part
            wanted |= {p for p in record.image_paths if Path(p).is_file() and not is_extra_frame(p)}
        left_out += len(wanted & unknown_images)
        for path in sorted(wanted - unknown_images):
            name = f"images/r{row:06d}_{Path(path).name}"
            if coarse_stack is not None and coarse_stack.handles(path):
                try:
                    stack = coarse_stack.build(path)
                except ValueError as exc:
                    log.warning("review export: part row %d (serial %s): no %s stack of %s: %s; skipped", row,
                                record.serial, "+".join(coarse_stack.channels), Path(path).name, exc)
                    continue
                (out / name).parent.mkdir(parents=True, exist_ok=True)
                if not cv2.imwrite(str(out / name), stack):
                    raise OSError(f"review export: cannot write {out / name}")
                height, width = stack.shape[:2]
            else:
                size = image_size(path)
                if size is None:
                    log.warning("review export: archived image %s of part row %d is missing; skipped", path, row)
                    continue
                width, height = size
                _link_or_copy(Path(path), out / name)
            entry = per_image.get(path, {"boxes": [], "rejected": [], "unresolved": []})
            image_id = len(images) + 1
            images.append({"id": image_id, "file_name": name, "width": width, "height": height,
                           "attributes": {"source": "review", "part_row": row, "part_id": record.part_id,
                                          "serial": record.serial, "verdict": record.verdict,
                                          "recipe_id": record.recipe_id, "archived_path": path,
                                          "rejected": entry["rejected"], "unresolved": entry["unresolved"]}})
            for cls, box, attrs in entry["boxes"]:
                x0, y0 = max(0, min(box[0], width)), max(0, min(box[1], height))
                x1, y1 = max(x0, min(box[2], width)), max(y0, min(box[3], height))
                w, h = x1 - x0, y1 - y0
                annotations.append({"id": len(annotations) + 1, "image_id": image_id, "category_id": cat_ids[cls],
                                    "bbox": [x0, y0, w, h], "area": w * h, "iscrowd": 0,
                                    "attributes": {**attrs, "serial": record.serial, "part_row": row}})
    doc = {"info": {"description": "station QA review labels", "source": "review", "exported_at": time.time(),
                    "label_upto": upto, "split": "review",
                    "unknown": {"images_left_out": left_out, "defects": unknown},
                    **({"channels": list(coarse_stack.channels)} if coarse_stack is not None else {})},
           "images": images, "annotations": annotations,
           "categories": [{"id": i, "name": n, "supercategory": "defect"} for n, i in cat_ids.items()]}
    path = out / COCO_NAME
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path, upto


def resolve_image(paths: Sequence[str], name: str) -> str | None:
    """A part's archived image by full path, file name or stem."""
    for p in paths:
        if name in (p, Path(p).name, Path(p).stem):
            return p
    return None


def image_size(path: str | Path) -> tuple[int, int] | None:
    """(width, height) of an image: PNG from its header, anything else via OpenCV."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(24)
    except OSError:
        return None
    if head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR":
        width, height = struct.unpack(">II", head[16:24])
        return int(width), int(height)
    import cv2
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    return None if image is None else (int(image.shape[1]), int(image.shape[0]))


def is_extra_frame(path: str | Path) -> bool:
    """Whether `path` is a further step's frame of a capture (`<channel>@<base>`), not an image of its own."""
    return "@" in Path(path).stem


def _capture_image(record: PartRecord, path: str | None) -> str | None:
    """The image a label on `path` counts for: the capture's first frame for an extra frame."""
    if path is None or not is_extra_frame(path):
        return path
    return resolve_image(record.image_paths, Path(path).stem.split("@", 1)[1])


def _defect_image(record: PartRecord, defect: DefectRecord) -> str | None:
    name = defect.image_path or (f"coarse_{defect.view}" if defect.stage == "coarse" else "")
    return resolve_image(record.image_paths, name) if name else None


def _link_or_copy(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    if dst.exists():
        dst.unlink()
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)
