"""YOLO txt labels (one file per image: ``class cx cy w h``, normalised) and a data.yaml.

Layout as Ultralytics expects: ``<root>/images/<stem>.png`` beside ``<root>/labels/<stem>.txt``.
YOLO keeps no attributes; COCO is the lossless format, YOLO the convenient one.
"""
from __future__ import annotations

from pathlib import Path, PurePosixPath

from .records import Annotation, ImageRecord, LabelledSet


def label_path(root: Path, image: ImageRecord) -> Path:
    rel = PurePosixPath(image.file_name)
    parts = ["labels" if p == "images" else p for p in rel.parent.parts]
    return root.joinpath(*parts, rel.stem + ".txt")


def write_yolo(data: LabelledSet, *, yaml_name: str = "data.yaml") -> list[Path]:
    index = {name: i for i, name in enumerate(data.categories)}
    written = []
    for image in data.images:
        lines = []
        for ann in image.annotations:
            cx, cy = ann.center
            lines.append(f"{index[ann.category]} {cx / image.width:.6f} {cy / image.height:.6f} "
                         f"{ann.width / image.width:.6f} {ann.height / image.height:.6f}")
        path = label_path(data.root, image)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
        written.append(path)
    names = "\n".join(f"  {i}: {name}" for i, name in enumerate(data.categories))
    (data.root / yaml_name).write_text(f"# written by training.data.yolo\npath: .\ntrain: images\nval: images\n"
                                       f"names:\n{names}\n", encoding="utf-8")
    return written


def read_yolo(root: Path | str, categories: tuple[str, ...], images: list[ImageRecord]) -> LabelledSet:
    """Labels for the given images (names and sizes known) read back from their txt files."""
    root = Path(root)
    out = []
    for image in images:
        record = ImageRecord(image.file_name, image.width, image.height, attributes=dict(image.attributes))
        path = label_path(root, image)
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) != 5:
                raise ValueError(f"YOLO label {path}:{number}: expected 'class cx cy w h', got {line!r}")
            cls = int(fields[0])
            cx, cy, w, h = (float(v) for v in fields[1:])
            cx, w = cx * image.width, w * image.width
            cy, h = cy * image.height, h * image.height
            record.annotations.append(Annotation(categories[cls], (cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)))
        out.append(record)
    return LabelledSet(root, categories, out)
