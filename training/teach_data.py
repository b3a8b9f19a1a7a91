"""The crops a new kind is taught from, cut exactly as the station cuts them (`crop_rois` with the
parent classifier's ROI rule and input size):

- `review_crops`: the review queue's labels — a station call QA labelled (or confirmed) as some
  class, on its fine shot; a box QA drew on a fine shot. The new kind's examples come from here on a
  station; labelled calls of the other classes (and `ok`) join the existing data;
- `set_crops`: the existing fine training sets (`python -m training data fine|standard`);
- `sim_examples`: on the virtual cell, fine shots of parts that carry the new kind, aimed with the
  error a coarse candidate has — what QA would label from the review queue, for measuring the loop.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Sequence

import cv2
import numpy as np

from hardware.sim.geometry import FINE_CAMERA, face_point_pose
from hardware.sim.part import make_part
from hardware.sim.render import render
from inspector.inference.classifier import RoiSpec, crop_rois
from inspector.inference.model_package import ModelInfo
from inspector.review.coco_export import resolve_image
from inspector.results.sqlite_store import ResultStore

from .data.generate import AIM_ERROR_MM, FOCUS_ERROR_MM, fine_render_seed, open_set
from .data.records import CLASSIFIER_CLASSES, classifier_label
from .lights import FINE_PROGRAM

LABEL_ACTIONS = ("confirm", "change_class")


def _cut(image: np.ndarray, boxes: Sequence[Sequence[float]], info: ModelInfo) -> np.ndarray:
    return crop_rois(image, boxes, info.input_size, RoiSpec.from_info(info))


def review_crops(store: ResultStore, info: ModelInfo, keep_serial: Callable[[str], bool] | None = None
                 ) -> tuple[np.ndarray, list[str], list[str]]:
    """(crops, labels, sources) of every labelled fine-shot call and box in the store: the latest
    confirm / reject / change-class label per call (reject → ok), and every box drawn on a fine shot.
    With `keep_serial`, parts it refuses are left out (the promotion gate's side of the review set)."""
    with store.reading() as ex:
        latest = ex("SELECT l.part_row, l.defect_index, l.action, l.new_value FROM review_labels l JOIN"
                    " (SELECT part_row, defect_index, MAX(id) AS id FROM review_labels WHERE action IN"
                    " ('confirm', 'reject', 'change_class') GROUP BY part_row, defect_index) m ON l.id = m.id"
                    " ORDER BY l.part_row, l.defect_index").fetchall()
        boxes = ex("SELECT part_row, image_path, x0, y0, x1, y1, new_value FROM review_labels"
                   " WHERE action = 'add_box' ORDER BY id").fetchall()
    crops, labels, sources = [], [], []
    records: dict[int, Any] = {}

    def record_of(row: int) -> Any:
        if row not in records:
            record = store.get(row)
            records[row] = record if keep_serial is None or keep_serial(record.serial) else None
        return records[row]

    for row, index, action, new in latest:
        record = record_of(row)
        defect = record.defects[index] if record is not None else None
        if defect is None or defect.stage != "fine" or not defect.image_path:
            continue
        path = resolve_image(record.image_paths, defect.image_path)
        image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE) if path else None
        if image is None:
            continue
        crops.append(_cut(image, [defect.box_px], info)[0])
        labels.append("ok" if action == "reject" else new)
        sources.append(f"{record.serial}#{index}")
    for row, path, x0, y0, x1, y1, new in boxes:
        if record_of(row) is None or not path or not Path(path).name.startswith("fine"):
            continue
        image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        if image is None:
            continue
        crops.append(_cut(image, [(x0, y0, x1, y1)], info)[0])
        labels.append(new)
        sources.append(f"{Path(path).stem}@row{row}")
    shape = (0, *info.input_size)
    return (np.stack(crops) if crops else np.zeros(shape, np.uint8)), labels, sources


def set_crops(roots: Sequence[str | Path], info: ModelInfo, *, max_crops: int = 0,
              seed: int = 12345) -> tuple[np.ndarray, list[str]]:
    """Crops of the marked targets of fine sets, boxes jittered as a coarse candidate's would be,
    labelled with the classifier's classes (nuisances and clean spots are ok)."""
    from .train_classifier import fixed_val_crops, load_samples  # torch: only when sets are used

    samples = [s for root in roots for s in load_samples(open_set(root)[0])]
    if max_crops and len(samples) > max_crops:
        keep = np.random.default_rng(seed).choice(len(samples), max_crops, replace=False)
        samples = [samples[i] for i in sorted(keep)]
    unknown = {classifier_label(s.category) for s in samples} - set(info.class_names)
    if unknown:
        raise ValueError(f"fine sets {', '.join(map(str, roots))}: classes {sorted(unknown)} unknown to the classifier")
    return fixed_val_crops(samples, seed), [CLASSIFIER_CLASSES[s.label] for s in samples]


def sim_examples(kind: str, count: int, info: ModelInfo, *, first_seed: int, views_per_defect: int = 1
                 ) -> tuple[np.ndarray, list[int]]:
    """`count` fine-shot crops of defects of `kind` on virtual-cell parts from `first_seed` on (parts
    whose only defects are of that kind), each shot aimed with a coarse candidate's error and its box
    the size a coarse candidate would give. Returns (crops, the part seed of each)."""
    rng = np.random.default_rng([first_seed, count, 17])
    crops, seeds = [], []
    seed = first_seed
    while len(crops) < count:
        part = make_part(seed, kinds=(kind,), defect_probability=1.0)
        for shot, defect in enumerate(d for d in part.defects if d.kind == kind):
            for _ in range(views_per_defect):
                aim = rng.normal(0.0, AIM_ERROR_MM / 2, 2).clip(-AIM_ERROR_MM, AIM_ERROR_MM)
                pose = face_point_pose(defect.face, defect.u_mm + aim[0], defect.v_mm + aim[1], FINE_CAMERA,
                                       z_offset_mm=float(rng.normal(0.0, FOCUS_ERROR_MM)))
                result = render(part, pose, FINE_PROGRAM.levels, FINE_CAMERA, exposure_us=FINE_PROGRAM.exposure_us,
                                gain=FINE_PROGRAM.gain, seed=fine_render_seed(seed, shot))
                hit = [t for t in result.truth if t.defect_id == defect.id]
                if not hit:
                    continue
                x0, y0, x1, y1 = hit[0].box_px
                grow = rng.uniform(0.9, 1.6)  # a coarse box: about the defect, rarely tight
                cx, cy = (x0 + x1) / 2 + rng.normal(0, 4), (y0 + y1) / 2 + rng.normal(0, 4)
                w, h = max(x1 - x0, 4) * grow, max(y1 - y0, 4) * grow
                crops.append(_cut(result.image, [(cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)], info)[0])
                seeds.append(seed)
                if len(crops) == count:
                    break
            if len(crops) == count:
                break
        seed += 1
    return np.stack(crops), seeds


def summary_json(summary: dict) -> str:
    return json.dumps(summary, indent=2, sort_keys=True)
