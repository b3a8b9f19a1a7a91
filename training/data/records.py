"""The in-memory form of a labelled image set, independent of any file format.

Boxes are (x0, y0, x1, y1) in pixels with x1/y1 exclusive edges (a box 10..12 covers pixels 10
and 11). COCO stores (x, y, w, h) and YOLO normalised centres; the writers convert.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFECT_CLASSES = ("scratch", "dent", "burr", "stain")
NUISANCE_CLASSES = ("dust", "machining_mark", "fibre", "fingerprint")  # hardware.sim.part.NUISANCE_KINDS
COARSE_CATEGORIES = DEFECT_CLASSES + NUISANCE_CLASSES
OK = "ok"
CLASSIFIER_CLASSES = (OK,) + DEFECT_CLASSES
FINE_CATEGORIES = COARSE_CATEGORIES + ("clean_spot",)  # a clean spot is a labelled "nothing here" ROI


def classifier_label(category: str) -> str:
    """Nuisances and clean spots are `ok` for the classifier; defect kinds are themselves."""
    return category if category in DEFECT_CLASSES else OK


@dataclass
class Annotation:
    category: str
    box_px: tuple[float, float, float, float]
    attributes: dict[str, Any] = field(default_factory=dict)

    @property
    def width(self) -> float:
        return self.box_px[2] - self.box_px[0]

    @property
    def height(self) -> float:
        return self.box_px[3] - self.box_px[1]

    @property
    def center(self) -> tuple[float, float]:
        return (self.box_px[0] + self.box_px[2]) / 2, (self.box_px[1] + self.box_px[3]) / 2


@dataclass
class ImageRecord:
    file_name: str  # relative to the set's root, e.g. "images/p100000_top.png"
    width: int
    height: int
    annotations: list[Annotation] = field(default_factory=list)
    attributes: dict[str, Any] = field(default_factory=dict)


@dataclass
class LabelledSet:
    root: Path
    categories: tuple[str, ...]
    images: list[ImageRecord]
    info: dict[str, Any] = field(default_factory=dict)

    def annotation_count(self) -> dict[str, int]:
        counts = {name: 0 for name in self.categories}
        for image in self.images:
            for ann in image.annotations:
                counts[ann.category] = counts.get(ann.category, 0) + 1
        return counts
